"""analysis: embeddings and t-SNE maps written back into a store, plots, and the command line.

Imports ``featurestore`` and ``training``; nothing imports it.
"""

"""training: Keras classifiers of the 11 instrument families, trained from a feature store.

Imports ``featurestore``; never ``analysis``.
"""

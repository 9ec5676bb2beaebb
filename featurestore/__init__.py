"""featurestore: audio -> chunked HDF5 feature stores (one file per split).

Knows audio and HDF5 only: it imports neither ``training`` nor ``analysis``, nor tensorflow.
"""
__version__ = "0.1.0"  # the only place it is written: setup.py reads this line

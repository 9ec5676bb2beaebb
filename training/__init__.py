"""training: Keras classifiers of a feature store's label set (NSynth's 11 families or any other).

Imports ``featurestore``; never ``analysis``.
"""

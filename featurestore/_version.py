"""The version of timbremap: written here alone (``setup.py`` reads this line)."""
__version__ = "0.1.0"

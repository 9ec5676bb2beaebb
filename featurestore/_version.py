"""The version of timbremap: written here alone (``setup.py`` reads this line)."""
__version__ = "0.2.0"

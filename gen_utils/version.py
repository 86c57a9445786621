"""The package version, in a leaf module so that every other module can import it."""

__version__ = "0.1.0"

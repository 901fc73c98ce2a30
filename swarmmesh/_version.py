"""The package version, importable without importing the client."""

__version__ = "0.1.0"

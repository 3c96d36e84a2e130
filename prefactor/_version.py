"""The package version, read by hatchling and sent in the X-Prefactor-SDK header."""

__version__ = "0.1.0"

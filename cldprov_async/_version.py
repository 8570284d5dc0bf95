"""The package version, read by the build (hatch) and the User-Agent. Imports nothing."""

__version__ = "0.1.0"
"""This package's version (PEP 440), also sent in the ``User-Agent`` header."""

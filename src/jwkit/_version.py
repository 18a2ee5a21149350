"""The one place jwkit's version is written; the build (hatch) and ``jwkit.__version__`` read it."""

__version__ = "0.1.0"
"""jwkit's version (PEP 440); the wheel's metadata and ``jwkit --version`` carry the same."""

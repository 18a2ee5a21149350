"""The one place jwkit's version is written; the build (hatch) and ``jwkit.__version__`` read it."""

__version__ = "0.1.0"

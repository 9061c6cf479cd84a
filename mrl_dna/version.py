"""The package version, in a module of its own: every layer reads it, and importing it costs nothing."""

__version__ = "0.1.0"

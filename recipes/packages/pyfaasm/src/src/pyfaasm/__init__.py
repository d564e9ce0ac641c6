"""The runtime's Python function API; functions use ``pyfaasm.code``."""

__version__ = "0.1.0"

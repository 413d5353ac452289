"""cellbox: run code blocks from an editor in one Docker sandbox per workspace."""

__version__ = "0.1.0"

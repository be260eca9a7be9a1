"""aiwarden: an egress proxy that decides which external AI services people may use."""

__version__ = "0.1.0"

"""Kavach: a self-hostable secret manager."""

__version__ = "0.1.0"

"""Persona: customer-intelligence MLOps platform (shared settings, data contract and CLI)."""

__version__ = "0.1.0"

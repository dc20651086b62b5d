"""Serving: the BentoML service over the champion and the online store."""

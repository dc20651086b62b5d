"""Erasure and consent: forget customers in every store, prove it, and honour opt-outs."""

"""Ingest: read, validate and quarantine raw files into the raw store without losing a row."""

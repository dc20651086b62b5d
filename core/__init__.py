"""Core: settings, errors, the data contract, the artifact catalog, locks and the snapshot time grid.

Imports nothing else of Persona.
"""

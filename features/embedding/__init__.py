"""Text embeddings for Persona: encoders, the hash-keyed cache, sentiment and similarity search."""

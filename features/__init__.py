"""Features: pure transforms, text embeddings, offline builds and point-in-time training sets."""

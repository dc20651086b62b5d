"""The Feast edge: everything that knows Feast's storage layout (stores, codec, readers, writers, sources)."""

"""The app: the `persona` CLI, the demo, the production stack and the console that draws progress."""

__version__ = "0.1.0"

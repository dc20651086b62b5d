"""Training: point-in-time sets to fitted, logged, registered and gated models."""

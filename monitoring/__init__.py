"""Monitoring: drift of features, predictions and personas vs the champion; retraining policy and trigger."""

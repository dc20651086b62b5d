"""The Feast feature repository: definitions and yaml only (Feast imports every module here)."""

"""Batch scoring of customers with the champion."""

"""The synthetic generator (apart from the product): customers with a planted, documented signal."""

"""Campaigns: uplift models, audiences with control groups under a budget, and what they changed.

Sits above training (it registers uplift models through the same lineage and gate) and privacy
(no contact without consent); only the app imports it.
"""

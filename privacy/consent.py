"""Consent: whom campaigns and audiences may contact.

The rule lives in :mod:`ingest.consent` (ingest checks exposures against it, so it sits in the
lowest layer that reads the customers table); privacy and campaigns read it through here.
"""

from __future__ import annotations

from ingest.consent import CONSENT, consent_flags, contactable

__all__ = ["CONSENT", "consent_flags", "contactable"]

"""Campaigns and exposures are validated and quarantined like every other table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from core import catalog
from ingest.run import ingest_files
from tests.unit.ingest.conftest import write_csv

if TYPE_CHECKING:
    from pathlib import Path

    from core.settings import Settings

CAMPAIGN = {"campaign_id": "c1", "offer": "discount", "start": "2024-03-01", "end": "2024-03-08",
            "response_days": "14", "cost_per_contact": "0.5"}


def _ingest_exposures(settings: Settings, tmp_path: Path, rows: list[dict[str, str]]) -> pd.DataFrame:
    customers = write_csv(tmp_path / "customers.csv", [
        {"customer_id": "1", "signup_date": "2024-01-01", "consent": "yes"},
        {"customer_id": "2", "signup_date": "2024-01-01", "consent": "yes"},
        {"customer_id": "3", "signup_date": "2024-01-01", "consent": "no"},
    ])
    campaigns = write_csv(tmp_path / "campaigns.csv", [CAMPAIGN])
    exposures = write_csv(tmp_path / "exposures.csv", rows)
    reports = ingest_files(settings, {"exposures": exposures, "customers": customers, "campaigns": campaigns})
    assert [r.table for r in reports] == ["customers", "campaigns", "exposures"]
    quarantine = catalog.quarantine_table(settings, "exposures")
    return pd.read_parquet(quarantine) if quarantine.exists() else pd.DataFrame(columns=["customer_id", "reason"])


def _exposure(customer: str, group: str, campaign: str = "c1") -> dict[str, str]:
    return {"customer_id": customer, "campaign_id": campaign, "event_timestamp": "2024-03-01T09:00:00Z",
            "group": group}


def test_an_exposure_to_an_unknown_campaign_is_quarantined(settings: Settings, tmp_path: Path) -> None:
    # given one exposure of a known campaign and one of a campaign nobody ingested
    rows = [_exposure("1", "treatment"), _exposure("2", "treatment", campaign="c9")]

    # when
    quarantined = _ingest_exposures(settings, tmp_path, rows)

    # then
    assert quarantined[["customer_id", "reason"]].values.tolist() == [["2", "unknown_campaign"]]
    assert pd.read_parquet(catalog.raw_table(settings, "exposures"))["customer_id"].tolist() == [1]


def test_a_treatment_without_a_campaign_is_quarantined(settings: Settings, tmp_path: Path) -> None:
    # given a treatment row whose campaign id is empty
    rows = [_exposure("1", "treatment", campaign=""), _exposure("2", "control")]

    # when
    quarantined = _ingest_exposures(settings, tmp_path, rows)

    # then
    assert quarantined[["customer_id", "reason"]].values.tolist() == [["1", "treatment_without_campaign"]]


def test_a_customer_in_both_groups_is_quarantined_in_both(settings: Settings, tmp_path: Path) -> None:
    # given customer 1 in treatment and in control of the same campaign
    rows = [_exposure("1", "treatment"), _exposure("1", "control"), _exposure("2", "control")]

    # when
    quarantined = _ingest_exposures(settings, tmp_path, rows)

    # then both of customer 1's rows go, customer 2 stays
    assert sorted(quarantined["reason"]) == ["in_both_groups", "in_both_groups"]
    assert set(quarantined["customer_id"]) == {"1"}
    assert pd.read_parquet(catalog.raw_table(settings, "exposures"))["customer_id"].tolist() == [2]


def test_a_later_file_cannot_move_a_customer_into_the_other_group(settings: Settings, tmp_path: Path) -> None:
    # given customer 1 stored in treatment
    _ingest_exposures(settings, tmp_path, [_exposure("1", "treatment")])

    # when a later file puts customer 1 in control
    later = write_csv(tmp_path / "later.csv", [_exposure("1", "control")])
    (report,) = ingest_files(settings, {"exposures": later})

    # then
    assert report.reasons == {"in_both_groups": 1}


def test_a_treatment_without_consent_is_quarantined_but_control_needs_none(
    settings: Settings, tmp_path: Path
) -> None:
    # given customer 3 without consent in treatment, and in control of another campaign
    rows = [_exposure("3", "treatment"), _exposure("1", "treatment")]

    # when
    quarantined = _ingest_exposures(settings, tmp_path, rows)
    control = write_csv(tmp_path / "control.csv", [_exposure("3", "control", campaign="c1x")])
    write_csv(tmp_path / "c1x.csv", [{**CAMPAIGN, "campaign_id": "c1x"}])
    ingest_files(settings, {"campaigns": tmp_path / "c1x.csv", "exposures": control})

    # then
    assert quarantined[["customer_id", "reason"]].values.tolist() == [["3", "no_consent"]]
    stored = pd.read_parquet(catalog.raw_table(settings, "exposures"))
    assert sorted(zip(stored["customer_id"], stored["group"], strict=True)) == [(1, "treatment"), (3, "control")]


def test_a_campaign_ending_before_it_starts_and_a_bad_group_are_quarantined(
    settings: Settings, tmp_path: Path
) -> None:
    # given
    campaigns = write_csv(tmp_path / "campaigns.csv", [CAMPAIGN, {**CAMPAIGN, "campaign_id": "c2",
                                                                   "end": "2024-02-01"}])
    exposures = write_csv(tmp_path / "exposures.csv", [_exposure("1", "maybe")])

    # when
    reports = ingest_files(settings, {"campaigns": campaigns, "exposures": exposures})

    # then
    assert reports[0].reasons == {"end_before_start": 1}
    assert reports[1].reasons == {"bad_group": 1}

"""Exact per-row reasons of the campaign and exposure rules, written against the mutants ``make mutate`` found.

Each test pins the whole reason array (which row, which reason, which rule speaks first), so a
flipped comparison, a dropped mask or a rule applied in the wrong order fails here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingest.campaign_rules import campaign_reasons, exposure_reasons


def _exposures(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "campaign_id", "group"])


def _all_agreed(ids: np.ndarray) -> np.ndarray:
    return np.ones(len(ids), dtype=bool)


def _never_called(ids: np.ndarray) -> np.ndarray:
    raise AssertionError(f"consent asked for {ids}")


# --------------------------------------------------------------------------- campaigns
def test_a_campaign_ending_before_it_starts_is_the_only_one_flagged() -> None:
    # given an end before the start, an end on the start, a later end and an end that does not parse
    frame = pd.DataFrame({"campaign_id": ["a", "b", "c", "d"],
                          "start": ["2024-03-08", "2024-03-08", "2024-03-08", "2024-03-08"],
                          "end": ["2024-03-07T23:59:59", "2024-03-08", "2024-03-09", "soon"]})

    # when / then
    assert campaign_reasons(frame).tolist() == ["end_before_start", None, None, None]


def test_a_frame_of_only_the_two_dates_is_checked() -> None:
    frame = pd.DataFrame({"start": ["2024-03-08", "2024-03-08"], "end": ["2024-03-01", "2024-03-09"]})
    assert campaign_reasons(frame).tolist() == ["end_before_start", None]


@pytest.mark.parametrize("columns", [["campaign_id", "start"], ["campaign_id", "end"]])
def test_a_campaign_without_both_dates_gets_no_reason_here(columns: list[str]) -> None:
    # given a frame missing one of the dates (validation names the missing column)
    frame = pd.DataFrame({"campaign_id": ["a"], "start": ["2024-03-08"], "end": ["2024-03-01"]})[columns]

    # when / then
    assert campaign_reasons(frame).tolist() == [None]


# --------------------------------------------------------------------------- exposures
@pytest.mark.parametrize("missing", ["customer_id", "campaign_id", "group"])
def test_exposures_missing_a_key_column_get_no_reason_here(missing: str) -> None:
    frame = _exposures([("1", "c1", "vip"), ("2", "c9", "treatment")]).drop(columns=[missing])
    assert exposure_reasons(frame, ["c1"], _never_called).tolist() == [None, None]


def test_each_exposure_rule_names_its_rows_and_the_first_rule_wins() -> None:
    # given rows breaking one rule each, then rows breaking two (the earlier rule must win)
    frame = _exposures([
        ("1", "c1", "treatment"),   # fine
        ("2", "c1", "vip"),         # bad_group
        ("3", "", "treatment"),     # treatment_without_campaign
        ("4", "c9", "control"),     # unknown_campaign
        ("5", "", "control"),       # a control row names no campaign: nobody was contacted, fine here
        ("6", "c9", "vip"),         # bad_group before unknown_campaign
        ("7", " c1 ", " control "),  # trimmed like stored text: fine
        ("8", "c1", "Treatment"),   # groups are spelled exactly
    ])

    # when
    reasons = exposure_reasons(frame, iter(["c1", "c2"]), _all_agreed)

    # then
    assert reasons.tolist() == [None, "bad_group", "treatment_without_campaign", "unknown_campaign", None,
                                "bad_group", None, "bad_group"]


def test_a_customer_in_both_groups_of_one_campaign_in_the_file_is_quarantined_on_every_row() -> None:
    # given customer 1 in both groups of c1; customer 2 in treatment of c1 and control of c2; 3 twice in control
    frame = _exposures([("1", "c1", "treatment"), ("2", "c1", "treatment"), ("1", "c1", "control"),
                        ("2", "c2", "control"), ("3", "c1", "control"), ("3", "c1", "control")])

    # when / then
    assert exposure_reasons(frame, ["c1", "c2"], _all_agreed).tolist() == [
        "in_both_groups", None, "in_both_groups", None, None, None]


def test_rows_that_cannot_say_customer_campaign_or_group_are_not_counted_for_both_groups() -> None:
    # given ids that do not parse (both read as -1), a row without campaign and a row with a bad group
    frame = _exposures([("x", "c1", "treatment"), ("y", "c1", "control"),
                        ("4", "", "control"), ("4", "c1", "vip"), ("4", "c1", "treatment")])

    # when / then the unparseable ids are left to validation; customer 4's one real group stands
    assert exposure_reasons(frame, ["c1"], _all_agreed).tolist() == [None, None, None, "bad_group", None]


def test_a_stored_exposure_in_the_other_group_quarantines_the_new_row() -> None:
    # given stored rows: customer 1 in control of c1, customer 2 in treatment of c1 (as read back: ints and text)
    stored = pd.DataFrame({"customer_id": [1, 2], "campaign_id": ["c1", "c1"], "group": ["control", "treatment"],
                           "event_timestamp": pd.to_datetime(["2024-03-01", "2024-03-01"], utc=True)})
    frame = _exposures([("1", "c1", "treatment"), ("2", "c1", "treatment"), ("1", "c2", "treatment")])

    # when
    reasons = exposure_reasons(frame, ["c1", "c2"], _all_agreed, stored)

    # then only the row that contradicts the stored group is quarantined
    assert reasons.tolist() == ["in_both_groups", None, None]
    assert exposure_reasons(frame, ["c1", "c2"], _all_agreed, stored.iloc[:0]).tolist() == [None, None, None]


def test_consent_is_asked_for_valid_treatment_contacts_only_and_missing_consent_is_named() -> None:
    # given treatment contacts to 1, 2 and an unparseable id, and a control row for 3
    frame = _exposures([("1", "c1", "treatment"), ("x", "c1", "treatment"), ("3", "c1", "control"),
                        ("2", "c1", "treatment")])
    asked: list[list[int]] = []

    def only_two(ids: np.ndarray) -> np.ndarray:
        asked.append(ids.tolist())
        return ids == 2

    # when
    reasons = exposure_reasons(frame, ["c1"], only_two)

    # then
    assert asked == [[1, 2]]
    assert reasons.tolist() == ["no_consent", None, None, None]


def test_a_row_in_both_groups_is_named_so_even_without_consent() -> None:
    frame = _exposures([("1", "c1", "treatment"), ("1", "c1", "control")])
    assert exposure_reasons(frame, ["c1"], lambda ids: np.zeros(len(ids), dtype=bool)).tolist() == [
        "in_both_groups", "in_both_groups"]


def test_no_treatment_contact_asks_for_no_consent() -> None:
    # given a control row, a bad group and a row with no group at all
    frame = _exposures([("1", "c1", "control"), ("2", "c1", "vip"), ("3", "c1", "")])
    assert exposure_reasons(frame, ["c1"], _never_called).tolist() == [None, "bad_group", "bad_group"]


def test_an_empty_exposure_file_has_no_reasons() -> None:
    reasons = exposure_reasons(_exposures([]), ["c1"], _never_called)
    assert (reasons.tolist(), reasons.dtype) == ([], np.dtype(object))

"""The projection-version check every reader of a model's text features applies (pure)."""

from __future__ import annotations

import pytest

from features.text_version import TextVersionMismatch, check_text_version, uses_text


def test_features_of_another_projection_are_refused_in_one_line_naming_both_versions() -> None:
    # when / then
    with pytest.raises(TextVersionMismatch) as refused:
        check_text_version("champion persona v3", "pca8-aaaaaaaaaaaa", "pca8-bbbbbbbbbbbb")
    message = str(refused.value)
    assert "champion persona v3" in message
    assert "pca8-aaaaaaaaaaaa" in message
    assert "pca8-bbbbbbbbbbbb" in message
    assert "persona embed --projection pca8-aaaaaaaaaaaa" in message
    assert "\n" not in message


def test_text_removed_since_training_is_refused_too() -> None:
    # when / then
    with pytest.raises(TextVersionMismatch, match="none"):
        check_text_version("persona v1", "pca8-aaaaaaaaaaaa", None)


@pytest.mark.parametrize(("trained", "current"), [("pca8-aaaaaaaaaaaa", "pca8-aaaaaaaaaaaa"), (None, "pca8-b"),
                                                  (None, None)])
def test_the_same_version_or_a_model_that_recorded_none_passes(trained: str | None, current: str | None) -> None:
    # when / then: no exception
    check_text_version("persona v1", trained, current)


def test_only_projection_columns_count_as_text_use() -> None:
    # then
    assert uses_text(["recency_days", "text_pca_0"])
    assert not uses_text(["recency_days", "sentiment_mean_365d"])

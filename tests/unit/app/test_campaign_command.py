"""``persona campaign`` and ``persona train --uplift`` say what is wrong in one line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from typer.testing import CliRunner

from app.cli import app

if TYPE_CHECKING:
    from pathlib import Path

runner = CliRunner()


def test_plan_needs_exactly_one_of_offer_and_offers(tmp_path: Path) -> None:
    # when
    neither = runner.invoke(app, ["campaign", "plan", "--budget", "10", "--out", str(tmp_path / "a")])
    both = runner.invoke(app, ["campaign", "plan", "--budget", "10", "--out", str(tmp_path / "a"),
                               "--offer", "discount", "--offers", "all"])

    # then
    for result in (neither, both):
        assert result.exit_code == 1
        assert "pass --offer X (repeatable) or --offers all" in result.output


def test_uplift_training_without_campaigns_says_what_to_ingest() -> None:
    # when
    result = runner.invoke(app, ["train", "--uplift"])

    # then
    assert result.exit_code == 1
    assert "no campaigns ingested yet" in result.output

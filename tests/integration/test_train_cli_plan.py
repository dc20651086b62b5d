"""Through the CLI: the plan prints first, output stays quiet, a custom target scores with --model.

Also: ``--as-of`` beyond the data is refused; the custom target has labels at one time and is
named ``churn``.
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from core import catalog
from core.settings import load_settings

if TYPE_CHECKING:
    from pathlib import Path

NOISE = re.compile(r"Mean of empty slice|DeprecationWarning|FutureWarning|INFO|Created version|Downloading")


def test_quiet_output_keeps_library_lines_in_the_log_file(persona_home: Path, capsys) -> None:
    # given the quiet block of a command
    from app.quiet import quiet_output

    settings = load_settings()
    # when a library warns and MLflow logs inside it
    with quiet_output(settings):
        warnings.warn("Mean of empty slice", RuntimeWarning, stacklevel=1)
        logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables...")
    # then nothing reaches the terminal and both are in the home's log file
    said = capsys.readouterr()
    assert said.out + said.err == ""
    log = catalog.log_file(settings).read_text()
    assert "Mean of empty slice" in log
    assert "Creating initial MLflow database tables" in log


@pytest.mark.integration
def test_cli_plan_quiet_output_and_a_custom_target_scored_by_name(persona_home: Path, tmp_path: Path) -> None:
    from features.build import build_offline_sources
    from ingest.run import ingest_files
    from store.repo import apply_repo
    from synthetic.generator import GenerateConfig, generate_dataset

    # given generated data, ingested, built and applied
    paths = generate_dataset(
        GenerateConfig(customers=300, days=200, seed=4, start=pd.Timestamp("2001-01-01")), tmp_path / "gen"
    )
    settings = load_settings()
    ingest_files(settings, {t: paths[t] for t in ("customers", "transactions")})
    build_offline_sources(settings)
    apply_repo(settings)
    # and churn labels of every customer at one date (no order in the next 60 days)
    tx = pd.read_parquet(catalog.raw_table(settings, "transactions"))
    at = pd.Timestamp("2001-05-01", tz="UTC")
    known = tx.loc[tx["event_timestamp"] <= at, "customer_id"].unique()
    active = tx.loc[(tx["event_timestamp"] > at) & (tx["event_timestamp"] <= at + pd.Timedelta(days=60)), "customer_id"]
    labels = pd.DataFrame({"customer_id": known, "event_timestamp": at})
    labels["churn"] = (~labels["customer_id"].isin(active)).astype(int)
    labels_path = tmp_path / "labels.csv"
    labels.to_csv(labels_path, index=False)
    runner = CliRunner()

    # when the custom target trains through the CLI, and --as-of lies beyond the data
    trained = runner.invoke(app, ["train", "--labels", str(labels_path), "--target", "churn", "--cv-folds", "3"])
    beyond = runner.invoke(app, ["train", "--as-of", "2030-01-01", "--horizon-days", "30"])
    scored = runner.invoke(app, ["score", "--model", "persona-churn", "--version", "1",
                                 "--out", str(tmp_path / "s.parquet")])

    # then the plan came first, nothing noisy was printed, and the summary is last
    assert trained.exit_code == 0, trained.output
    out = trained.output
    assert out.index("training plan (churn)") < out.index("registered persona-churn v1")
    assert "split     customer" in out
    assert not NOISE.search(out), out
    assert out.strip().splitlines()[-1].startswith("took ")
    assert beyond.exit_code == 1
    assert "after the data's last event" in beyond.output
    # and the custom model scores by its registered name
    assert scored.exit_code == 0, scored.output
    assert "persona-churn v1" in scored.output
    frame = pd.read_parquet(tmp_path / "s.parquet")
    assert list(frame.columns) == ["customer_id", "prediction", "model_version"]
    assert frame["prediction"].between(0, 1).all()

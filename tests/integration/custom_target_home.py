"""A home with the user's own features and labels and no transactions: custom targets stand alone.

:func:`write_loyalty_sources` writes a ``loyalty`` feature source, its Feast view and service
(``upsell_model_v1``) and a labels file per target; :func:`build_custom_target_home` runs the CLI on
them (apply, train each target, materialize) so that ``persona-<target>`` has a champion. Used by
``test_custom_standalone.py`` and ``test_serving_target.py``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from tests.conftest import SERVING_ENV

if TYPE_CHECKING:
    from collections.abc import Iterator

CUSTOMERS = 300
LABELLED_AT = pd.Timestamp("2024-06-01", tz="UTC")
SERVICE = "upsell_model_v1"
VIEWS = """
from datetime import timedelta
from feast import FeatureService, FeatureView, Field, FileSource
from feast.types import Float32, Int64

from feature_repo.definitions import customer

loyalty_source = FileSource(name="loyalty_source", path="{path}", timestamp_field="event_timestamp")
loyalty_fv = FeatureView(name="loyalty", entities=[customer], ttl=timedelta(days=30),
                         schema=[Field(name="points", dtype=Float32), Field(name="visits", dtype=Int64)],
                         source=loyalty_source)
upsell_model_v1 = FeatureService(name="upsell_model_v1", features=[loyalty_fv])
"""


@dataclass(frozen=True)
class LoyaltySources:
    """What :func:`write_loyalty_sources` wrote: the values, the views folder, one labels file per target."""

    ids: np.ndarray
    points: np.ndarray
    labels: pd.DataFrame  # customer_id and one column per target
    views: Path
    label_files: dict[str, Path]


def write_loyalty_sources(
    folder: Path, targets: tuple[str, ...] = ("upgraded",), customers: int = CUSTOMERS, seed: int = 3
) -> LoyaltySources:
    """The user's loyalty features (points, visits; a day before the labels) and labels following points.

    Every target gets the same labels (a logistic function of ``points``), each in its own file.
    """
    rng = np.random.default_rng(seed)
    ids = np.arange(1, customers + 1, dtype="int64")
    points = rng.normal(0, 1, customers).astype("float32")
    features = pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": LABELLED_AT - pd.Timedelta(days=1),
            "points": points,
            "visits": rng.integers(0, 20, customers).astype("int64"),
        }
    )
    features.to_parquet(folder / "loyalty.parquet", index=False)
    label = (rng.random(customers) < 1 / (1 + np.exp(-3 * points))).astype(int)
    files = {}
    for target in targets:
        files[target] = folder / f"labels_{target}.csv"
        pd.DataFrame({"customer_id": ids, "event_timestamp": LABELLED_AT, target: label}).to_csv(
            files[target], index=False
        )
    views = folder / "views"
    views.mkdir(exist_ok=True)
    (views / "loyalty.py").write_text(VIEWS.format(path=folder / "loyalty.parquet"))
    labels = pd.DataFrame({"customer_id": ids, **dict.fromkeys(targets, label)})
    return LoyaltySources(ids, points, labels, views, files)


def run_cli(runner: CliRunner, args: list[str]) -> str:
    """``persona ARGS`` in process; fails the test with the output when it exits non-zero."""
    result = runner.invoke(app, args)
    assert result.exit_code == 0, f"persona {' '.join(args)}:\n{result.output}"
    return result.output


@contextlib.contextmanager
def custom_env(home: Path, views: Path) -> Iterator[None]:
    """``PERSONA_HOME`` and ``PERSONA_FEATURE_REPO`` set (serving settings cleared) for the block."""
    with pytest.MonkeyPatch.context() as patch:
        for name in SERVING_ENV:
            patch.delenv(name, raising=False)
        patch.setenv("PERSONA_HOME", str(home))
        patch.setenv("PERSONA_FEATURE_REPO", str(views))
        yield


def build_custom_target_home(
    home: Path, folder: Path, targets: tuple[str, ...], before_materialize: Path | None = None
) -> LoyaltySources:
    """Write the sources, apply, train ``persona-<target>`` for each target (champion v1), materialize.

    Args:
        home: the new home.
        folder: where the sources are written.
        targets: label columns, one model each.
        before_materialize: also leave a copy of the home here as it was before materializing.
    """
    from core.settings import load_settings
    from model.registry import CHAMPION, alias_version, configure_mlflow, move_alias
    from tests.conftest import copy_home

    sources = write_loyalty_sources(folder, targets)
    runner = CliRunner()
    with custom_env(home, sources.views):
        run_cli(runner, ["features", "apply"])
        settings = load_settings()
        client = configure_mlflow(settings)
        for target in targets:
            run_cli(
                runner,
                [
                    "train",
                    "--labels",
                    str(sources.label_files[target]),
                    "--target",
                    target,
                    "--feature-service",
                    SERVICE,
                ],
            )
            name = f"{settings.registered_model}-{target}"
            if alias_version(client, name, CHAMPION) is None:  # small data: serve v1 even if the gate held it
                move_alias(client, name, CHAMPION, "1", "test home: serve v1")
        if before_materialize is not None:
            copy_home(home, before_materialize)
        run_cli(runner, ["features", "materialize"])
    return sources

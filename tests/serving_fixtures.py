"""A home with a registered champion, for serving tests (and the serving benchmark).

``build_champion_home`` runs the real pipeline on tiny synthetic data: generate, ingest, build
the offline sources, ``feast apply``, materialize, train (``champion`` = v1). The session
fixture builds it once; tests that move aliases work on a copy (:func:`copy_home`).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

SERVING_ENV = (
    "PERSONA_HOME",
    "PERSONA_PROFILE",
    "PERSONA_API_KEY",
    "PERSONA_SERVING_AUTH",
    "PERSONA_MODEL_POLL_SECONDS",
    "MLFLOW_TRACKING_URI",
)


def build_champion_home(
    home: Path,
    customers: int = 300,
    days: int = 120,
    seed: int = 3,
    n_estimators: int = 20,
    horizon_days: int = 28,
) -> Path:
    """Generate data into ``home`` and train a champion (``PERSONA_HOME`` is set while building).

    Returns:
        ``home``.
    """
    from core.settings import load_settings
    from features.build import build_offline_sources
    from ingest.run import ingest_files
    from store.repo import apply_repo, materialize
    from synthetic.generator import GenerateConfig, generate_dataset
    from training.config import PersonaParams, TrainConfig, XGBParams
    from training.train import TrainJob

    home = Path(home)
    previous = os.environ.get("PERSONA_HOME")
    os.environ["PERSONA_HOME"] = str(home)
    try:
        settings = load_settings()
        config = GenerateConfig(
            customers=customers, days=days, seed=seed, start=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        )
        paths = generate_dataset(config, home / "generated")
        ingest_files(
            settings, {name: paths[name] for name in ("customers", "transactions", "sessions", "reviews")}
        )
        build_offline_sources(settings)
        apply_repo(settings)
        materialize(settings)
        train = TrainConfig(
            xgb=XGBParams(n_estimators=n_estimators),
            personas=PersonaParams(k_min=2, k_max=3),
            horizon_days=horizon_days,
            purge=False,
        )
        TrainJob(settings, train).run()
    finally:
        if previous is None:
            os.environ.pop("PERSONA_HOME", None)
        else:
            os.environ["PERSONA_HOME"] = previous
    return home


def copy_home(source: Path, target: Path) -> Path:
    """A copy of a home, without its serving state; the copy's registry can change freely.

    A copied home refuses to read the original's files until its features are applied in it
    (``persona features apply``), as a user would after copying a home.
    """
    from core.settings import load_settings
    from store.repo import apply_repo

    shutil.copytree(
        source, target, ignore=lambda folder, names: ["serving"] if Path(folder) == source else []
    )
    settings = load_settings(home=target)
    if (settings.feast_dir / "registry.db").exists():  # a home with registered features
        apply_repo(settings)
    return target


def register_copy_of(home: Path, version: str = "1") -> str:
    """Register the model of ``version`` again (a new version number, same artifacts), signed.

    Returns:
        The new version.
    """
    from core.settings import load_settings
    from model.registry import configure_mlflow
    from model.trust import record_and_sign

    settings = load_settings(home=home)
    client = configure_mlflow(settings)
    old = client.get_model_version(settings.registered_model, version)
    new = client.create_model_version(
        settings.registered_model,
        old.source,
        run_id=old.run_id,
        tags=dict(old.tags or {}),
        model_id=getattr(old, "model_id", None),
    )
    record_and_sign(client, settings, settings.registered_model, str(new.version))  # signatures name the version
    return str(new.version)


def register_broken_version(home: Path, tmp: Path) -> str:
    """Register a version whose artifacts are not a loadable model.

    Returns:
        The new version.
    """
    from core.settings import load_settings
    from model.registry import configure_mlflow

    settings = load_settings(home=home)
    client = configure_mlflow(settings)
    junk = tmp / "not-a-model"
    junk.mkdir(parents=True, exist_ok=True)
    (junk / "README").write_text("not a model\n")
    new = client.create_model_version(settings.registered_model, junk.as_uri())
    return str(new.version)


def move_champion(home: Path, version: str) -> None:
    """Point ``champion`` at ``version`` (recorded in the alias history)."""
    from core.settings import load_settings
    from model.registry import configure_mlflow, move_alias

    settings = load_settings(home=home)
    client = configure_mlflow(settings)
    move_alias(client, settings.registered_model, "champion", version, "serving test")


@pytest.fixture(scope="session")
def champion_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with data, materialized features and champion v1 (built once per session)."""
    home = tmp_path_factory.mktemp("serving") / "home"
    with pytest.MonkeyPatch.context() as patch:
        for name in SERVING_ENV:
            patch.delenv(name, raising=False)
        build_champion_home(home)
    return home


@pytest.fixture
def served_env(champion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """PERSONA_HOME pointing at the shared champion home (read-only use)."""
    for name in SERVING_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PERSONA_HOME", str(champion_home))
    return champion_home

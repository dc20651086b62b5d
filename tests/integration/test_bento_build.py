"""``persona bento build``: the built Bento serves its packaged champions with the registry unreachable."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml

from bench.serving_bench import free_port, running
from core.settings import PROJECT_ROOT
from model.registry import configure_mlflow, move_alias
from serving.bento import BENTO_MODEL, BENTO_UPLIFT_MODEL
from tests.conftest import SERVING_ENV, copy_home, register_copy_of, register_uplift_champion

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

pytestmark = pytest.mark.integration


def _script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in SERVING_ENV}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


def _build(home: Path, tmp_path: Path) -> tuple[dict[str, str], Path, str]:
    """``persona bento build`` on ``home`` into a fresh BentoML store: its environment, the store, its output."""
    bentoml_home = tmp_path / "bentoml"
    build_env = _env({"PERSONA_HOME": str(home), "BENTOML_HOME": str(bentoml_home)})
    built = subprocess.run([_script("persona"), "bento", "build"], cwd=PROJECT_ROOT, env=build_env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    return build_env, bentoml_home, built.stdout


@contextlib.contextmanager
def _served_without_registry(build_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """``bentoml serve persona:latest`` from another folder, the MLflow registry on a closed port: port and log."""
    port = free_port()
    serve_env = {**build_env, "PERSONA_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    log = tmp_path / "bento.log"
    with running([_script("bentoml"), "serve", "persona:latest", "--host", "127.0.0.1", "--port", str(port)],
                 serve_env, log, port, "/readyz", timeout=180):
        yield port, log


def test_the_built_bento_serves_its_champion_with_only_the_online_store(champion_home: Path, tmp_path: Path) -> None:
    # given a home with champion v1 and an empty BentoML store
    home = copy_home(champion_home, tmp_path / "home")
    # when the Bento is built
    build_env, bentoml_home, _ = _build(home, tmp_path)
    assert (bentoml_home / "models" / "persona-champion" / "latest").is_file()
    # and served by `bentoml serve` from another folder, with the MLflow registry unreachable
    with _served_without_registry(build_env, tmp_path) as (port, log):
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"customer_ids": [1, 2]}, timeout=30)
        info = httpx.post(f"http://127.0.0.1:{port}/model_info", json={}, timeout=30).json()
    # then the packaged champion answers, and the watcher says the registry is unreachable
    assert answer.status_code == 200, answer.text + log.read_text()[-3000:]
    assert answer.json()["model_version"] == "1"
    assert [row["status"] for row in answer.json()["predictions"]] == ["ok", "ok"]
    assert "unreachable" in str(info), info


def test_the_built_bento_serves_its_packaged_uplift_champion_beside_the_churn_champion(
    champion_home: Path, tmp_path: Path
) -> None:
    # given a home with churn champion v1 and an uplift champion
    home = copy_home(champion_home, tmp_path / "home")
    uplift_version = register_uplift_champion(home)
    # when the Bento is built
    build_env, bentoml_home, output = _build(home, tmp_path)
    assert f"{BENTO_UPLIFT_MODEL}:" in output
    manifest = yaml.safe_load(next((bentoml_home / "bentos" / "persona").glob("*/bento.yaml")).read_text())
    assert {model["tag"].split(":")[0] for model in manifest["models"]} == {BENTO_MODEL, BENTO_UPLIFT_MODEL}
    # and served with the MLflow registry unreachable
    with _served_without_registry(build_env, tmp_path) as (port, log):
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"customer_ids": [1, 2]}, timeout=30)
        info = httpx.post(f"http://127.0.0.1:{port}/model_info", json={}, timeout=30).json()
    # then both packaged champions answer: the churn fields and the uplift's next best action
    assert answer.status_code == 200, answer.text + log.read_text()[-3000:]
    for row in answer.json()["predictions"]:
        assert row["model_version"] == "1"
        assert row["uplift_model_version"] == uplift_version, row
        assert set(row["uplift"]) == {"discount"}
    assert info["uplift"]["version"] == uplift_version
    assert "unreachable" in str(info["uplift"]["last_error"]), info["uplift"]


def test_a_newer_uplift_champion_in_the_registry_replaces_the_packaged_one(
    champion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from core.settings import load_settings
    from model.trust import download_version
    from model.uplift import uplift_model_name
    from serving.bento import PackagedModel
    from serving.runtime import ServingRuntime

    # given a Bento's packaged uplift champion v1 (its files and registry tags)
    home = copy_home(champion_home, tmp_path / "home")
    packaged_version = register_uplift_champion(home)
    monkeypatch.setenv("PERSONA_HOME", str(home))
    settings = load_settings()
    name = uplift_model_name(settings.registered_model)
    client = configure_mlflow(settings)
    tags = {str(k): str(v) for k, v in (client.get_model_version(name, packaged_version).tags or {}).items()}
    packaged = PackagedModel(download_version(name, packaged_version, tmp_path / "packaged"), name,
                             packaged_version, tags)
    # and a newer uplift champion in the registry
    newer = register_copy_of(home, packaged_version, name=name)
    move_alias(client, name, "champion", newer, "a newer uplift model")
    # when the served process starts from the package and the watcher reads the registry
    caplog.set_level(logging.INFO, logger="serving")
    runtime = ServingRuntime(settings, packaged_uplift=packaged).start()
    try:
        answers = runtime.predict_customers([1, 2], "r1").results
        status = runtime.uplift_watcher.status
    finally:
        runtime.stop()
    # then the packaged version served first, and the registry's newer champion replaced it
    assert f"serving the Bento's packaged {name} v{packaged_version}" in caplog.text
    assert f"serving model v{newer} (was v{packaged_version})" in caplog.text
    assert (status.served_version, status.swaps) == (newer, 1)
    assert [row["uplift_model_version"] for row in answers] == [newer, newer]

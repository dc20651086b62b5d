"""``persona bento build``: the built Bento serves its packaged champion with the registry unreachable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from bench.serving_bench import free_port, running
from core.settings import PROJECT_ROOT
from tests.conftest import SERVING_ENV, copy_home

if TYPE_CHECKING:
    from collections.abc import Mapping

pytestmark = pytest.mark.integration


def _script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in SERVING_ENV}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


def test_the_built_bento_serves_its_champion_with_only_the_online_store(champion_home: Path, tmp_path: Path) -> None:
    # given a home with champion v1 and an empty BentoML store
    home = copy_home(champion_home, tmp_path / "home")
    bentoml_home = tmp_path / "bentoml"
    build_env = _env({"PERSONA_HOME": str(home), "BENTOML_HOME": str(bentoml_home)})
    # when the Bento is built
    built = subprocess.run([_script("persona"), "bento", "build"], cwd=PROJECT_ROOT, env=build_env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (bentoml_home / "models" / "persona-champion" / "latest").is_file()
    # and served by `bentoml serve` from another folder, with the MLflow registry unreachable
    port = free_port()
    serve_env = {**build_env, "PERSONA_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    log = tmp_path / "bento.log"
    with running([_script("bentoml"), "serve", "persona:latest", "--host", "127.0.0.1", "--port", str(port)],
                 serve_env, log, port, "/readyz", timeout=180):
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"customer_ids": [1, 2]}, timeout=30)
        info = httpx.post(f"http://127.0.0.1:{port}/model_info", json={}, timeout=30).json()
    # then the packaged champion answers, and the watcher says the registry is unreachable
    assert answer.status_code == 200, answer.text + log.read_text()[-3000:]
    assert answer.json()["model_version"] == "1"
    assert [row["status"] for row in answer.json()["predictions"]] == ["ok", "ok"]
    assert "unreachable" in str(info), info

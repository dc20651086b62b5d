"""``bentoml serve`` in a subprocess: predict, move ``champion``, see the swap, stop with the log on disk."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from bench.serving_bench import bento_command, free_port, stop, wait_http
from core.settings import PROJECT_ROOT
from tests.conftest import SERVING_ENV, copy_home, move_champion, register_copy_of

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_served_bento_predicts_swaps_champion_and_flushes_its_log(
    champion_home: Path, tmp_path: Path
) -> None:
    import subprocess

    from serving.prediction_log import read_prediction_log

    # given the service served by `bentoml serve` on a copy of the home, polling every 0.5 s
    home = copy_home(champion_home, tmp_path / "home")
    env = {k: v for k, v in os.environ.items() if k not in SERVING_ENV}
    env.update({"PERSONA_HOME": str(home), "PERSONA_MODEL_POLL_SECONDS": "0.5", "HF_HUB_OFFLINE": "1"})
    port = free_port()
    log_file = tmp_path / "bento.log"
    with open(log_file, "wb") as out:
        proc = subprocess.Popen(
            bento_command(port),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(port, "/readyz", 300, proc)
        url = f"http://127.0.0.1:{port}"

        # when a customer is predicted
        first = httpx.post(f"{url}/predict", json={"customer_ids": [1, 2]}, timeout=30)

        # then v1 answers
        assert first.status_code == 200, first.text
        assert first.json()["model_version"] == "1"

        # when champion moves to a new version
        move_champion(home, register_copy_of(home, "1"))
        versions, deadline = [], time.monotonic() + 120
        while time.monotonic() < deadline:
            response = httpx.post(f"{url}/predict", json={"customer_ids": [3]}, timeout=30)
            assert response.status_code == 200, response.text
            versions.append(response.json()["model_version"])
            if versions[-1] == "2":
                break
            time.sleep(0.2)

        # then the served process swaps to it without a failed request
        assert versions[-1] == "2", log_file.read_text()[-3000:]
        served = 1 + len(versions)
    finally:
        code = stop(proc)

    # and a SIGTERM leaves every served row in the prediction log
    log = read_prediction_log(home / "serving" / "prediction_log")
    assert code is not None
    assert len(log) == 2 + len(versions), (served, log_file.read_text()[-3000:])
    assert log["model_version"].iloc[-1] == "2"

"""The registered champion loads and predicts in a clean environment holding only the serving lock.

What a user of the MLflow model gets: a fresh virtual environment with ``serving/requirements.lock``
installed (uv, from its cache: about 2 s), and a Python started outside this checkout with no
``PYTHONPATH`` and no Persona installed. ``mlflow.pyfunc.load_model`` must find Persona's code in
the model's own ``code/`` folder (``training.lineage.bundle_code_paths``), and every package the
model pins must be the version the serving lock installs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT, load_settings
from tests.conftest import SERVING_ENV

pytestmark = pytest.mark.integration

SERVING_LOCK = PROJECT_ROOT / "serving" / "requirements.lock"
UV = Path(sys.executable).with_name("uv")

CHILD = textwrap.dedent("""
    import json, sys
    import mlflow

    local = mlflow.artifacts.download_artifacts(sys.argv[1], dst_path=sys.argv[2])  # a copy: imports write caches
    loaded = mlflow.pyfunc.load_model(local)
    predicted = loaded.predict(loaded.metadata.load_input_example(local))
    import model
    with open(f"{local}/requirements.txt") as pins:
        requirements = [line.strip().lower() for line in pins if "==" in line]
    print(json.dumps({"columns": list(predicted.columns), "rows": len(predicted), "code": model.__file__,
                      "path": sys.path, "local": local, "requirements": requirements}))
""")


def locked_pins(lock: Path) -> set[str]:
    """``name==version`` of every package in a uv-compiled lock (names lower-cased)."""
    return {
        line.split(" ")[0].lower()
        for line in lock.read_text().splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    }


def clean_env(target: Path) -> Path:
    """A new virtual environment with exactly the serving lock installed; its Python.

    Installs from uv's cache (warm after ``make setup``); falls back to the index or the
    configured find-links (``UV_FIND_LINKS``, as the Makefile sets it) for what the cache lacks.
    """
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(target)], check=True, timeout=120)
    python = target / "bin" / "python"
    sync = [str(UV), "pip", "sync", "-q", "--python", str(python), str(SERVING_LOCK)]
    if subprocess.run([*sync, "--offline"], capture_output=True, timeout=300).returncode != 0:
        done = subprocess.run(sync, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return python


def test_the_champion_loads_and_predicts_outside_the_checkout_with_only_the_serving_lock(
    champion_home: Path, tmp_path: Path
) -> None:
    # given a fresh environment holding only the serving lock (no Persona, no editable install)
    python = clean_env(tmp_path / "venv")
    settings = load_settings(home=champion_home)
    # and a shell that knows nothing of this checkout: another folder, no PYTHONPATH, no PERSONA_ variable
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in SERVING_ENV and not name.startswith(("PERSONA_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    # when the champion is loaded by its alias with MLflow's own loader and predicts its input example
    child = subprocess.run(
        [str(python), "-c", CHILD, f"models:/{settings.registered_model}@champion", str(outside / "model")],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # then it predicts churn, value, persona and action for every row
    assert child.returncode == 0, child.stderr[-3000:]
    answer = json.loads(child.stdout.strip().splitlines()[-1])
    assert answer["rows"] == 5
    assert {"churn_probability", "expected_spend", "persona", "action"} <= set(answer["columns"])
    # with Persona's code from the model's own folder, never from this checkout
    assert not any(entry.startswith(str(PROJECT_ROOT)) for entry in answer["path"]), answer["path"]
    assert Path(answer["code"]).is_relative_to(outside / "model"), answer["code"]
    # and the home's registered files were only read (a byte written there breaks their digest)
    assert not list((champion_home / "mlflow" / "artifacts").rglob("__pycache__"))
    # and every package the model pins is the version the serving lock installs
    pinned = set(answer["requirements"])
    assert pinned, "the model pins its dependencies"
    assert pinned <= locked_pins(SERVING_LOCK), pinned - locked_pins(SERVING_LOCK)

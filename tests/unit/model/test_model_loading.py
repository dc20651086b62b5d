"""Registered bundles keep loading: versions logged before the bundle moved, and without a checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from core.settings import load_settings
from model.bundle import to_model_input
from model.registry import configure_mlflow, ensure_experiment
from tests.conftest import make_training_frame
from training.config import PersonaParams, TrainConfig, XGBParams
from training.train import TrainJob

# The entry point every version registered before the bundle moved to model/ carries, verbatim.
PRE_MOVE_ENTRY = (
    "import mlflow.models\nfrom training.bundle import PersonaBundle\nmlflow.models.set_model(PersonaBundle())"
)

# Loads a logged model in a Python that sees the locked dependencies but not this checkout:
# site-packages is added without processing its .pth files (the editable install's finder).
CLEAN_LOAD = """
import json, sys
args = json.loads(sys.argv[1])
sys.path.append(args["site_packages"])
for name in ("model", "core", "training"):
    try:
        __import__(name)
    except ImportError:
        continue
    raise SystemExit(f"the checkout is importable here: {name} from {sys.modules[name].__file__}")
import mlflow.pyfunc
import pandas as pd
loaded = mlflow.pyfunc.load_model(args["model_dir"])
import model
print(json.dumps({"model_package": model.__file__}))
loaded.predict(pd.read_parquet(args["input"])).to_parquet(args["output"])
"""


@pytest.fixture
def registered(persona_home: Path, tmp_path: Path) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """Version 1 of ``persona`` as the current code logs it, its files, an input and its predictions."""
    settings = load_settings()
    frame = make_training_frame(customers=200, snapshots=3, seed=3)
    config = TrainConfig(
        xgb=XGBParams(n_estimators=20), personas=PersonaParams(k_min=2, k_max=3), horizon_days=7, purge=False
    )
    TrainJob(settings, config).run(frame)
    configure_mlflow(settings)
    current = mlflow.pyfunc.load_model("models:/persona/1")
    rows = to_model_input(frame.head(30), current.metadata.get_input_schema().input_names())
    local = Path(mlflow.artifacts.download_artifacts("models:/persona/1", dst_path=str(tmp_path / "v1")))
    return local, rows, current.predict(rows)


def test_a_version_logged_with_the_pre_move_entry_point_still_loads(
    registered: tuple[Path, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    # given a model logged as before the move: entry point importing training.bundle, no code paths
    local, rows, expected = registered
    entry = tmp_path / "bundle_entry.py"
    entry.write_text(PRE_MOVE_ENTRY)
    settings = load_settings()
    experiment_id = ensure_experiment(configure_mlflow(settings), settings, "pre-move")
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.pyfunc.log_model(
            name="old", python_model=str(entry), artifacts={"bundle": str(local / "artifacts" / "bundle")}
        )

    # when it is loaded with MLflow's own loader
    old = mlflow.pyfunc.load_model(info.model_uri)

    # then it predicts what the version logged by the current code predicts
    pd.testing.assert_frame_equal(old.predict(rows), expected)


def test_a_new_version_loads_and_predicts_without_the_checkout(
    registered: tuple[Path, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    # given the registered version's files, and a Python that cannot import this checkout
    local, rows, expected = registered
    assert (local / "code" / "model" / "bundle.py").is_file()
    assert not list(local.rglob("__pycache__"))
    rows.to_parquet(tmp_path / "input.parquet")
    args = {
        "site_packages": sysconfig.get_paths()["purelib"],
        "model_dir": str(local),
        "input": str(tmp_path / "input.parquet"),
        "output": str(tmp_path / "output.parquet"),
    }
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()

    # when the model is loaded there by its artifact path (-I: no cwd, no PYTHONPATH; -S: no .pth files)
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CLEAN_LOAD, json.dumps(args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    # then it imports the code logged with it and predicts as in this process
    assert done.returncode == 0, done.stderr[-3000:]
    loaded_from = json.loads(done.stdout.strip().splitlines()[-1])["model_package"]
    assert Path(loaded_from).is_relative_to(local / "code")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "output.parquet"), expected)

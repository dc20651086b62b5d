"""Loading a registered model verifies its artifact hash (fast: a local SQLite registry, no server).

The prod tests (tests/test_prod_serving_faults.py) prove the same through a tracking server and a
served Bento; this one runs everywhere, so dropping the check from ``load_predictor`` fails a fast test.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from core.settings import load_settings
from model.bundle import ARTIFACT_HASH_TAG, ArtifactIntegrityError, load_predictor, record_artifact_hash
from model.registry import configure_mlflow, ensure_experiment

NAME = "persona_trust_test"


class _NotABundle(mlflow.pyfunc.PythonModel):
    """The smallest pyfunc: enough to register, hash and download."""

    def predict(self, context, model_input, params=None):
        return model_input


def _register(persona_home: Path) -> tuple[str, Path]:
    """Register one version with its digest recorded; return the version and its stored files."""
    settings = load_settings()
    client = configure_mlflow(settings)
    experiment = ensure_experiment(client, settings, "trust")
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(name="model", python_model=_NotABundle(), registered_model_name=NAME)
    version = str(info.registered_model_version)
    record_artifact_hash(client, NAME, version)
    location = client.get_logged_model(info.model_id).artifact_location
    stored = Path(location.removeprefix("file://"))
    assert (stored / "MLmodel").exists(), stored
    return version, stored


def test_loading_verifies_the_artifact_hash_and_refuses_a_changed_artifact(persona_home: Path) -> None:
    # given a registered version whose digest was recorded at registration
    version, stored = _register(persona_home)
    client = configure_mlflow(load_settings())
    assert len(client.get_model_version(NAME, version).tags[ARTIFACT_HASH_TAG]) == 64

    # when loaded as stored: the hash matches, so loading goes on (and stops only because it is no Persona bundle)
    with pytest.raises(ValueError, match="is not a Persona bundle") as untouched:
        load_predictor(f"models:/{NAME}/{version}")
    assert not isinstance(untouched.value, ArtifactIntegrityError)

    # when one stored file changes after registration
    (stored / "MLmodel").write_text((stored / "MLmodel").read_text() + "\n# edited\n")

    # then loading still refuses it before any of its code runs (the loader check comes first; digest and
    # signature refusals of real bundles: tests/integration/test_model_signing.py)
    with pytest.raises(ValueError, match=rf"{NAME} v{version} is not a Persona bundle"):
        load_predictor(f"models:/{NAME}/{version}")

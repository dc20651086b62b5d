"""Registered versions load only when Persona's key vouches for them, refused before their code runs.

One home is trained once for the module (champion v1, signed at registration). Each test works on
a copy of that home; a test that changes files registers its own version from a private copy of
v1's artifacts (:func:`_signed_copy`), so nothing it does reaches another test.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import cloudpickle
import mlflow
import pytest

from core import catalog
from core.errors import PersonaError
from core.settings import load_settings
from model.bundle import UntrustedModelError, load_predictor
from model.registry import configure_mlflow, ensure_experiment, move_alias
from model.signing import SIGNATURE_TAG, SigningKeyMissing, signing_key
from model.trust import ARTIFACT_HASH_TAG, artifact_digest, download_version, record_and_sign
from tests.conftest import copy_home, make_training_frame
from training.config import PersonaParams, TrainConfig, XGBParams
from training.train import TrainJob

PERSONA = str(Path(sys.executable).with_name("persona"))
ROOT = Path(__file__).resolve().parent.parent
MODEL = "persona"


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose registry holds champion v1, registered (and signed) by training."""
    home = tmp_path_factory.mktemp("trust") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSONA_HOME", str(home))
        for name in ("PERSONA_PROFILE", "PERSONA_MODEL_SIGNING_KEY", "MLFLOW_TRACKING_URI"):
            patch.delenv(name, raising=False)
        config = TrainConfig(
            xgb=XGBParams(n_estimators=10), personas=PersonaParams(k_min=2, k_max=3), horizon_days=7, purge=False
        )
        TrainJob(load_settings(), config).run(make_training_frame(customers=150, snapshots=3, seed=3))
    return home


@pytest.fixture
def home(trained_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the trained home, selected by ``PERSONA_HOME``."""
    copy = copy_home(trained_home, tmp_path / "home")
    monkeypatch.setenv("PERSONA_HOME", str(copy))
    monkeypatch.delenv("PERSONA_MODEL_SIGNING_KEY", raising=False)
    monkeypatch.delenv("PERSONA_ALLOW_UNSIGNED_MODELS", raising=False)
    return copy


def _signed_copy(tmp: Path) -> tuple[str, Path]:
    """A new version registered (and signed, as training does) from a private copy of v1's files."""
    settings = load_settings()
    client = configure_mlflow(settings)
    files = download_version(MODEL, "1", tmp / "copy-of-v1")
    (files / "registered_model_meta").unlink(missing_ok=True)
    version = str(client.create_model_version(MODEL, files.as_uri(), run_id=client.get_model_version(MODEL, "1")
                                              .run_id).version)
    record_and_sign(client, settings, MODEL, version)
    return version, files


def _tags(version: str) -> dict[str, str]:
    return dict(configure_mlflow(load_settings()).get_model_version(MODEL, version).tags or {})


def _champion(version: str) -> None:
    move_alias(configure_mlflow(load_settings()), MODEL, "champion", version, "trust test")


def _persona(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([PERSONA, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
                          cwd=ROOT, check=False)


def _refused_by_serving(version: str) -> str:
    from serving.runtime import ServingRuntime

    with pytest.raises(UntrustedModelError) as refused:
        ServingRuntime(load_settings()).load_version(version)
    return str(refused.value)


# --------------------------------------------------------------------------- signed versions load
def test_a_version_signed_at_registration_loads_and_the_local_key_file_is_private(home: Path) -> None:
    # given v1 as training registered it
    tags = _tags("1")

    # then it carries its digest and a signature under the home's key, kept in a 0600 file
    key = signing_key(load_settings())
    assert tags[SIGNATURE_TAG].split(":")[1] == key.key_id
    assert key.secret.decode() not in str(tags)
    assert stat.S_IMODE(catalog.model_signing_key(load_settings()).stat().st_mode) == 0o600

    # when loaded, then it predicts
    predictor = load_predictor(f"models:/{MODEL}@champion", load_settings())
    frame = make_training_frame(customers=20, snapshots=1, seed=5)
    assert len(predictor.predict(frame)) == len(frame)


# --------------------------------------------------------------------------- tampering
def test_changed_files_with_a_rewritten_digest_tag_are_refused_by_score_and_serving(
    home: Path, tmp_path: Path
) -> None:
    # given a signed version whose bundle is edited, and whose digest tag is rewritten to match
    version, files = _signed_copy(tmp_path)
    bundle = files / "artifacts" / "bundle" / "bundle.json"
    bundle.write_text(bundle.read_text().replace('"spend_cuts"', '"spend_cuts" ', 1))
    forged = artifact_digest(files)
    configure_mlflow(load_settings()).set_model_version_tag(MODEL, version, ARTIFACT_HASH_TAG, forged)
    _champion(version)

    # when `persona score` runs, then it refuses in one line, naming the signature mismatch
    done = _persona("score", "--out", str(tmp_path / "scores.parquet"))
    said = (done.stdout + done.stderr).strip()
    assert done.returncode == 1, said
    assert len(said.splitlines()) == 1, said
    assert f"{MODEL} v{version}: signature mismatch" in said, said
    assert forged in said, said
    assert not (tmp_path / "scores.parquet").exists()

    # and the serving loader refuses it the same way
    assert "signature mismatch" in _refused_by_serving(version)


def test_a_signature_copied_from_another_version_does_not_verify(home: Path, tmp_path: Path) -> None:
    # given a version whose tags (digest and signature) are copied from v1, over the same files
    version, _ = _signed_copy(tmp_path)
    client = configure_mlflow(load_settings())
    client.set_model_version_tag(MODEL, version, SIGNATURE_TAG, _tags("1")[SIGNATURE_TAG])

    # when it is loaded, then the signature (bound to model and version) fails
    with pytest.raises(UntrustedModelError, match="signature mismatch"):
        load_predictor(f"models:/{MODEL}/{version}", load_settings())


# --------------------------------------------------------------------------- foreign code
class _Trojan(mlflow.pyfunc.PythonModel):
    """A pickled model that leaves a mark wherever its code runs: unpickling, loading, predicting."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).write_text("unpickled")
        self.__dict__.update(state)

    def load_context(self, context) -> None:
        Path(self.marker).write_text("load_context")

    def predict(self, context, model_input, params=None):
        Path(self.marker).write_text("predict")
        return model_input


def _register_trojan(marker: Path) -> str:
    settings = load_settings()
    client = configure_mlflow(settings)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # so any process can unpickle it
    try:
        with mlflow.start_run(experiment_id=ensure_experiment(client, settings, "attacker")):
            info = mlflow.pyfunc.log_model(name="trojan", python_model=_Trojan(str(marker)))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    marker.unlink(missing_ok=True)
    return str(mlflow.register_model(info.model_uri, MODEL).version)


def test_a_pickled_champion_is_refused_before_any_of_its_code_runs(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a pickle-flavour version, its digest tag forged, made champion, with MLflow's own pickle
    # guard off and unsigned versions allowed (the most an operator could loosen)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    monkeypatch.setenv("PERSONA_ALLOW_UNSIGNED_MODELS", "true")
    marker = tmp_path / "foreign-code-ran"
    version = _register_trojan(marker)
    files = download_version(MODEL, version, tmp_path / "trojan")
    configure_mlflow(load_settings()).set_model_version_tag(MODEL, version, ARTIFACT_HASH_TAG, artifact_digest(files))
    _champion(version)

    # when `persona score`, the serving loader, and training's champion check meet it
    done = _persona("score", "--out", str(tmp_path / "scores.parquet"))
    serving = _refused_by_serving(version)
    with pytest.raises(UntrustedModelError):
        record_and_sign(configure_mlflow(load_settings()), load_settings(), MODEL, version)

    # then each refuses it as not a Persona bundle, Persona never signs it, and no code of it ran
    said = (done.stdout + done.stderr).strip()
    assert done.returncode == 1, said
    assert len(said.splitlines()) == 1, said
    assert f"{MODEL} v{version} is not a Persona bundle" in said, said
    assert "is not a Persona bundle" in serving
    assert SIGNATURE_TAG not in _tags(version)
    assert not marker.exists()

    # and the trap was real: MLflow's own loader runs its code
    mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
    assert marker.exists()


# --------------------------------------------------------------------------- unsigned versions
def test_an_unsigned_version_is_refused_unless_the_local_profile_opts_in(
    home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given a Persona bundle registered before signing existed (digest tag, no signature)
    version, _ = _signed_copy(tmp_path)
    configure_mlflow(load_settings()).delete_model_version_tag(MODEL, version, SIGNATURE_TAG)

    # when loaded by default, then it is refused
    with pytest.raises(UntrustedModelError, match=f"v{version} is not signed"):
        load_predictor(f"models:/{MODEL}/{version}", load_settings())

    # when the local profile opts in, then it loads with a warning
    with caplog.at_level("WARNING", logger="model.trust"):
        load_predictor(f"models:/{MODEL}/{version}", load_settings(allow_unsigned_models=True))
    assert any("not signed" in r.getMessage() for r in caplog.records)

    # and the production profile cannot opt in
    with pytest.raises(PersonaError, match="PERSONA_ALLOW_UNSIGNED_MODELS"):
        load_settings(profile="prod", allow_unsigned_models=True)


def test_keys_are_never_created_by_loading_or_in_prod_and_must_be_private(home: Path) -> None:
    # given a home without a key file
    settings = load_settings()
    key_file = catalog.model_signing_key(settings)
    key_file.unlink()

    # when a version is loaded, then it is refused (no key) and no key appears
    with pytest.raises(SigningKeyMissing, match="no model signing key"):
        load_predictor(f"models:/{MODEL}/1", settings)
    assert not key_file.exists()

    # when the production profile asks for a key to sign with, then it must be given
    with pytest.raises(SigningKeyMissing, match="PERSONA_MODEL_SIGNING_KEY"):
        signing_key(load_settings(profile="prod"), create=True)
    assert not key_file.exists()

    # and a key file others can read is refused; a short key is refused
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text("k" * 64)
    key_file.chmod(0o644)
    with pytest.raises(PersonaError, match="readable by others"):
        signing_key(settings)
    with pytest.raises(PersonaError, match="at least 32"):
        signing_key(load_settings(model_signing_key="short"))


# --------------------------------------------------------------------------- rotation
def test_rotation_resigns_what_verifies_and_old_signatures_fail(home: Path, tmp_path: Path) -> None:
    # given v1 signed under the current key, and a tampered version
    old_key = signing_key(load_settings())
    old_signature = _tags("1")[SIGNATURE_TAG]
    tampered, files = _signed_copy(tmp_path)
    (files / "MLmodel").write_text((files / "MLmodel").read_text() + "\n# edited\n")

    # when the key is rotated
    done = _persona("keys", "rotate")

    # then v1 is re-signed under the new key, the tampered version is not, and the key file is private
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    new_key = signing_key(load_settings())
    assert new_key.key_id != old_key.key_id
    assert f"signing key {old_key.key_id} -> {new_key.key_id}" in said
    assert f"NOT re-signed {MODEL} v{tampered}: " in said
    assert "sha256 mismatch" in said
    assert _tags("1")[SIGNATURE_TAG].split(":")[1] == new_key.key_id
    assert stat.S_IMODE(catalog.model_signing_key(load_settings()).stat().st_mode) == 0o600
    assert old_key.secret.decode() not in said
    assert new_key.secret.decode() not in said
    load_predictor(f"models:/{MODEL}/1", load_settings())
    with pytest.raises(UntrustedModelError, match="sha256 mismatch"):
        load_predictor(f"models:/{MODEL}/{tampered}", load_settings())

    # when v1's signature under the removed key is put back, then it is refused naming that key
    configure_mlflow(load_settings()).set_model_version_tag(MODEL, "1", SIGNATURE_TAG, old_signature)
    with pytest.raises(UntrustedModelError, match=f"signed with key {old_key.key_id}, not the current key"):
        load_predictor(f"models:/{MODEL}/1", load_settings())

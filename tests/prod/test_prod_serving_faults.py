"""Faults of the production profile while serving.

Redis dies or hangs, the MLflow server is down, a model's stored artifacts were changed after
registration.

Every integration test here runs ``persona serve`` (BentoML) as a subprocess over HTTP against a
stack of its own (tests/prod/conftest.py): a ``redis-server`` and an MLflow tracking server on
free ports that the tests kill, pause and restart, a unique Postgres database and Feast project.
The stack is built once for the module (tiny data, champion v1) and every test leaves it as it
found it: Redis and MLflow up, ``champion`` on v1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT
from model.bundle import ARTIFACT_HASH_TAG, ArtifactIntegrityError, artifact_digest, verify_artifacts
from tests.prod.conftest import ProdStack, build_prod_champion, prod_stack, served_bento, train

FAULT_MARKS = (pytest.mark.integration, pytest.mark.prod, pytest.mark.slow)
ANSWER_WITHIN_S = 1.0  # a request while the online store is down or hung is answered within this
IDS = {"customer_ids": [1, 2, 3]}


def fault_test(func):
    for mark in FAULT_MARKS:
        func = mark(func)
    return func


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    """Redis, MLflow, Postgres of this module, with data materialized and champion v1 trained."""
    with prod_stack(tmp_path_factory.mktemp("prod_faults")) as built:
        build_prod_champion(built)
        yield built


def _timed_post(served, path: str, payload: dict):
    started = time.perf_counter()
    response = served.post(path, payload, timeout=10)
    return response, time.perf_counter() - started


def _answers(response) -> list[tuple]:
    """What a prediction says about each customer (leaving out its age, which grows)."""
    keys = ("customer_id", "status", "churn_probability", "expected_spend", "persona", "action", "model_version")
    return [tuple(p[k] for k in keys) + (p["features_as_of"],) for p in response.json()["predictions"]]


def _move_champion(stack: ProdStack, version: str) -> None:
    from model.registry import configure_mlflow, move_alias

    with stack.environment():
        settings = stack.settings()
        move_alias(configure_mlflow(settings), settings.registered_model, "champion", version, "fault test")


def _persona(stack: ProdStack, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    persona = str(Path(sys.executable).with_name("persona"))
    return subprocess.run(
        [persona, *args], env=stack.process_env(), capture_output=True, text=True, timeout=timeout,
        cwd=PROJECT_ROOT,
    )  # fmt: skip


# --------------------------------------------------------------------------- Redis
@fault_test
def test_redis_down_or_hung_answers_503_fast_and_serving_resumes_without_restart(
    stack: ProdStack, tmp_path: Path
) -> None:
    """Redis down or hung: 503 within 1 s, and serving resumes without a restart.

    Given the served champion reading Redis, when Redis is killed or paused, then predict answers
    503 naming the online store within 1 s, /readyz fails, bad input is still a 400; when Redis is
    back (restarted with its saved data, or resumed), the same process serves 200 again.
    """
    with served_bento(stack, tmp_path / "bento.log") as served:
        served.wait_until(lambda: served.ready_status() == 200, 300, "ready")
        before = served.post("/predict", IDS)
        assert before.status_code == 200, before.text
        assert all(p["status"] == "ok" for p in before.json()["predictions"]), before.text
        loaded_at = served.info()["loaded_at"]
        stack.redis.save()  # what a Redis with persistence has on disk when it dies

        # when Redis dies
        stack.redis.kill()
        died = time.monotonic()
        answers = [_timed_post(served, "/predict", IDS) for _ in range(5)]

        # then every request is answered 503 within 1 s, saying which store and to retry later
        for response, took in answers:
            assert response.status_code == 503, response.text
            assert took < ANSWER_WITHIN_S, (took, response.text)
            error = response.json()["error"]
            assert "online store unreachable" in error
            assert f"redis 127.0.0.1:{stack.redis.port}" in error
            assert "retry later" in error
            assert response.headers.get("Retry-After") == "1"
        # and bad input is still the caller's error, not the store's
        bad = served.post("/predict", {"customer_ids": ["x"]})
        assert bad.status_code == 400, bad.text
        assert "customer_ids" in bad.text, bad.text
        # and the service reports itself not ready, and why
        served.wait_until(lambda: served.ready_status() != 200, 10, "/readyz fails while Redis is down")
        info = served.info()
        assert info["ready"] is False, info
        assert "online store unreachable" in info["ready_reason"], info
        slowest = max(t for _, t in answers)
        print(f"\nRedis killed: 503 after {answers[0][1] * 1000:.0f} ms (max {slowest * 1000:.0f} ms), "
              f"/readyz non-200 {time.monotonic() - died:.1f} s after the kill")

        # when Redis comes back on the same port with its saved data
        stack.redis.start()
        back = time.monotonic()
        after = served.wait_until(
            lambda: (r := served.post("/predict", IDS)).status_code == 200 and r, 30, "predict 200 after restart"
        )
        recovered = time.monotonic() - back

        # then the same process (never restarted, model not reloaded) answers as before
        assert served.process.poll() is None
        assert _answers(after) == _answers(before)
        served.wait_until(lambda: served.ready_status() == 200, 10, "/readyz 200 after restart")
        assert served.info()["loaded_at"] == loaded_at
        print(f"Redis restarted: predict 200 again {recovered:.2f} s later, same process")

        # when Redis hangs (the port accepts connections, nothing answers)
        stack.redis.pause()
        try:
            hung = [_timed_post(served, "/predict", IDS) for _ in range(3)]

            # then requests still end within 1 s with 503 naming the store, and /readyz fails
            for response, took in hung:
                assert response.status_code == 503, response.text
                assert took < ANSWER_WITHIN_S, (took, response.text)
                assert "online store unreachable" in response.json()["error"]
            served.wait_until(lambda: served.ready_status() != 200, 10, "/readyz fails while Redis hangs")
            print(f"Redis hung: 503 after {hung[0][1] * 1000:.0f} ms (max {max(t for _, t in hung) * 1000:.0f} ms)")
        finally:
            stack.redis.resume()

        # when it resumes, serving resumes
        resumed = time.monotonic()
        served.wait_until(lambda: served.post("/predict", IDS).status_code == 200, 30, "predict 200 after resume")
        served.wait_until(lambda: served.ready_status() == 200, 10, "/readyz 200 after resume")
        print(f"Redis resumed: predict 200 again {time.monotonic() - resumed:.2f} s later")


# --------------------------------------------------------------------------- MLflow
@fault_test
def test_mlflow_down_at_start_is_not_ready_then_loads_by_itself_and_later_outages_keep_serving(
    stack: ProdStack, tmp_path: Path
) -> None:
    """MLflow down: not ready at start, loads by itself once up, keeps serving through later outages.

    Given the MLflow server down, when serving starts, then it is not ready and says the tracking
    server is unreachable; when MLflow comes up, the champion is loaded without a restart; when
    MLflow goes down again, the loaded model keeps serving and model_info shows the watcher's error.
    """
    tracking = f"http://127.0.0.1:{stack.mlflow_port}"
    stack.stop_mlflow()
    try:
        # when `persona serve` is started plainly, it refuses in one line naming the server
        refused = _persona(stack, "serve", "--port", "1")
        said = refused.stdout + refused.stderr
        assert refused.returncode == 1, said
        assert len(said.strip().splitlines()) == 1, said
        assert f"MLflow tracking server {tracking} unreachable" in said
        assert "--wait-for-model" in said

        # when it is started to wait for the model
        with served_bento(stack, tmp_path / "bento.log", "--wait-for-model") as served:
            # then it is alive, not ready, and says why
            assert served.ready_status() != 200
            info = served.info()
            assert info["ready"] is False
            assert info["model_version"] is None
            assert f"MLflow tracking server {tracking} unreachable" in info["last_error"], info
            assert f"MLflow tracking server {tracking} unreachable" in info["ready_reason"], info
            assert f"{tracking} unreachable" in served.log.read_text(errors="replace")
            predict = served.post("/predict", IDS)
            assert predict.status_code == 503, predict.text
            assert "no model loaded" in predict.json()["error"], predict.text

            # when MLflow comes up
            stack.start_mlflow()
            up = time.monotonic()
            served.wait_until(lambda: served.ready_status() == 200, 180, "ready once MLflow is up")
            print(f"\nMLflow up: champion loaded and ready {time.monotonic() - up:.1f} s later")

            # then the champion is served
            info = served.info()
            assert info["model_version"] == "1", info
            assert info["last_error"] is None, info
            assert served.post("/predict", IDS).status_code == 200

            # when MLflow goes down again
            stack.stop_mlflow()
            served.wait_until(lambda: served.info()["last_error"], 60, "watcher reports the outage")

            # then the last good model keeps serving, ready, and model_info says what failed
            info = served.info()
            assert f"MLflow tracking server {tracking} unreachable" in info["last_error"], info
            assert info["model_version"] == "1"
            assert info["ready"] is True
            assert info["ready_reason"] == "serving persona v1"
            response = served.post("/predict", IDS)
            assert response.status_code == 200, response.text
            assert response.json()["model_version"] == "1", response.text
            assert served.ready_status() == 200

            # and when MLflow is back, the error clears
            stack.start_mlflow()
            served.wait_until(lambda: served.info()["last_error"] is None, 120, "error cleared")
    finally:
        if not stack.mlflow_up():
            stack.start_mlflow()


# --------------------------------------------------------------------------- artifact digest
@fault_test
def test_artifacts_changed_after_registration_are_refused_by_serving_and_score(
    stack: ProdStack, tmp_path: Path
) -> None:
    """Artifacts edited after registration are refused by serving and by batch scoring.

    Given v2 registered by training (its artifact digest recorded and signed) and then edited on
    the artifact store's disk, when it becomes champion, then serving refuses it naming version,
    expected and actual digest (not ready without a previous model, else keeps the previous
    one), and `persona score` refuses it too; with the digest tag rewritten to match, the
    signature refuses it.
    """
    from model.registry import configure_mlflow

    # given a second version registered by training
    result = train(stack)
    version = result.version
    with stack.environment():
        settings = stack.settings()
        tags = configure_mlflow(settings).get_model_version(settings.registered_model, version).tags
    stored = stack.model_artifacts(version)
    registered = tags[ARTIFACT_HASH_TAG]
    assert registered == artifact_digest(stored)  # the tag is the digest of what is stored

    # when one value inside its bundle is edited on disk (the model would still load)
    bundle = stored / "artifacts" / "bundle" / "bundle.json"
    doc = json.loads(bundle.read_text())
    doc["spend_cuts"] = [0.0, 0.0]
    bundle.write_text(json.dumps(doc, indent=1))
    tampered = artifact_digest(stored)
    _move_champion(stack, version)
    try:
        with served_bento(stack, tmp_path / "bento.log") as served:
            # then, with no earlier model loaded, the service is not ready and says why
            info = served.wait_until(lambda: (i := served.info())["last_error"] and i, 120, "refusal reported")
            assert served.ready_status() != 200
            assert info["model_version"] is None
            for part in (f"persona v{version}", "sha256 mismatch", registered, tampered):
                assert part in info["last_error"], info["last_error"]

            # when the champion moves back to v1, it is served
            _move_champion(stack, "1")
            served.wait_until(lambda: served.ready_status() == 200, 120, "ready on v1")

            # when the tampered version becomes champion again
            _move_champion(stack, version)
            info = served.wait_until(
                lambda: (i := served.info())["champion_version"] == version
                and i["last_error"] and "still serving v1" in i["last_error"] and i,
                120,
                "second refusal",
            )

            # then it is refused again and v1 keeps serving
            assert "sha256 mismatch" in info["last_error"]
            assert info["model_version"] == "1"
            response = served.post("/predict", IDS)
            assert response.status_code == 200
            assert response.json()["model_version"] == "1"
            assert served.ready_status() == 200

        # and batch scoring refuses it in one line
        scored = _persona(stack, "score", "--out", str(tmp_path / "scores.parquet"))
        said = scored.stdout + scored.stderr
        assert scored.returncode == 1, said
        assert len(said.strip().splitlines()) == 1, said
        assert f"persona v{version}: artifact sha256 mismatch" in said, said
        assert registered in said, said
        assert not (tmp_path / "scores.parquet").exists()

        # and when the digest tag is rewritten to match the edited files, the signature still refuses it
        with stack.environment():
            settings = stack.settings()
            configure_mlflow(settings).set_model_version_tag(settings.registered_model, version, ARTIFACT_HASH_TAG,
                                                             tampered)
        scored = _persona(stack, "score", "--out", str(tmp_path / "scores.parquet"))
        said = scored.stdout + scored.stderr
        assert scored.returncode == 1, said
        assert len(said.strip().splitlines()) == 1, said
        assert f"persona v{version}: signature mismatch" in said, said
        assert tampered in said, said
        assert not (tmp_path / "scores.parquet").exists()
    finally:
        _move_champion(stack, "1")


# --------------------------------------------------------------------------- the digest itself
def _write(root: Path, files: dict[str, bytes], order: list[str]) -> Path:
    for name in order:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])
    return root


def test_artifact_digest_ignores_file_order_and_changes_with_one_byte(tmp_path: Path) -> None:
    # given the same files written in two different orders
    files = {"MLmodel": b"flavors: {}\n", "artifacts/bundle/bundle.json": b'{"a": 1}', "b/c.json": b"xyz"}
    first = _write(tmp_path / "one", files, ["MLmodel", "artifacts/bundle/bundle.json", "b/c.json"])
    second = _write(tmp_path / "two", files, ["b/c.json", "artifacts/bundle/bundle.json", "MLmodel"])

    # when digested
    digest = artifact_digest(first)

    # then both give the same sha256, and MLflow's download-only file does not count
    assert digest == artifact_digest(second)
    assert len(digest) == 64
    (second / "registered_model_meta").write_text("model_name: persona\nmodel_version: '1'\n")
    assert artifact_digest(second) == digest

    # and one changed byte, a renamed file or bytes moved between files change it
    (second / "b" / "c.json").write_bytes(b"xyZ")
    assert artifact_digest(second) != digest
    (second / "b" / "c.json").write_bytes(b"xyz")
    (second / "b" / "c.json").rename(second / "b" / "d.json")
    assert artifact_digest(second) != digest
    third = _write(tmp_path / "three", {**files, "MLmodel": b"flavors: {}\nx", "b/c.json": b"yz"}, list(files))
    assert artifact_digest(third) != digest


def test_verify_refuses_a_mismatch_by_name_and_loads_an_untagged_version_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given a model directory and its digest
    model = _write(tmp_path / "m", {"MLmodel": b"flavors: {}\n"}, ["MLmodel"])
    digest = artifact_digest(model)

    # when checked against another digest, then it is refused naming version and both digests
    with pytest.raises(ArtifactIntegrityError) as refused:
        verify_artifacts(model, "0" * 64, "persona", "7")
    assert "persona v7" in str(refused.value)
    assert "0" * 64 in str(refused.value)
    assert digest in str(refused.value)

    # when checked against its own digest, or against none (registered before digests existed)
    assert verify_artifacts(model, digest, "persona", "7") == digest
    with caplog.at_level("WARNING", logger="model.bundle"):
        assert verify_artifacts(model, None, "persona", "3") == digest

    # then it passes, and the untagged version is loaded with a warning that says so
    assert any("persona v3" in r.getMessage() and "unverified" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- registry errors (pure logic)
class _Registry:
    """A registry client stand-in: answers with a version, or raises what a real client raises."""

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.version = "1"

    def get_model_version_by_alias(self, model: str, alias: str):
        if self.error is not None:
            raise self.error
        return type("Version", (), {"version": self.version})()


def _refused() -> Exception:
    from mlflow.exceptions import MlflowException

    try:  # as MLflow's REST client raises it: wrapping the connection error it handled
        try:
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except ConnectionRefusedError as exc:
                raise OSError("Max retries exceeded") from exc
        except OSError as exc:
            raise MlflowException(f"API request to http://127.0.0.1:5999/api/2.0/mlflow/... failed: {exc}")  # noqa: B904
    except MlflowException as exc:
        return exc
    raise AssertionError("unreachable")


def test_an_absent_alias_is_no_champion_but_an_unreachable_server_is_an_error() -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

    from serving.registry_access import RegistryUnavailable, resolve_alias

    registry, uri = _Registry(), "http://127.0.0.1:5999"
    # given a registry without the model, or without the alias, then there is no champion
    registry.error = MlflowException("Registered Model with name=persona not found", RESOURCE_DOES_NOT_EXIST)
    assert resolve_alias(registry, "persona", uri) is None
    registry.error = MlflowException("Registered model alias champion not found.", INVALID_PARAMETER_VALUE)
    assert resolve_alias(registry, "persona", uri) is None

    # given a server that refuses connections, then the error names the server and the root cause
    registry.error = _refused()
    with pytest.raises(RegistryUnavailable) as down:
        resolve_alias(registry, "persona", uri)
    assert str(down.value) == (
        f"MLflow tracking server {uri} unreachable: ConnectionRefusedError: [Errno 111] Connection refused"
    )


def test_the_watcher_keeps_the_model_through_a_registry_outage_and_clears_the_error_after() -> None:
    from serving.model_watch import ChampionWatcher
    from serving.registry_access import resolve_alias

    # given a watcher serving v1
    registry, installed = _Registry(), []
    watcher = ChampionWatcher(
        lambda: resolve_alias(registry, "persona", "http://127.0.0.1:5999"),
        lambda version: f"model v{version}",
        lambda model, version: installed.append(model),
    )
    assert watcher.check_once() == "swapped to v1"

    # when the registry is unreachable for two polls
    registry.error = _refused()
    outcomes = [watcher.check_once(), watcher.check_once()]

    # then the model stays and the error names the server
    assert all(o.startswith("failed") for o in outcomes)
    assert installed == ["model v1"]
    assert "MLflow tracking server http://127.0.0.1:5999 unreachable" in watcher.status.last_error

    # when it answers again with the same champion, the error is cleared
    registry.error = None
    assert watcher.check_once() == "unchanged"
    assert watcher.status.last_error is None
    assert watcher.status.served_version == "1"

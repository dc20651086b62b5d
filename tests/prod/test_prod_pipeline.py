"""The production profile end to end through the command line, against the real services.

Every step is a ``persona ...`` subprocess with ``PERSONA_PROFILE=prod``, a home, a Postgres
database, a Feast project and an MLflow server port of the test's own: ``prod up`` -> generate ->
ingest -> features build/apply/materialize (Postgres offline store and registry, Redis online
store) -> train (MLflow server, Postgres backend) -> serve (BentoML, API key) -> monitor -> ``prod
down``. Skips loudly only when Postgres or Redis cannot be reached.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.prod.conftest import FOREIGN_ENV, drop_prod_state, free_port, reachable

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.prod, pytest.mark.slow]

PERSONA = str(Path(sys.executable).with_name("persona"))
API_KEY = "pipeline-test-key"
SIGNING_KEY = "pipeline-test-model-signing-key-0123456789"
MLFLOW_PASSWORD = "pipeline-test-mlflow-password"


@dataclass
class ProdCli:
    """The ``persona`` command line on a production stack of one test."""

    home: Path
    postgres_db: str
    project: str
    mlflow_port: int
    workdir: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
        env.update({
            "PERSONA_PROFILE": "prod", "PERSONA_HOME": str(self.home), "PERSONA_POSTGRES_DB": self.postgres_db,
            "PERSONA_PROJECT": self.project, "PERSONA_MLFLOW_PORT": str(self.mlflow_port),
            "PERSONA_API_KEY": API_KEY, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "PERSONA_MODEL_SIGNING_KEY": SIGNING_KEY, "PERSONA_MLFLOW_PASSWORD": MLFLOW_PASSWORD,
        })
        return env

    def settings(self):
        from core.settings import load_settings

        return load_settings(home=self.home, profile="prod", postgres_db=self.postgres_db, project=self.project,
                             mlflow_port=self.mlflow_port, api_key=API_KEY, model_signing_key=SIGNING_KEY,
                             mlflow_password=MLFLOW_PASSWORD)

    def run(self, *args: str, expect: int = 0, timeout: float = 900) -> subprocess.CompletedProcess:
        """Run ``persona *args``; fail with its output unless it exits ``expect``."""
        done = subprocess.run([PERSONA, *args], cwd=self.workdir, env=self.env(), capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == expect, (
            f"persona {' '.join(args)} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        return done

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"




def processes_mentioning(*needles: str) -> list[int]:
    """Pids whose command line contains every needle (this machine's /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if argv and all(n in argv for n in needles):
            found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def prod_cli(tmp_path: Path) -> Iterator[ProdCli]:
    """A home, Postgres database, Feast project and MLflow port of this test; all removed afterwards."""
    reason = reachable()
    if reason:
        pytest.skip(f"PRODUCTION SERVICES NOT REACHABLE: {reason}")
    suffix = uuid.uuid4().hex[:8]
    workdir = tmp_path / "work"
    workdir.mkdir()
    cli = ProdCli(home=tmp_path / "home", postgres_db=f"persona_pipe_{suffix}", project=f"persona_pipe_{suffix}",
                  mlflow_port=free_port(), workdir=workdir)
    try:
        yield cli
    finally:
        from app.services import stop_mlflow

        settings = cli.settings()
        with contextlib.suppress(Exception):
            stop_mlflow(settings)
        drop_prod_state(settings)


@contextlib.contextmanager
def served(cli: ProdCli, log: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """``persona serve`` on a free port until the block ends (SIGTERM to its group, then SIGKILL)."""
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen([PERSONA, "serve", "--port", str(port), "--poll-seconds", "1"], cwd=cli.workdir,
                                   env=cli.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def wait_ready(process: subprocess.Popen, url: str, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"persona serve exited {process.returncode}\n{log.read_text()[-4000:]}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise AssertionError(f"persona serve not ready within {timeout:.0f} s\n{log.read_text()[-4000:]}")


def test_prod_pipeline_through_the_cli(prod_cli: ProdCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg
    from mlflow import MlflowClient

    from model.registry import HISTORY_TAG
    from serving.prediction_log import read_prediction_log

    cli = prod_cli
    settings = cli.settings()
    generated = tmp_path / "generated"

    # given the production services brought up by `persona prod up`
    up = cli.run("prod", "up")
    assert "mlflow    up" in up.stdout, up.stdout
    assert f"created {cli.postgres_db}" in up.stdout, up.stdout
    status = cli.run("prod", "status")
    assert [line.split()[:2] for line in status.stdout.splitlines()] == [
        ["postgres", "up"], ["redis", "up"], ["mlflow", "up"]]
    server_pid = int((cli.home / "mlflow" / "server.pid").read_text())

    # when data is generated, ingested, built into Postgres, applied and materialized into Redis
    cli.run("generate", "--customers", "300", "--days", "120", "--seed", "3", "--start", "2025-01-01",
            "--out", str(generated))
    ingested = cli.run("ingest", *[arg for table in ("customers", "transactions", "sessions", "reviews")
                                   for arg in (f"--{table}", str(generated / f"{table}.parquet"))])
    built = cli.run("features", "build")
    applied = cli.run("features", "apply")
    materialized = cli.run("features", "materialize")

    # then every step reports on the production stores
    assert "customers: read 300 · accepted 300" in ingested.stdout, ingested.stdout
    assert f"postgres:{cli.postgres_db}.customer_behavior" in built.stdout, built.stdout
    assert f"project {cli.project}: 1 entities, 4 feature views" in applied.stdout, applied.stdout
    assert "customer_behavior: materialized 300 rows" in materialized.stdout, materialized.stdout

    # when a model is trained
    trained = cli.run("train", "--horizon-days", "28")
    # (300 customers: the gate may keep the first model a challenger when it does not beat its own
    # logistic baseline by the margin; an operator then promotes it by hand, as here)
    if "registered persona v1 -> challenger (first model; below its own baselines" in trained.stdout:
        promoted = cli.run("promote", "--version", "1", "--reason", "pipeline test: serve v1")
        assert "champion" in promoted.stdout, promoted.stdout
        moves = [(1, "challenger", None, "1"), (1, "champion", None, "1")]  # each alias numbers its moves
    else:
        assert "registered persona v1 -> champion" in trained.stdout, trained.stdout[-2000:]
        moves = [(1, "champion", None, "1")]

    # then the MLflow server refuses anonymous calls, and knows the run, version 1 and the champion alias ...
    anonymous = httpx.get(f"{cli.mlflow_url}/api/2.0/mlflow/registered-models/search", timeout=5)
    assert anonymous.status_code == 401, anonymous.text
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", settings.mlflow_username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MLFLOW_PASSWORD)
    client = MlflowClient(tracking_uri=cli.mlflow_url, registry_uri=cli.mlflow_url)
    champion = client.get_model_version_by_alias("persona", "champion")
    run = client.get_run(champion.run_id)
    assert champion.version == "1"
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "persona-training"
    assert run.data.metrics["churn_roc_auc"] > 0.5
    assert run.data.tags["feast.project"] == cli.project
    history = json.loads(champion.tags[HISTORY_TAG])
    assert [(m["seq"], m["alias"], m["from"], m["to"]) for m in history] == moves
    # ... the server's Postgres backend database holds them, and the artifacts live under the home
    with psycopg.connect(f"host={settings.postgres_host} port={settings.postgres_port} user={settings.postgres_user} "
                         f"dbname={cli.postgres_db}_mlflow") as conn:
        assert conn.execute("SELECT status FROM runs WHERE run_uuid = %s", (champion.run_id,)).fetchone() == (
            "FINISHED",)
        assert conn.execute("SELECT version, run_id FROM model_versions WHERE name = 'persona'").fetchall() == [
            (1, champion.run_id)]
        assert conn.execute("SELECT version FROM registered_model_aliases WHERE name = 'persona' "
                            "AND alias = 'champion'").fetchall() == [(1,)]
    assert list((cli.home / "mlflow" / "artifacts").rglob("MLmodel")), "no model artifacts under the home"

    # when the champion is served with the API key
    log = tmp_path / "serve.log"
    known = list(range(1, 21))
    with served(cli, log) as (process, url):
        wait_ready(process, url, log)
        headers = {"X-API-Key": API_KEY}
        answers = [httpx.post(f"{url}/predict", json={"customer_ids": known[i:i + 10]}, headers=headers,
                              timeout=30) for i in (0, 10)]
        bad_type = httpx.post(f"{url}/predict", json={"customer_ids": ["seven"]}, headers=headers, timeout=30)
        empty = httpx.post(f"{url}/predict", json={"customer_ids": []}, headers=headers, timeout=30)
        unknown_field = httpx.post(f"{url}/predict", json={"customer_ids": [1], "extra": 1}, headers=headers,
                                   timeout=30)
        no_key = httpx.post(f"{url}/predict", json={"customer_ids": [1]}, timeout=30)
        wrong_key = httpx.post(f"{url}/predict", json={"customer_ids": [1]}, headers={"X-API-Key": "nope"},
                               timeout=30)

        # then known customers get predictions from v1 and bad requests a 4xx naming the problem
        for answer in answers:
            assert answer.status_code == 200, answer.text
        predictions = [p for answer in answers for p in answer.json()["predictions"]]
        assert [p["customer_id"] for p in predictions] == known
        for p in predictions:
            assert p["status"] == "ok", p
            assert p["model_version"] == "1", p
            assert 0.0 <= p["churn_probability"] <= 1.0, p
            assert p["expected_spend"] >= 0.0, p
            assert p["persona"], p
            assert p["action"], p
        assert bad_type.status_code == 400, bad_type.text
        assert bad_type.json()["field"] == "customer_ids[0]", bad_type.text
        assert empty.status_code == 400, empty.text
        assert "customer_ids" in empty.text, empty.text
        assert unknown_field.status_code == 400, unknown_field.text
        assert "extra" in unknown_field.text, unknown_field.text
        assert no_key.status_code == 401
        assert wrong_key.status_code == 401

        # when the served predictions reach the prediction log (flushed every few seconds)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            served_log = read_prediction_log(cli.home / "serving" / "prediction_log")
            if len(served_log) >= len(known):
                break
            time.sleep(0.5)
        assert len(served_log) == len(known), log.read_text()[-3000:]

        # and monitoring runs against it
        monitored = cli.run("monitor", "--no-retrain")

    # then a report is written and recorded as a run of persona-monitoring on the server
    line = next(text for text in monitored.stdout.splitlines() if text.startswith("monitor v1: "))
    report_dir = Path(line.rsplit(" -> ", 1)[1])
    summary = json.loads((report_dir / "summary.json").read_text())
    assert (report_dir / "index.html").exists()
    assert (report_dir / "drift_report.html").exists()
    assert summary["champion"]["version"] == "1"
    assert summary["window"]["sources"]["prediction_log"] == len(known), summary["window"]
    monitor_run = client.get_run(summary["mlflow_run_id"])
    assert client.get_experiment(monitor_run.info.experiment_id).name == "persona-monitoring"
    assert monitor_run.data.tags["status"] == summary["status"]
    assert monitor_run.data.metrics["window_rows"] == summary["window"]["rows"]

    # when the services are brought down
    down = cli.run("prod", "down")

    # then the MLflow server and its workers are gone, and status says so
    assert down.stdout.strip() == f"mlflow server: stopped (pid {server_pid})", down.stdout
    assert not running(server_pid)
    assert processes_mentioning("mlflow", f"--port {cli.mlflow_port}") == []
    assert not (cli.home / "mlflow" / "server.pid").exists()
    after = cli.run("prod", "status", expect=1)
    assert "mlflow    DOWN" in after.stdout, after.stdout

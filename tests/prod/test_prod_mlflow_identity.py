"""The prod MLflow server: started with authentication, and recognised by identity, not by ``/health``."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest

from core.errors import PersonaError
from core.settings import load_settings
from tests.prod.conftest import free_port, postgres_unreachable

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.prod]

PASSWORD = "identity-test-mlflow-password"
# Answers 200 to every GET, like any process that squats the MLflow port.
IMPOSTOR = """
import http.server, sys
class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"OK")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ok).serve_forever()
"""


@pytest.fixture
def prod(tmp_path: Path):
    """Prod settings with a database, a port and a home of this test's own (dropped afterwards)."""
    reason = postgres_unreachable()
    if reason:
        pytest.skip(f"PRODUCTION SERVICES NOT REACHABLE: {reason}")
    from app.services import ensure_databases, stop_mlflow

    settings = load_settings(home=tmp_path / "home", profile="prod", postgres_db=f"persona_id_{uuid.uuid4().hex[:8]}",
                             mlflow_port=free_port(), mlflow_password=PASSWORD)
    ensure_databases(settings)
    yield settings
    stop_mlflow(settings)
    import psycopg

    with psycopg.connect(f"host={settings.postgres_host} port={settings.postgres_port} user={settings.postgres_user} "
                         "dbname=postgres", autocommit=True) as conn:
        for name in (settings.postgres_db, settings.postgres_db + "_mlflow"):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_process_answering_health_on_the_port_is_not_taken_for_our_server(prod, tmp_path: Path) -> None:
    from app.services import mlflow_status, start_mlflow

    # given another process answering 200 on the MLflow port
    impostor = subprocess.Popen([sys.executable, "-c", IMPOSTOR, str(prod.mlflow_port)])
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{prod.mlflow_port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
        # when the status is asked and the server is started, then it is refused, naming the fix
        status = mlflow_status(prod)
        assert not status.ok
        assert "no MLflow server was started from this home" in status.detail
        with pytest.raises(PersonaError, match="is not this home's MLflow server"):
            start_mlflow(prod)
    finally:
        impostor.kill()
        impostor.wait(10)


def test_the_started_server_requires_authentication_and_is_recognised_by_its_pid(prod) -> None:
    from app.services import mlflow_status, start_mlflow
    from model.registry import configure_mlflow

    # given no password, when the server would start, then it refuses to start one without authentication
    with pytest.raises(PersonaError, match="PERSONA_MLFLOW_PASSWORD"):
        start_mlflow(load_settings(home=prod.home, profile="prod", mlflow_port=prod.mlflow_port))

    # when started with one
    status = start_mlflow(prod)

    # then it is up, refuses anonymous calls, accepts Persona's clients and not a wrong password
    assert status.ok, status.detail
    url = f"http://127.0.0.1:{prod.mlflow_port}/api/2.0/mlflow/registered-models/search"
    assert httpx.get(url, timeout=5).status_code == 401
    assert httpx.get(url, auth=(prod.mlflow_username, PASSWORD), timeout=5).status_code == 200
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        patch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
        assert configure_mlflow(prod).search_registered_models() == []
    wrong = load_settings(home=prod.home, profile="prod", mlflow_port=prod.mlflow_port,
                          mlflow_password="not-the-password-at-all")
    assert "got 401" in mlflow_status(wrong).detail

    # and another home does not take it for its own
    other = load_settings(home=prod.home.parent / "other", profile="prod", mlflow_port=prod.mlflow_port,
                          mlflow_password=PASSWORD)
    assert not mlflow_status(other).ok

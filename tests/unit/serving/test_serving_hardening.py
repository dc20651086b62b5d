"""Serving inputs and settings an attacker or a clumsy operator would try (no server process)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app
from core.errors import PersonaError
from core.settings import PROJECT_ROOT, check_setting, load_settings
from serving.auth import resolve_api_key
from serving.guard import RequestGuardMiddleware


@pytest.mark.parametrize("key", [" ", "\t\n", "   \n"])
def test_a_whitespace_api_key_is_no_key_and_does_not_pass_the_prod_gate(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the prod profile with a key made of whitespace only
    monkeypatch.delenv("PERSONA_SERVING_AUTH", raising=False)
    monkeypatch.setenv("PERSONA_API_KEY", key)
    # when the key is resolved
    # then it counts as no key: the prod gate refuses
    assert load_settings().api_key is None
    with pytest.raises(PersonaError, match="PERSONA_API_KEY"):
        resolve_api_key(load_settings(profile="prod"))
    # and a key with stray spaces around it is the key itself
    monkeypatch.setenv("PERSONA_API_KEY", " k3y\n")
    assert resolve_api_key(load_settings(profile="prod")) == "k3y"


@pytest.mark.parametrize("value", ["inf", "1e400"])  # (nan: refused by the option range already)
def test_serve_poll_seconds_goes_through_the_settings_validation(persona_home, value: str) -> None:
    # given `persona serve --poll-seconds inf` (the watcher would never poll while the server stays ready)
    # when the command runs
    result = CliRunner().invoke(app, ["serve", "--port", "3999", "--poll-seconds", value, "--wait-for-model"])
    # then it fails in one line naming the setting, before anything is started
    assert result.exit_code != 0
    assert "PERSONA_MODEL_POLL_SECONDS" in result.output
    assert "finite" in result.output
    assert len(result.output.strip().splitlines()) <= 2
    assert check_setting("model_poll_seconds", 2.5) == 2.5


async def _echo(request):
    return JSONResponse({"got": len(await request.body())})


async def _invalid(request):
    return JSONResponse(
        {"error": "2 validation errors for Input", "detail": [
            {"type": "int_type", "loc": ["customer_ids", 2], "msg": "Input should be a valid integer"},
            {"type": "missing", "loc": ["k"], "msg": "Field required"},
        ]},
        status_code=400,
    )


def _guarded(body_timeout: float = 10.0) -> RequestGuardMiddleware:
    routes = [Route("/predict", _echo, methods=["POST"]), Route("/invalid", _invalid, methods=["POST"])]
    return RequestGuardMiddleware(Starlette(routes=routes), api_paths=("/predict", "/invalid"),
                                  body_timeout=body_timeout)


def test_validation_400_detail_is_a_string_as_the_schema_says() -> None:
    from serving.service import PersonaService

    # given the schema's 400 body and a validation error with two problems
    schema = PersonaService.openapi_spec.asdict()["components"]["schemas"]["InvalidArgument"]
    response = TestClient(_guarded()).post("/invalid", json={})
    # then every field of the body has the schema's type
    body = response.json()
    assert response.status_code == 400
    assert schema["properties"]["detail"]["type"] == "string"
    assert isinstance(body["detail"], str)
    assert body["detail"] == "customer_ids[2]: Input should be a valid integer; k: required field is missing"
    assert isinstance(body["error"], str)


async def _drive(app, messages: list[dict], delay_after: int | None = None) -> list[dict]:
    """Run one ASGI request whose body messages are ``messages``; stall forever after ``delay_after`` of them."""
    sent: list[dict] = []
    queue = list(messages)

    async def receive() -> dict:
        if delay_after is not None and len(messages) - len(queue) >= delay_after:
            await asyncio.sleep(3600)
        return queue.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [
        (b"content-type", b"application/json"), (b"content-length", b"100")], "query_string": b""}
    await asyncio.wait_for(app(scope, receive, send), 5)
    return sent


def test_a_stalled_body_is_answered_408_and_the_connection_closed() -> None:
    # given a guard with a 0.2 s body timeout and a client that sends part of its body, then nothing
    first = {"type": "http.request", "body": b'{"customer_ids": [', "more_body": True}
    # when the request is served
    sent = asyncio.run(_drive(_guarded(0.2), [first], delay_after=1))
    # then it is answered 408 with Connection: close
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert "body" in json.loads(sent[1]["body"])["error"]


def test_a_client_disconnect_logs_one_line_and_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    # given a client that goes away mid-body
    first = {"type": "http.request", "body": b'{"customer_ids": [', "more_body": True}
    with caplog.at_level(logging.INFO):
        sent = asyncio.run(_drive(_guarded(), [first, {"type": "http.disconnect"}]))
    # then nothing is answered and the log holds one line without a traceback
    assert sent == []
    records = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(records) == 1
    assert records[0].exc_info is None
    assert all(r.exc_info is None for r in caplog.records)


def test_model_info_shows_no_absolute_server_paths(served_env) -> None:
    from serving.runtime import ServingRuntime

    # given a runtime on a home (not started: the log directory is all it reports)
    runtime = ServingRuntime(load_settings(), None)
    # when its info is asked for
    info = runtime.info()
    # then the prediction log is named relative to the home
    assert info["prediction_log"]["directory"] == "serving/prediction_log"
    assert str(served_env) not in json.dumps(info)


def test_metrics_answer_prometheus_text_and_follow_the_served_version() -> None:
    # (a fresh interpreter: prometheus_client keeps counter values in process-wide state, which
    # other tests of this process - BentoML sets it up for multi-process mode - would share)
    script = textwrap.dedent("""
        import json
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route
        from starlette.testclient import TestClient
        from serving.metrics import MetricsMiddleware, ServingMetrics

        async def echo(request):
            return JSONResponse({"got": len(await request.body())})

        # given the metrics middleware around an app, with v1 then v2 served
        routes = [Route("/predict", echo, methods=["POST"])]
        middleware = MetricsMiddleware(Starlette(routes=routes), paths=("/predict",), timed=("/predict",))
        middleware.metrics = ServingMetrics()
        middleware.metrics.served_version("1")
        middleware.metrics.served_version("2")
        client = TestClient(middleware)
        client.post("/predict", json={})
        client.get("/nowhere")
        # when /metrics is read
        print(json.dumps(client.get("/metrics").text))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          cwd=PROJECT_ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    text = json.loads(done.stdout.strip().splitlines()[-1])
    # then requests are counted by path and status, latency observed, and only v2 is served
    assert 'persona_requests_total{path="/predict",status="200"} 1.0' in text
    assert 'persona_requests_total{path="other",status="404"} 1.0' in text
    assert 'persona_request_seconds_count{path="/predict"} 1.0' in text
    assert 'persona_model_info{version="2"} 1.0' in text
    assert 'persona_model_info{version="1"} 0.0' in text

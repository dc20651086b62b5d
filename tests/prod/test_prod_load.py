"""The open-loop load generator (bench/load.py) and a load test of the Bento on the production profile.

Unit tests cover the generator's pure parts (schedule, percentiles, summaries, the answer
checks and the request mix) and its HTTP edge against a small local server. The integration
test serves a champion trained on the production profile (Postgres offline store and Feast
registry, Redis online store) with ``persona serve`` and sends it 20k requests at 300 per
second, valid and invalid mixed: no 5xx, every valid request answered 200 with a well-formed
body, every invalid one the expected 4xx naming the field.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from bench.load import (
    AUTH_KINDS,
    MAX_BATCH,
    PREDICT_MIX,
    LoadRequest,
    Outcome,
    drive,
    expect_error,
    expect_predictions,
    percentile_ms,
    predict_mix,
    prediction_problem,
    schedule,
    status_class,
    summarize,
)


# --------------------------------------------------------------------------- schedule and summaries
def test_schedule_spaces_requests_evenly_at_the_rate():
    # given / when
    due = schedule(5, rate=4.0, start=1.0)

    # then request i is due at start + i / rate
    assert due.tolist() == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert schedule(0, 10.0).size == 0


@pytest.mark.parametrize(("count", "rate"), [(-1, 10.0), (3, 0.0), (3, -5.0), (3, float("nan")), (3, float("inf"))])
def test_schedule_refuses_nonsense(count, rate):
    # given a negative count or a rate that is not a positive number / when / then
    with pytest.raises(ValueError, match="count|rate"):
        schedule(count, rate)


def test_percentile_is_in_milliseconds_and_nan_when_empty():
    # given latencies of 1..100 ms (in seconds)
    latencies = [i / 1000 for i in range(1, 101)]

    # when / then: linear interpolation, like numpy
    assert percentile_ms(latencies, 50) == pytest.approx(50.5)
    assert percentile_ms(latencies, 99) == pytest.approx(99.01)
    assert percentile_ms(latencies, 100) == pytest.approx(100.0)
    assert math.isnan(percentile_ms([], 50))


def test_status_class():
    # given / when / then
    assert [status_class(s) for s in (200, 204, 400, 413, 503, None)] == [
        "2xx", "2xx", "4xx", "4xx", "5xx", "no answer",
    ]


def _outcome(i: int, valid: bool, status: int | None, latency: float, lag: float = 0.0,
             problem: str | None = None, rate: float = 10.0) -> Outcome:
    return Outcome(i, "single" if valid else "bad_json", valid, i / rate, lag, latency, status, problem)


def test_summary_counts_classes_and_splits_latency_by_validity():
    # given 4 valid answers (10..40 ms), 2 invalid ones (100, 200 ms), a 500 and a request without answer
    outcomes = [_outcome(i, True, 200, (i + 1) / 100) for i in range(4)]
    outcomes += [_outcome(4, False, 400, 0.1), _outcome(5, False, 413, 0.2)]
    outcomes += [_outcome(6, True, 503, 0.05, problem="status 503"), _outcome(7, True, None, 30.0, problem="timeout")]

    # when
    summary = summarize(outcomes, rate=10.0, elapsed=1.0)

    # then
    assert summary.sent == 8
    assert summary.classes == {"2xx": 4, "4xx": 2, "5xx": 1, "no answer": 1}
    assert summary.valid_classes == {"2xx": 4, "5xx": 1, "no answer": 1}
    assert summary.invalid_classes == {"4xx": 2}
    assert summary.statuses == {200: 4, 400: 1, 413: 1, 503: 1}
    assert summary.kinds["bad_json"] == {"400": 1, "413": 1}
    assert summary.kinds["single"] == {"200": 4, "503": 1, "no answer": 1}
    # the 503 counts in the valid latencies, the request without an answer does not
    assert summary.valid_p50_ms == pytest.approx(30.0)
    assert summary.invalid_p50_ms == pytest.approx(150.0)
    assert summary.max_ms == pytest.approx(200.0)
    assert summary.problems == 2
    assert summary.problem_examples[0].startswith("single (request 6): status 503")
    assert summary.completed_rate == pytest.approx(7.0)


def test_summary_achieved_rate_follows_actual_send_times():
    # given 11 requests due every 100 ms, the last one handed over 100 ms late
    outcomes = [_outcome(i, True, 200, 0.01, lag=0.1 if i == 10 else 0.0) for i in range(11)]

    # when
    summary = summarize(outcomes, rate=10.0, elapsed=1.2)

    # then 10 intervals over 1.1 s
    assert summary.achieved_rate == pytest.approx(10 / 1.1)
    assert summary.lag_max_ms == pytest.approx(100.0)
    assert any("problems: 0" in line for line in summary.lines())


# --------------------------------------------------------------------------- answer checks
def _prediction(customer_id: int, ok: bool = True, version: str = "3", **changes) -> dict:
    base = {"customer_id": customer_id, "status": "ok", "churn_probability": 0.25, "expected_orders": 1.5,
            "expected_spend": 30.0, "segment": 1, "persona": "loyal", "action": "none", "model_version": version,
            "features_as_of": {"customer_behavior": "2025-01-01T00:00:00Z"}, "feature_age_seconds": 10.0,
            "cold_start_reason": None}
    if not ok:
        base.update(status="cold_start", churn_probability=None, expected_orders=None, expected_spend=None,
                    segment=None, persona=None, action=None, cold_start_reason="unknown customer")
    return {**base, **changes}


def _answer(*predictions: dict) -> dict:
    return {"request_id": "r-1", "model_version": "3", "predictions": list(predictions)}


def test_prediction_check_accepts_a_well_formed_answer():
    # given known customers 1 and 2, unknown 99, answered in request order
    answer = _answer(_prediction(2), _prediction(99, ok=False), _prediction(1))

    # when / then
    assert prediction_problem(answer, [2, 99, 1], {1, 2}) is None
    assert expect_predictions([2, 99, 1], {1, 2})(200, json.dumps(answer).encode()) is None


@pytest.mark.parametrize(
    ("answer", "wanted"),
    [
        (_answer(_prediction(1), _prediction(2)), "expected 1 predictions"),
        (_answer(_prediction(2)), "not customer 1"),
        (_answer(_prediction(1, ok=False)), "known customer 1 not predicted"),
        (_answer(_prediction(1, churn_probability=1.5)), "churn_probability 1.5"),
        (_answer(_prediction(1, churn_probability=None)), "churn_probability None"),
        (_answer(_prediction(1, expected_spend=-1.0)), "expected_spend"),
        (_answer(_prediction(1, persona=None)), "persona missing"),
        (_answer(_prediction(1, version="2")), "model_version differs"),
        ({"request_id": "", "model_version": "3", "predictions": []}, "request_id"),
        ([], "not a JSON object"),
    ],
)
def test_prediction_check_names_what_is_wrong(answer, wanted):
    # given a malformed answer to a request for known customer 1 / when
    problem = prediction_problem(answer, [1], {1})

    # then
    assert problem is not None
    assert wanted in problem


def test_prediction_check_wants_cold_start_for_unknown_customers():
    # given / when / then
    assert "not answered cold_start" in prediction_problem(_answer(_prediction(7)), [7], {1})
    assert "not answered cold_start" in prediction_problem(
        _answer(_prediction(7, ok=False, cold_start_reason=None)), [7], {1})


def test_prediction_check_wants_200_and_json():
    # given / when / then
    check = expect_predictions([1], {1})
    assert "status 500" in check(500, b'{"error": "boom"}')
    assert "not JSON" in check(200, b"<html>")


def test_error_check_wants_status_field_and_mention():
    # given an expected 400 naming customer_ids[1]
    check = expect_error(400, "customer_ids[1]")
    good = json.dumps({"error": "customer_ids[1]: Input should be a valid integer", "field": "customer_ids[1]"})

    # when / then
    assert check(400, good.encode()) is None
    assert "status 500" in check(500, good.encode())
    assert "field 'customer_ids'" in check(400, b'{"error": "customer_ids[1]: bad", "field": "customer_ids"}')
    assert "does not name" in check(400, b'{"error": "bad input", "field": "customer_ids[1]"}')
    assert "not JSON" in check(400, b"Bad Request")
    assert "without an error message" in check(400, b'{"detail": "x"}')
    assert expect_error(401, "X-API-Key", "API key")(401, b'{"error": "invalid API key", "field": "X-API-Key"}') is None


# --------------------------------------------------------------------------- the request mix
def test_mix_is_reproducible_and_covers_every_kind():
    # given / when
    first = predict_mix([1, 2, 3], 4_000, api_key="k", seed=5)
    again = predict_mix([1, 2, 3], 4_000, api_key="k", seed=5)

    # then the same seed gives the same requests, and every kind is there in about its share
    assert [(r.kind, r.body) for r in first] == [(r.kind, r.body) for r in again]
    counts = {kind: sum(r.kind == kind for r in first) for kind in PREDICT_MIX}
    total = sum(PREDICT_MIX.values())
    for kind, share in PREDICT_MIX.items():
        assert abs(counts[kind] / 4_000 - share / total) < 0.02, kind


def test_mix_requests_break_exactly_what_their_kind_says():
    # given one request of each kind
    mix = predict_mix([10, 20, 30], 3_000, api_key="secret", seed=1)
    one = {r.kind: r for r in mix}

    def payload(kind: str) -> object:
        return json.loads(one[kind].body)

    # then valid requests ask for known customers (or deliberately unknown ones) with the key
    assert payload("single")["customer_ids"][0] in (10, 20, 30)
    assert len(payload("batch_100")["customer_ids"]) == 100
    assert all(i > 1_000_000 for i in payload("unknown_id")["customer_ids"])
    assert one["bearer_auth"].headers["Authorization"] == "Bearer secret"
    assert all(r.headers.get("X-API-Key") == "secret" for r in mix if r.valid and r.kind != "bearer_auth")
    # and each invalid request breaks one rule
    with pytest.raises(json.JSONDecodeError):
        json.loads(one["bad_json"].body)
    assert len(payload("oversized_batch")["customer_ids"]) == MAX_BATCH + 1
    assert payload("empty_list") == {"customer_ids": []}
    assert "customer_id" in payload("unknown_field")
    assert isinstance(payload("wrong_type_string")["customer_ids"][1], str)
    assert payload("out_of_range")["customer_ids"][1] == 2**70
    assert isinstance(payload("not_an_object"), list)
    assert "X-API-Key" not in one["missing_api_key"].headers
    assert one["wrong_api_key"].headers["X-API-Key"] != "secret"
    assert one["wrong_content_type"].headers["Content-Type"] == "text/plain"
    assert {r.valid for r in mix if r.kind in PREDICT_MIX} == {True, False}


def test_mix_without_api_key_leaves_out_the_auth_kinds():
    # given a server without a key / when
    mix = predict_mix([1], 2_000, api_key=None)

    # then
    assert not {r.kind for r in mix} & AUTH_KINDS
    assert all("X-API-Key" not in r.headers for r in mix)


def test_mix_refuses_no_customers_and_unknown_kinds():
    # given / when / then
    with pytest.raises(ValueError, match="known_ids"):
        predict_mix([], 10)
    with pytest.raises(ValueError, match="unknown request kinds"):
        predict_mix([1], 10, shares={"single": 1.0, "teleport": 1.0})


# --------------------------------------------------------------------------- the HTTP edge
class _Handler(BaseHTTPRequestHandler):
    """200 echoing the body on /echo, 500 on /boom (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = 200 if self.path == "/echo" else 500
        payload = json.dumps({"got": body.decode(), "content_type": self.headers.get("Content-Type")}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def echo_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_run_load_records_every_answer_and_check(echo_server):
    # given requests that succeed, fail on the server, fail their check and crash their check
    def wants_b(status: int, body: bytes) -> str | None:
        return None if json.loads(body)["got"] == "b" else "not b"

    def crashes(status: int, body: bytes) -> str | None:
        raise KeyError("oops")

    requests = [
        LoadRequest("echo", True, b"a", {"Content-Type": "application/json"}, "/echo"),
        LoadRequest("boom", True, b"x", {"Content-Type": "application/json"}, "/boom"),
        LoadRequest("checked", False, b"a", {}, "/echo", check=wants_b),
        LoadRequest("crashing", False, b"a", {}, "/echo", check=crashes),
    ]

    # when 40 requests go out at 200/s
    run = drive(echo_server, requests, rate=200.0, count=40)

    # then every request has an outcome, in schedule order, with its status and checks
    assert [o.index for o in run.outcomes] == list(range(40))
    assert run.summary.statuses == {200: 30, 500: 10}
    assert run.summary.kinds["boom"] == {"500": 10}
    assert run.summary.problems == 20
    assert {o.problem for o in run.outcomes if o.kind == "checked"} == {"not b"}
    assert all(o.problem.startswith("check raised KeyError") for o in run.outcomes if o.kind == "crashing")
    assert all(o.latency > 0 for o in run.outcomes)


def test_run_load_sends_only_the_requests_own_headers(echo_server):
    # given a request without Content-Type and one with its own
    def content_type_is(wanted: str | None):
        return lambda status, body: None if json.loads(body)["content_type"] == wanted else body.decode()

    requests = [LoadRequest("bare", True, b"{}", {}, "/echo", check=content_type_is(None)),
                LoadRequest("text", False, b"{}", {"Content-Type": "text/plain"}, "/echo",
                            check=content_type_is("text/plain"))]

    # when
    run = drive(echo_server, requests, rate=20.0, count=4)

    # then the server saw exactly the request's own Content-Type (none added for a bytes body)
    assert run.summary.statuses == {200: 4}
    assert run.summary.problems == 0, run.summary.problem_examples


def test_run_load_counts_a_closed_port_as_no_answer():
    # given a port nobody listens on
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    # when
    run = drive(f"http://127.0.0.1:{port}", [LoadRequest("x", True, b"{}", {})], rate=50.0, count=5, timeout_s=5)

    # then
    assert run.summary.classes == {"no answer": 5}
    assert all(o.status is None and o.problem.startswith("no answer") for o in run.outcomes)


# --------------------------------------------------------------------------- integration: the Bento on Redis
@pytest.fixture
def prod_bento(persona_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``persona serve`` on the production profile: a champion trained on 300 customers, features in Redis.

    Own Postgres database and Feast project (keys and databases removed afterwards); MLflow keeps
    its SQLite store under the home. Yields (url, API key, known customer ids).
    """
    from app.services import ensure_databases
    from bench.prod_bench import delete_project_keys, drop_databases, known_customers, services_problem
    from bench.serving_bench import free_port, running
    from core.settings import load_settings
    from tests.conftest import build_champion_home

    problem = services_problem()
    if problem:
        pytest.skip(f"PRODUCTION SERVICES NOT REACHABLE: {problem}")
    for name in [k for k in os.environ if k.startswith("PERSONA_") and k != "PERSONA_HOME"]:
        monkeypatch.delenv(name)
    suffix = uuid.uuid4().hex[:8]
    api_key = f"load-test-{suffix}"
    (persona_home / "mlflow").mkdir(parents=True)
    monkeypatch.setenv("PERSONA_PROFILE", "prod")
    monkeypatch.setenv("PERSONA_POSTGRES_DB", f"persona_load_{suffix}")
    monkeypatch.setenv("PERSONA_PROJECT", f"persona_load_{suffix}")
    monkeypatch.setenv("PERSONA_MLFLOW_TRACKING_URI", f"sqlite:///{persona_home / 'mlflow' / 'mlflow.db'}")
    monkeypatch.setenv("PERSONA_API_KEY", api_key)
    # the prod profile signs and verifies every version with a key it never creates itself
    monkeypatch.setenv("PERSONA_MODEL_SIGNING_KEY", f"load-test-model-signing-key-{suffix}-{suffix}")
    # a SQLite-backed MLflow store keeps artifacts under ./mlruns: keep them in this test's directory
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    ensure_databases(settings)
    try:
        build_champion_home(persona_home, customers=300)
        known = known_customers(settings)
        port = free_port()
        command = [str(Path(sys.executable).with_name("persona")), "serve", "--port", str(port)]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        with running(command, env, tmp_path / "serve.log", port, "/readyz", timeout=240):
            yield f"http://127.0.0.1:{port}", api_key, known
    finally:
        delete_project_keys(settings)
        drop_databases(settings)


@pytest.mark.integration
@pytest.mark.prod
@pytest.mark.slow
def test_bento_on_redis_takes_20k_mixed_requests_at_300_rps(prod_bento):
    # given the Bento on Redis and 20k requests, valid and invalid mixed
    url, api_key, known = prod_bento
    assert len(known) >= 250
    mix = predict_mix(known, 20_000, api_key=api_key, seed=7)

    # when they arrive at 300 per second, whatever the answers' pace (open loop)
    run = drive(url, mix, rate=300.0)
    summary = run.summary
    print("\n".join(["", "load on the Bento (prod profile, Redis):", *summary.lines()]))

    # then nothing failed on the server side and no request went unanswered
    assert summary.sent == 20_000
    assert summary.classes.get("5xx", 0) == 0, summary.lines()
    assert summary.classes.get("no answer", 0) == 0, summary.lines()
    # every valid request got 200 with a well-formed body, every invalid one its 4xx naming the field
    valid = sum(r.valid for r in mix)
    assert summary.valid_classes == {"2xx": valid}
    assert summary.invalid_classes == {"4xx": len(mix) - valid}
    assert summary.problems == 0, summary.problem_examples
    assert set(summary.kinds) == set(PREDICT_MIX)
    for kind, statuses in summary.kinds.items():
        wanted = {"200"} if kind in {"single", "batch", "batch_100", "unknown_id", "mixed_known_unknown",
                                     "bearer_auth"} else {"400", "401", "413", "415"}
        assert set(statuses) <= wanted, (kind, statuses)
    assert np.isfinite(summary.valid_p99_ms)
    assert np.isfinite(summary.invalid_p99_ms)

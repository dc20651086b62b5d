"""An open-loop HTTP load generator: requests at a fixed arrival rate, status and latency of each.

Request ``i`` is due at ``start + i / rate`` whether or not earlier requests have been answered
(open loop: a slow server does not slow the arrivals down), and its latency counts from that due
time, so time spent waiting for a free connection or behind a late scheduler counts too (no
coordinated omission). Each request may carry a check of the answer (status and body); a failed
check is recorded as a problem of that request, next to its status and latency.

The pure parts (:func:`schedule`, :func:`percentile_ms`, :func:`status_class`,
:func:`summarize`) take and return plain values; :func:`run_load` is the asyncio edge (aiohttp,
which BentoML already depends on). :func:`predict_mix` builds Persona's mix of valid and invalid
``/predict`` requests, each with the check of what the API promises for it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

Check = Callable[[int, bytes], str | None]
"""``check(status, body)``: None when the answer is as expected, else what is wrong."""


@dataclass(frozen=True)
class LoadRequest:
    """One request to send.

    Attributes:
        kind: short label of what the request exercises (``single``, ``bad_json``, ...).
        valid: whether the request is well-formed (summaries split latencies by this).
        body: raw request body.
        headers: request headers (set Content-Type explicitly: nothing is added).
        path: URL path.
        method: HTTP method.
        check: verifies the answer; None accepts any answer.
    """

    kind: str
    valid: bool
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    path: str = "/predict"
    method: str = "POST"
    check: Check | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened to one request.

    Attributes:
        index: position in the schedule.
        kind: the request's kind.
        valid: the request's validity.
        due: due time, seconds from the start of the schedule.
        lag: seconds between the due time and the moment the request was handed to the client.
        latency: seconds from the due time to the end of the answer's body (or the failure).
        status: HTTP status, None when no answer came (connection error, timeout).
        problem: why the answer failed its check or why there was none; None when all is well.
    """

    index: int
    kind: str
    valid: bool
    due: float
    lag: float
    latency: float
    status: int | None
    problem: str | None = None


# --------------------------------------------------------------------------- pure parts
def schedule(count: int, rate: float, start: float = 0.0) -> np.ndarray:
    """Due times of ``count`` requests at a fixed arrival rate.

    Args:
        count: number of requests (>= 0).
        rate: requests per second (> 0).
        start: due time of the first request.

    Returns:
        ``start + i / rate`` for ``i`` in ``0 .. count - 1`` (float seconds).

    Raises:
        ValueError: for a negative count or a rate that is not a positive finite number.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a positive number of requests per second, got {rate}")
    return start + np.arange(count, dtype=np.float64) / rate


def percentile_ms(latencies_s: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile (linear interpolation) of latencies in seconds, in milliseconds.

    Returns:
        NaN for an empty sequence.
    """
    values = np.asarray(latencies_s, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    return float(np.percentile(values, q) * 1000.0)


def status_class(status: int | None) -> str:
    """``2xx`` .. ``5xx`` for an HTTP status, ``no answer`` for None."""
    if status is None:
        return "no answer"
    return f"{status // 100}xx"


@dataclass(frozen=True)
class LoadSummary:
    """Counts and latencies of one load run (latencies in milliseconds from the due times).

    Attributes:
        sent: requests sent.
        rate: the target arrival rate (requests/s).
        achieved_rate: requests sent per second over the span of the send times.
        completed_rate: answers per second, from the first due time to the last answer.
        classes: status class -> count (``2xx``, ``4xx``, ``5xx``, ``no answer``).
        valid_classes, invalid_classes: the same, for valid and for invalid requests only.
        statuses: HTTP status -> count.
        kinds: request kind -> {status or ``no answer`` -> count}.
        valid_p50_ms, valid_p99_ms, invalid_p50_ms, invalid_p99_ms: latency percentiles.
        max_ms: the largest latency.
        lag_p99_ms, lag_max_ms: how late the client handed requests over (its own overload).
        problems: requests whose answer failed its check or that got none.
        problem_examples: a few ``kind: problem`` lines.
    """

    sent: int
    rate: float
    achieved_rate: float
    completed_rate: float
    classes: dict[str, int]
    valid_classes: dict[str, int]
    invalid_classes: dict[str, int]
    statuses: dict[int, int]
    kinds: dict[str, dict[str, int]]
    valid_p50_ms: float
    valid_p99_ms: float
    invalid_p50_ms: float
    invalid_p99_ms: float
    max_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    problems: int
    problem_examples: list[str]

    def lines(self) -> list[str]:
        """A human-readable report."""
        def counts(classes: dict[str, int]) -> str:
            return ", ".join(f"{k}: {v:,}" for k, v in sorted(classes.items())) or "none"

        out = [
            f"sent {self.sent:,} at {self.rate:g} rps target: achieved {self.achieved_rate:.1f} rps sent, "
            f"{self.completed_rate:.1f} rps answered",
            f"status classes: {counts(self.classes)} (valid requests: {counts(self.valid_classes)}; "
            f"invalid requests: {counts(self.invalid_classes)})",
            f"valid p50 {self.valid_p50_ms:.2f} ms, p99 {self.valid_p99_ms:.2f} ms; "
            f"invalid p50 {self.invalid_p50_ms:.2f} ms, p99 {self.invalid_p99_ms:.2f} ms; max {self.max_ms:.1f} ms",
            f"client lag p99 {self.lag_p99_ms:.2f} ms, max {self.lag_max_ms:.2f} ms",
            f"problems: {self.problems:,}",
        ]
        out += [f"  {example}" for example in self.problem_examples]
        return out


def summarize(outcomes: Sequence[Outcome], rate: float, elapsed: float, examples: int = 5) -> LoadSummary:
    """Summarize a run.

    Args:
        outcomes: one per request sent.
        rate: the target arrival rate.
        elapsed: seconds from the first due time to the last answer.
        examples: how many problem lines to keep.

    Returns:
        The :class:`LoadSummary`.
    """
    classes: dict[str, int] = {}
    by_validity: dict[bool, dict[str, int]] = {True: {}, False: {}}
    statuses: dict[int, int] = {}
    kinds: dict[str, dict[str, int]] = {}
    valid_latencies: list[float] = []
    invalid_latencies: list[float] = []
    problems: list[str] = []
    for outcome in outcomes:
        label = status_class(outcome.status)
        classes[label] = classes.get(label, 0) + 1
        split = by_validity[outcome.valid]
        split[label] = split.get(label, 0) + 1
        if outcome.status is not None:
            statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
            (valid_latencies if outcome.valid else invalid_latencies).append(outcome.latency)
        by_kind = kinds.setdefault(outcome.kind, {})
        key = str(outcome.status) if outcome.status is not None else "no answer"
        by_kind[key] = by_kind.get(key, 0) + 1
        if outcome.problem is not None:
            problems.append(f"{outcome.kind} (request {outcome.index}): {outcome.problem}")
    lags = [o.lag for o in outcomes]
    sent = len(outcomes)
    sent_at = [o.due + o.lag for o in outcomes]
    span = max(sent_at) - min(sent_at) if sent > 1 else 0.0
    answered = sum(v for k, v in classes.items() if k != "no answer")
    return LoadSummary(
        sent=sent,
        rate=rate,
        achieved_rate=(sent - 1) / span if span > 0 else float("nan"),
        completed_rate=answered / elapsed if elapsed > 0 else float("nan"),
        classes=classes,
        valid_classes=by_validity[True],
        invalid_classes=by_validity[False],
        statuses=statuses,
        kinds=kinds,
        valid_p50_ms=percentile_ms(valid_latencies, 50),
        valid_p99_ms=percentile_ms(valid_latencies, 99),
        invalid_p50_ms=percentile_ms(invalid_latencies, 50),
        invalid_p99_ms=percentile_ms(invalid_latencies, 99),
        max_ms=max((o.latency for o in outcomes if o.status is not None), default=float("nan")) * 1000.0,
        lag_p99_ms=percentile_ms(lags, 99),
        lag_max_ms=max(lags, default=float("nan")) * 1000.0,
        problems=len(problems),
        problem_examples=problems[:examples],
    )


# --------------------------------------------------------------------------- the asyncio edge
@dataclass(frozen=True)
class LoadRun:
    """Every request's outcome and their summary."""

    outcomes: list[Outcome]
    summary: LoadSummary


async def run_load(
    base_url: str,
    requests: Sequence[LoadRequest],
    rate: float,
    count: int | None = None,
    connections: int = 64,
    timeout_s: float = 30.0,
) -> LoadRun:
    """Send ``count`` requests at ``rate`` per second (open loop) and record every answer.

    Args:
        base_url: ``http://host:port``.
        requests: the requests, used in order and round-robin.
        rate: arrivals per second.
        count: requests to send (default: ``len(requests)``).
        connections: keep-alive connection pool size; a request due while all are busy waits
            for one, and the wait counts in its latency.
        timeout_s: a request without a complete answer after this long counts as ``no answer``.

    Returns:
        The :class:`LoadRun`.
    """
    import aiohttp

    if not requests:
        raise ValueError("no requests to send")
    count = len(requests) if count is None else count
    due = schedule(count, rate)
    outcomes: list[Outcome | None] = [None] * count
    last_answer = [0.0]
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    # Only the request's own headers go out (no default Content-Type for a bytes body).
    async with aiohttp.ClientSession(
        base_url=base_url, connector=connector, timeout=timeout, skip_auto_headers=("Content-Type",),
        auto_decompress=False,
    ) as session:
        start = time.perf_counter() + 0.05

        async def fire(index: int, request: LoadRequest) -> None:
            due_at = start + due[index]
            lag = time.perf_counter() - due_at
            status: int | None = None
            problem: str | None = None
            try:
                async with session.request(
                    request.method, request.path, data=request.body, headers=dict(request.headers)
                ) as response:
                    body = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"no answer: {type(exc).__name__}: {exc}"
            finished = time.perf_counter()
            last_answer[0] = max(last_answer[0], finished)
            if status is not None and request.check is not None:
                try:
                    problem = request.check(status, body)
                except Exception as exc:  # a check that crashes is a failed check, not a crashed run
                    problem = f"check raised {type(exc).__name__}: {exc}"
            outcomes[index] = Outcome(
                index, request.kind, request.valid, float(due[index]), lag, finished - due_at, status, problem
            )

        tasks = []
        for index in range(count):
            delay = start + due[index] - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(fire(index, requests[index % len(requests)])))
        await asyncio.gather(*tasks)
    done = [o for o in outcomes if o is not None]
    return LoadRun(done, summarize(done, rate, max(last_answer[0] - start, 0.0)))


def drive(
    base_url: str,
    requests: Sequence[LoadRequest],
    rate: float,
    count: int | None = None,
    connections: int = 64,
    timeout_s: float = 30.0,
) -> LoadRun:
    """Synchronous :func:`run_load` on an event loop of its own (uvloop when installed: less client CPU)."""
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with BentoML's uvicorn
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(run_load(base_url, requests, rate, count, connections, timeout_s))


# --------------------------------------------------------------------------- Persona's /predict mix
JSON_HEADERS = {"Content-Type": "application/json"}
MAX_BATCH = 1000  # serving.predictor.MAX_BATCH: the API's documented limit (more: 413)

# kind -> share of the mix: mostly single-customer lookups, some batches (2-20 ids, and 100), about
# 30 % requests that each break one rule.
PREDICT_MIX: dict[str, float] = {
    "single": 0.46,
    "batch": 0.10,
    "batch_100": 0.02,
    "unknown_id": 0.05,
    "mixed_known_unknown": 0.04,
    "bearer_auth": 0.04,
    "unknown_field": 0.025,
    "wrong_type_string": 0.02,
    "wrong_type_float": 0.02,
    "wrong_type_bool": 0.02,
    "out_of_range": 0.02,
    "not_a_list": 0.02,
    "empty_list": 0.02,
    "missing_field": 0.02,
    "not_an_object": 0.02,
    "bad_json": 0.025,
    "oversized_batch": 0.02,
    "wrong_content_type": 0.02,
    "missing_api_key": 0.025,
    "wrong_api_key": 0.02,
}
AUTH_KINDS = frozenset({"bearer_auth", "missing_api_key", "wrong_api_key"})


def prediction_problem(payload: object, ids: Sequence[int], known: frozenset[int] | set[int]) -> str | None:
    """What is wrong with a ``/predict`` answer to ``ids`` (None when it is well-formed).

    Known customers must be predicted (``ok``, probabilities in [0, 1], non-negative values,
    persona and action named); unknown ones must be ``cold_start`` with a reason; answers come
    in request order.
    """
    if not isinstance(payload, dict):
        return "answer is not a JSON object"
    for name in ("request_id", "model_version"):
        if not isinstance(payload.get(name), str) or not payload[name]:
            return f"{name} missing or empty"
    predictions = payload.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(ids):
        return f"expected {len(ids)} predictions, got {type(predictions).__name__} {predictions!r:.80}"
    for i, (wanted, got) in enumerate(zip(ids, predictions, strict=True)):
        if not isinstance(got, dict) or got.get("customer_id") != wanted:
            return f"predictions[{i}] is not customer {wanted}: {got!r:.120}"
        if got.get("model_version") != payload["model_version"]:
            return f"predictions[{i}].model_version differs from the answer's"
        if wanted in known:
            if got.get("status") != "ok":
                return f"known customer {wanted} not predicted: {got.get('cold_start_reason')!r}"
            churn = got.get("churn_probability")
            if not isinstance(churn, float | int) or not 0.0 <= churn <= 1.0:
                return f"predictions[{i}].churn_probability {churn!r} not in [0, 1]"
            for name in ("expected_orders", "expected_spend"):
                value = got.get(name)
                if not isinstance(value, float | int) or not math.isfinite(value) or value < 0:
                    return f"predictions[{i}].{name} {value!r} is not a non-negative number"
            for name in ("persona", "action"):
                if not isinstance(got.get(name), str) or not got[name]:
                    return f"predictions[{i}].{name} missing"
            if not isinstance(got.get("features_as_of"), dict):
                return f"predictions[{i}].features_as_of missing"
        else:
            if got.get("status") != "cold_start" or not got.get("cold_start_reason"):
                return f"unknown customer {wanted} not answered cold_start with a reason: {got!r:.160}"
            if got.get("churn_probability") is not None:
                return f"unknown customer {wanted} got a churn probability"
    return None


def expect_predictions(ids: Sequence[int], known: frozenset[int] | set[int]) -> Check:
    """Check: 200 and a well-formed prediction of every id (see :func:`prediction_problem`)."""
    ids = list(ids)

    def check(status: int, body: bytes) -> str | None:
        if status != 200:
            return f"status {status}, expected 200: {body[:200]!r}"
        try:
            payload = json.loads(body)
        except ValueError:
            return f"answer is not JSON: {body[:120]!r}"
        return prediction_problem(payload, ids, known)

    return check


def expect_error(status: int, field_name: str, mention: str | None = None) -> Check:
    """Check: this 4xx status and a JSON error naming the field.

    Args:
        status: the expected status.
        field_name: the expected ``field`` of the error body.
        mention: text the ``error`` message must contain (default: ``field_name``).
    """
    mention = field_name if mention is None else mention

    def check(got: int, body: bytes) -> str | None:
        if got != status:
            return f"status {got}, expected {status}: {body[:200]!r}"
        try:
            payload = json.loads(body)
        except ValueError:
            return f"error body is not JSON: {body[:120]!r}"
        if not isinstance(payload, dict) or not isinstance(payload.get("error"), str):
            return f"error body without an error message: {body[:200]!r}"
        if payload.get("field") != field_name:
            return f"field {payload.get('field')!r}, expected {field_name!r}: {payload['error']!r}"
        if mention not in payload["error"]:
            return f"error message does not name {mention!r}: {payload['error']!r}"
        return None

    return check


def predict_mix(
    known_ids: Sequence[int],
    count: int,
    api_key: str | None = None,
    seed: int = 0,
    shares: Mapping[str, float] | None = None,
) -> list[LoadRequest]:
    """``count`` ``/predict`` requests mixing valid and invalid ones, each with its check.

    Valid: one known customer, batches of 2-20 and of 100 known customers, unknown customers (cold start),
    known and unknown together, the key as a Bearer token. Invalid (one broken rule each): an
    unknown field, ids of the wrong type (string, float, bool), an id beyond 64 bits, ids not in
    a list, an empty list, no ``customer_ids``, a body that is not an object, broken JSON, more
    than 1000 ids (413), a non-JSON content type (415), a missing or wrong API key (401).

    Args:
        known_ids: customers the online store holds (each must be predicted ``ok``).
        count: number of requests.
        api_key: the served key; None when the server runs without one (auth kinds are left out).
        seed: random seed (same seed, same requests).
        shares: kind -> share of the mix (default :data:`PREDICT_MIX`; normalized).

    Returns:
        The requests in sending order.
    """
    rng = np.random.default_rng(seed)
    known = np.asarray(sorted(set(int(i) for i in known_ids)), dtype=np.int64)
    if known.size == 0:
        raise ValueError("known_ids is empty")
    known_set = frozenset(known.tolist())
    unknown_base = int(known.max()) + 1_000_000
    shares = dict(PREDICT_MIX if shares is None else shares)
    if api_key is None:
        shares = {k: v for k, v in shares.items() if k not in AUTH_KINDS}
    unknown_kinds = set(shares) - set(PREDICT_MIX)
    if unknown_kinds:
        raise ValueError(f"unknown request kinds: {sorted(unknown_kinds)}")
    auth = {"X-API-Key": api_key} if api_key else {}
    headers = {**JSON_HEADERS, **auth}

    def body(payload: object) -> bytes:
        return json.dumps(payload, separators=(",", ":")).encode()

    def known_pick(size: int) -> list[int]:
        return rng.choice(known, size=size, replace=size > known.size).tolist()

    def valid(kind: str, ids: list[int], request_headers: Mapping[str, str] = headers) -> LoadRequest:
        return LoadRequest(kind, True, body({"customer_ids": ids}), request_headers,
                           check=expect_predictions(ids, known_set))

    def invalid(kind: str, raw: bytes, status: int, field_name: str, mention: str | None = None,
                request_headers: Mapping[str, str] = headers) -> LoadRequest:
        return LoadRequest(kind, False, raw, request_headers, check=expect_error(status, field_name, mention))

    def make(kind: str) -> LoadRequest:
        one = known_pick(1)
        if kind == "single":
            return valid(kind, one)
        if kind == "batch":
            return valid(kind, known_pick(int(rng.integers(2, 21))))
        if kind == "batch_100":
            return valid(kind, known_pick(100))
        if kind == "unknown_id":
            return valid(kind, [unknown_base + int(rng.integers(0, 1_000_000))])
        if kind == "mixed_known_unknown":
            ids = known_pick(5) + [unknown_base + int(rng.integers(0, 1_000_000)) for _ in range(3)]
            return valid(kind, [ids[i] for i in rng.permutation(len(ids))])
        if kind == "bearer_auth":
            return valid(kind, one, {**JSON_HEADERS, "Authorization": f"Bearer {api_key}"})
        if kind == "unknown_field":
            return invalid(kind, body({"customer_ids": one, "customer_id": one[0]}), 400, "customer_id")
        if kind == "wrong_type_string":
            return invalid(kind, body({"customer_ids": [*one, str(one[0])]}), 400, "customer_ids[1]")
        if kind == "wrong_type_float":
            return invalid(kind, body({"customer_ids": [one[0] + 0.5]}), 400, "customer_ids[0]")
        if kind == "wrong_type_bool":
            return invalid(kind, body({"customer_ids": [True]}), 400, "customer_ids[0]")
        if kind == "out_of_range":
            return invalid(kind, body({"customer_ids": [*one, 2**70]}), 400, "customer_ids[1]")
        if kind == "not_a_list":
            return invalid(kind, body({"customer_ids": one[0]}), 400, "customer_ids")
        if kind == "empty_list":
            return invalid(kind, body({"customer_ids": []}), 400, "customer_ids")
        if kind == "missing_field":
            return invalid(kind, body({"ids": one}), 400, "customer_ids")
        if kind == "not_an_object":
            return invalid(kind, body(one), 400, "body")
        if kind == "bad_json":
            return invalid(kind, body({"customer_ids": one})[:-2], 400, "body", "not valid JSON")
        if kind == "oversized_batch":
            return invalid(kind, body({"customer_ids": known_pick(MAX_BATCH + 1)}), 413, "customer_ids")
        if kind == "wrong_content_type":
            return invalid(kind, body({"customer_ids": one}), 415, "Content-Type",
                           request_headers={"Content-Type": "text/plain", **auth})
        if kind == "missing_api_key":
            return invalid(kind, body({"customer_ids": one}), 401, "X-API-Key", request_headers=JSON_HEADERS)
        if kind == "wrong_api_key":
            return invalid(kind, body({"customer_ids": one}), 401, "X-API-Key", "API key",
                           request_headers={**JSON_HEADERS, "X-API-Key": f"not-{api_key}"})
        raise ValueError(f"unknown request kind {kind!r}")

    kinds = sorted(shares)
    weights = np.asarray([shares[k] for k in kinds], dtype=np.float64)
    picks = rng.choice(len(kinds), size=count, p=weights / weights.sum())
    return [make(kinds[i]) for i in picks.tolist()]

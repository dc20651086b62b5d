"""Persona's BentoML service: a thin shell around :class:`serving.runtime.ServingRuntime`.

Run it with ``persona serve`` (or ``bentoml serve serving.service:PersonaService`` from the
project root with ``PERSONA_HOME`` set); build a Bento with ``bentoml build -f serving/bentofile.yaml``.

APIs (JSON in, JSON out; OpenAPI at ``/docs.json``, UI at ``/``):

- ``POST /predict`` ``{"customer_ids": [...], "explain": false}``: churn probability, expected
  orders and spend, segment, persona, action, model version and feature freshness per customer;
  unknown customers get ``status: "cold_start"`` with a reason. ``"explain": true`` adds each
  prediction's reasons (:mod:`model.explain`). With an uplift champion (``persona train --uplift``)
  each prediction also carries ``uplift`` per offer and the ``next_best_action``
  (:mod:`serving.uplift`).
- ``POST /predict_features`` ``{"rows": [{"customer_id": 1, "features": {...}}]}``: the same
  from caller-supplied features.
- ``POST /predict_target`` ``{"target": "upgraded", "customer_ids": [...]}``: a custom target's
  model (``persona-upgraded``, from ``persona train --labels L --target upgraded``), its champion
  or a pinned ``"version"``, from the online features of the service it was trained on: one
  ``prediction`` per customer, cold starts as for ``predict`` (:mod:`serving.target_runtime`).
- ``POST /similar`` ``{"customer_id": 1, "k": 10}``: customers with the most similar reviews.
- ``POST /model_info`` ``{}``: the served version, its feature columns, the watcher's last error.
- ``GET /livez``, ``GET /readyz``: liveness; readiness (a model loaded and the online store up, or,
  without a persona champion, a custom target with one).
- ``GET /metrics``: Prometheus text (requests by path and status, API latency, model version;
  :mod:`serving.metrics`).

Every request, including those the middlewares refuse, leaves one JSON line on stderr (method,
path, status, latency, request id, model version; never a key or a body): :mod:`serving.access_log`.

Limits (``Settings.serving_*``; :mod:`serving.http_limits`, :mod:`serving.guard`): a request head
over 16 KiB gets 431, one not complete in 10 s or a body stalled for 10 s gets 408, beyond 1000
open connections requests get 503.

Errors are ``{"error": "...", "field": "..."}`` with 400 (bad input; what-if values beyond
their plausible range too), 401 (API key), 404 (unknown customer for ``similar``; no such model
or version for ``predict_target``), 408 (slow client), 409 (a custom target's model without a
champion), 413 (batch or body too large), 415 (not JSON), 431 (request head too large),
501/503 (not available / not ready / not materialized / too many connections). Nothing is loaded at import.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from typing import Any, cast

import bentoml
from starlette.responses import Response

from serving import http_limits
from serving.access_log import AccessLogMiddleware
from serving.auth import ApiKeyMiddleware
from serving.guard import RequestGuardMiddleware
from serving.metrics import MetricsMiddleware
from serving.schemas import (
    EmptyRequest,
    FeatureRow,
    ModelInfo,
    PredictFeaturesRequest,
    PredictRequest,
    PredictResponse,
    PredictTargetRequest,
    PredictTargetResponse,
    SimilarRequest,
    SimilarResponse,
)

logger = logging.getLogger("persona.serving")

API_PATHS = ("/predict", "/predict_features", "/predict_target", "/similar", "/model_info")
HOT_PATHS = ("/predict", "/livez", "/readyz", "/healthz")
INLINE_ROWS = 64  # larger batches run in a worker thread so the event loop keeps answering


class _ClientErrorsAreNotServerErrors(logging.Filter):
    """Drop BentoML's ERROR-with-traceback records for requests that failed input validation.

    They are answered 400 and say why; a traceback per bad request buries real errors.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from pydantic import ValidationError

        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, ValidationError)


class _RequestIds:
    """Unique request ids: a random process prefix and a counter (no syscall per request)."""

    def __init__(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}-{next(self.counter):08d}"


def _json(status: int, payload: dict[str, Any], request_id: str | None = None) -> Response:
    headers = {"X-Request-ID": request_id} if request_id else None
    return Response(
        json.dumps(payload, allow_nan=False, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error(
    status: int,
    message: str,
    field: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> Response:
    payload: dict[str, Any] = {"error": message, "field": field}
    if request_id:
        payload["request_id"] = request_id
    response = _json(status, payload, request_id)
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(retry_after)))
    return response


@bentoml.service(
    name="persona",
    description="Churn, value, persona and next action per customer, from Feast online features.",
    traffic={"timeout": 60},
    # Prometheus metrics, the access log and OpenTelemetry spans each add CPU time to every request
    # (spans alone ~0.2 ms of the ~1.6 ms a single-customer request costs here), so they are off on
    # the hot paths by default. These are defaults: a BentoML config file (BENTOML_CONFIG) turns
    # them back on.
    metrics={"enabled": False},
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": list(HOT_PATHS)},
)
class PersonaService:
    """Persona predictions from the MLflow champion and Feast online features."""

    def __init__(self) -> None:
        from pathlib import Path

        from core.settings import load_settings
        from serving.bento import bento_models, in_bento, packaged_model, packaged_uplift
        from serving.lifetime import exit_with_parent
        from serving.runtime import RuntimeOptions, ServingRuntime

        exit_with_parent()  # an orphaned worker must not keep serving the port
        settings = load_settings()
        bentoml_http = logging.getLogger("bentoml._internal.server.http_app")
        if not any(isinstance(f, _ClientErrorsAreNotServerErrors) for f in bentoml_http.filters):
            bentoml_http.addFilter(_ClientErrorsAreNotServerErrors())
        self.request_ids = _RequestIds()
        self._last_readiness: str | None = None
        packaged, uplift = None, None
        if in_bento(Path(__file__)):  # a built Bento serves its own champions, the ones its manifest names
            models = bento_models(Path(__file__))
            packaged, uplift = packaged_model(models), packaged_uplift(models)
        self.runtime = ServingRuntime(settings, RuntimeOptions.from_settings(settings), packaged, uplift).start()

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """Write every pending prediction-log row before the process exits."""
        self.runtime.stop()

    def __is_ready__(self) -> bool:
        ready, reason = self.runtime.readiness()
        if reason != self._last_readiness:  # log changes, not every probe
            self._last_readiness = reason
            if ready:
                logger.info("ready: %s", reason)
            else:
                logger.warning("not ready: %s", reason)
        return ready

    async def _call(self, rows: int, func, *args: Any) -> Any:
        if rows <= INLINE_ROWS:
            return func(*args)
        import anyio.to_thread

        return await anyio.to_thread.run_sync(func, *args)

    async def _predict(
        self, rows: int, func, payload: Any, explain: bool = False, head: dict[str, Any] | None = None
    ) -> Response:
        from serving.predictor import InputError
        from serving.runtime import NotReady
        from serving.target_runtime import TargetUnavailable
        from serving.targets import NotMaterialized
        from store.online_reader import FeatureStoreError, OnlineStoreUnavailable, is_redis_error

        request_id = self.request_ids.next()
        started = time.perf_counter()

        def answer() -> bytes:  # predict and encode together: big batches do both off the event loop
            served = func(payload, request_id, explain) if explain else func(payload, request_id)
            version = served.results[0]["model_version"] if served.results else ""
            body = {"request_id": request_id, **(head or {}), "model_version": version, "predictions": served.results}
            return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()

        try:
            encoded = await self._call(rows, answer)
        except InputError as exc:
            return _error(exc.status, str(exc), exc.field, request_id)
        except TargetUnavailable as exc:
            return _error(exc.status, str(exc), exc.field, request_id)
        except NotMaterialized as exc:  # says what to run
            return _error(503, str(exc), None, request_id)
        except NotReady as exc:
            return _error(503, str(exc), None, request_id)
        except OnlineStoreUnavailable as exc:  # names the store and says to retry later
            return _error(503, str(exc), None, request_id, retry_after=exc.retry_after)
        except FeatureStoreError as exc:
            return _error(503, f"online store unavailable: {exc}", None, request_id)
        except Exception as exc:
            if is_redis_error(exc):  # a store failure that escaped the reader is still not a server bug
                logger.warning("request %s: online store error: %s", request_id, exc)
                return _error(503, f"online store unavailable: {type(exc).__name__}: {exc}; retry later",
                              None, request_id)
            logger.exception("request %s failed", request_id)
            return _error(500, f"internal error; see the server log for request {request_id}", None, request_id)
        took = f"predict;dur={(time.perf_counter() - started) * 1000:.2f}"
        return Response(
            encoded, media_type="application/json", headers={"X-Request-ID": request_id, "Server-Timing": took}
        )

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=PredictResponse)
    async def predict(self, customer_ids: list[int], explain: bool = False) -> Response:
        """Predict churn, value, persona and action for customers by id (1 to 1000 ids).

        Features come from the online store; a customer it does not know gets
        ``status: "cold_start"`` and a ``cold_start_reason`` instead of a prediction. With
        ``"explain": true`` each prediction carries its reasons (``explanation``).
        """
        return await self._predict(len(customer_ids), self.runtime.predict_customers, customer_ids, explain)

    @bentoml.api(route="/predict_features", input_spec=PredictFeaturesRequest, output_spec=PredictResponse)
    async def predict_features(self, rows: list[FeatureRow], explain: bool = False) -> Response:
        """Predict from feature values supplied by the caller (what-if; customers not in the store).

        Each row's ``features`` must hold exactly the served model's feature columns
        (``model_info``): finite numbers for numeric features, strings for categorical ones,
        null for unknown values.
        """
        plain = [{"customer_id": row.customer_id, "features": row.features} for row in rows]
        return await self._predict(len(plain), self.runtime.predict_features, plain, explain)

    @bentoml.api(route="/predict_target", input_spec=PredictTargetRequest, output_spec=PredictTargetResponse)
    async def predict_target(
        self, customer_ids: list[int], target: str | None = None, model: str | None = None, version: int | None = None
    ) -> Response:
        """Predict a custom target for customers by id (1 to 1000 ids), with its model's champion.

        ``target`` ``T`` serves the registered model ``persona-T`` (``persona train --labels L
        --target T``; ``model`` names it in full); ``version`` pins a registered version instead
        of the champion. Features come from the online store, read through the feature service
        the model was trained on; an unknown customer gets ``status: "cold_start"`` and the reason.
        """
        from serving.targets import model_for

        def predict(ids: list[int], request_id: str):
            name = model_for(self.runtime.settings.registered_model, target, model)
            return self.runtime.predict_target(name, version, ids, request_id)

        # off the event loop always: the first request for a model loads it from the registry
        return await self._predict(INLINE_ROWS + 1, predict, customer_ids, head=self._target_head(target, model))

    def _target_head(self, target: str | None, model: str | None) -> dict[str, Any]:
        from serving.targets import target_model_name

        if model is not None:
            return {"model": model}
        return {"model": target_model_name(self.runtime.settings.registered_model, target or "")}

    @bentoml.api(route="/similar", input_spec=SimilarRequest, output_spec=SimilarResponse)
    async def similar(self, customer_id: int, k: int = 10) -> Response:
        """The k customers whose recent review texts are most similar (cosine, text embeddings)."""
        from serving.similar import SimilarityUnavailable, UnknownCustomer

        try:
            neighbours = await self._call(INLINE_ROWS + 1, self.runtime.similar, customer_id, k)
        except SimilarityUnavailable as exc:
            return _error(exc.status, str(exc))
        except UnknownCustomer as exc:
            return _error(404, str(exc), "customer_id")
        except Exception:
            request_id = self.request_ids.next()
            logger.exception("request %s: similar(%s) failed", request_id, customer_id)
            return _error(500, f"internal error; see the server log for request {request_id}", None, request_id)
        return _json(
            200,
            {
                "customer_id": customer_id,
                "neighbours": [{"customer_id": c, "score": round(s, 6)} for c, s in neighbours],
            },
        )

    @bentoml.api(route="/model_info", input_spec=EmptyRequest, output_spec=ModelInfo)
    async def model_info(self) -> Response:
        """The served model version, its feature contract and the champion watcher's state."""
        return _json(200, await self._call(0, self.runtime.info))


# Outermost first: the API key is checked before anything reads the body. (The class decorator
# made PersonaService a bentoml.Service; mypy keeps the class's own type.)
_service = cast("bentoml.Service[PersonaService]", PersonaService)
_service.add_asgi_middleware(AccessLogMiddleware)  # outermost: it sees the 401/413/408 of the others
_service.add_asgi_middleware(ApiKeyMiddleware)
_service.add_asgi_middleware(MetricsMiddleware, paths=API_PATHS + HOT_PATHS, timed=API_PATHS)
_service.add_asgi_middleware(RequestGuardMiddleware, api_paths=API_PATHS)
# Request-head size and time limits and the connection limit live in uvicorn, which BentoML
# configures without asking the service; see serving.http_limits.
http_limits.install()

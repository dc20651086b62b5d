"""Everything the served process holds: the champion, the feature store, the log, the watcher.

:class:`ServingRuntime` is what the BentoML service delegates to. It loads the champion of
``settings.registered_model`` from the MLflow registry at start (by version number, so a
moving alias cannot hand it two different models), opens the Feast store once, starts the
champion watcher and the prediction log, and answers requests through the current
:class:`~serving.predictor.ServingPredictor`. Nothing happens at import.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core import catalog
from core.settings import environ_defaults
from serving.metrics import serving_metrics
from serving.model_watch import ChampionWatcher
from serving.prediction_log import PredictionLog
from serving.predictor import Served, ServingPredictor
from serving.registry_access import MLFLOW_HTTP_DEFAULTS, resolve_alias
from serving.similar import SimilarCustomers
from serving.target_runtime import TargetModels
from store.online_reader import FeatureStoreError, OnlineFeatureReader, OnlineStoreUnavailable, online_store_timeout

if TYPE_CHECKING:
    from core.settings import Settings
    from model.bundle import PersonaPredictor
    from model.uplift_runner import UpliftRunner
    from serving.bento import PackagedModel

logger = logging.getLogger(__name__)


def freeze_heap(collect: bool) -> None:
    """Exempt everything alive now from the cyclic garbage collector.

    Feast, MLflow and BentoML leave ~500k long-lived objects; a full collection walks them all
    (hundreds of milliseconds on a busy machine) and stalls every request in flight. Frozen
    objects are skipped; objects freed later by reference counting are still freed.
    """
    import gc

    if collect:
        gc.collect()
    gc.freeze()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class NotReady(RuntimeError):
    """No model is loaded (the message says why)."""


@dataclass(frozen=True)
class RuntimeOptions:
    """Knobs of the served process (settings: ``model_poll_seconds``).

    Attributes:
        poll_seconds: time between champion checks.
        retry_seconds: wait before retrying a champion version that failed to load.
        log_flush_seconds: longest time a prediction-log row waits in memory.
        ready_cache_seconds: how long an online-store health check is trusted.
    """

    poll_seconds: float = 10.0
    retry_seconds: float = 300.0
    log_flush_seconds: float = 2.0
    ready_cache_seconds: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RuntimeOptions:
        """The options of ``settings``: a poll interval set explicitly scales the retry wait with it."""
        if "model_poll_seconds" not in settings.model_fields_set:
            return cls()
        poll = settings.model_poll_seconds
        return cls(poll_seconds=poll, retry_seconds=max(poll * 5, 5.0))


class ServingRuntime:
    """The served state (see module docstring).

    Args:
        settings: Persona settings (home, profile, registered model name).
        options: polling and logging knobs.
    """

    def __init__(
        self, settings: Settings, options: RuntimeOptions | None = None, packaged: PackagedModel | None = None,
        packaged_uplift: PackagedModel | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or RuntimeOptions()
        self.packaged = packaged  # a Bento's own champion, served first (registry optional)
        self.packaged_uplift = packaged_uplift  # and its uplift champion, when it was built with one
        self.model_name = settings.registered_model
        self.predictor: ServingPredictor | None = None
        self.uplift: UpliftRunner | None = None
        self.log = PredictionLog(
            catalog.prediction_log(settings), flush_seconds=self.options.log_flush_seconds,
            fsync=settings.prediction_log_fsync,
        )
        self._store = None
        self._client = None
        self._store_lock = threading.Lock()
        self._ready_checked = 0.0
        self._targets_checked: tuple[float, list[str]] | None = None
        self._store_error: str | None = "not checked yet"
        self.similar_customers = SimilarCustomers(settings)
        self._environ = contextlib.ExitStack()  # MLflow's HTTP knobs, held until stop()
        self.watcher: ChampionWatcher[ServingPredictor] = ChampionWatcher(
            self._resolve_champion,
            self.load_version,
            self._install,
            interval_seconds=self.options.poll_seconds,
            retry_seconds=self.options.retry_seconds,
        )
        # The uplift champion is a second registered model, promoted on its own gate: watched apart,
        # so a churn answer never waits for it and never fails because of it.
        from model.uplift import uplift_model_name

        self.uplift_name = uplift_model_name(self.model_name)
        self.uplift_watcher: ChampionWatcher[UpliftRunner] = ChampionWatcher(
            lambda: resolve_alias(self._mlflow(), self.uplift_name, self.settings.tracking_uri),
            self.load_uplift,
            self._install_uplift,
            interval_seconds=self.options.poll_seconds,
            retry_seconds=self.options.retry_seconds,
            absent="no uplift champion registered; run `persona train --uplift`",
        )
        # Custom targets' models (persona-T), loaded on their first request and watched from then on.
        self.targets = TargetModels(
            settings, self._mlflow, self.store, poll_seconds=self.options.poll_seconds,
            retry_seconds=self.options.retry_seconds, log_flush_seconds=self.options.log_flush_seconds,
        )

    # ---- lifecycle ----
    def start(self) -> ServingRuntime:
        """Load the packaged champion (in a Bento) and the registry's (if it answers), then start watching."""
        self.log.start()
        if self.packaged is not None:
            self._serve_packaged(self.packaged)
        if self.packaged_uplift is not None:
            self._serve_packaged_uplift(self.packaged_uplift)
        outcome = self.watcher.check_once()
        logger.info("champion check at start: %s", outcome)
        logger.info("uplift champion check at start: %s", self.uplift_watcher.check_once())
        freeze_heap(collect=True)
        self.watcher.start()
        self.uplift_watcher.start()
        return self

    def stop(self) -> None:
        """Stop watching and write every pending prediction-log row."""
        self.watcher.stop()
        self.uplift_watcher.stop()
        self.targets.stop()
        self.log.close()
        self._environ.close()

    # ---- loading ----
    def store(self):
        """The Feast store, opened once."""
        with self._store_lock:
            if self._store is None:
                from store.repo import get_store

                self._store = get_store(self.settings)
            return self._store

    def _mlflow(self):
        if self._client is None:
            from model.registry import configure_mlflow

            self._environ.enter_context(environ_defaults(MLFLOW_HTTP_DEFAULTS))
            self._client = configure_mlflow(self.settings)
        return self._client

    def _resolve_champion(self) -> str | None:
        return resolve_alias(self._mlflow(), self.model_name, self.settings.tracking_uri)

    def load_version(self, version: str) -> ServingPredictor:
        """Load a registered version with a feature reader for its feature service.

        The version is checked before any of its code runs (:func:`model.bundle.load_predictor`:
        Persona's loader, the recorded digest, the signature); a failed check is refused.

        Raises:
            UntrustedModelError / ValueError / FeatureStoreError / MlflowException: the version
            cannot serve.
        """
        from model.bundle import load_predictor

        self._mlflow()
        return self._servable(load_predictor(f"models:/{self.model_name}/{version}", self.settings), version)

    def _serve_packaged(self, packaged: PackagedModel) -> None:
        """Serve the Bento's packaged version (checked as a download is) before asking the registry."""
        from model.bundle import load_packaged

        model = load_packaged(packaged.directory, packaged.tags, self.settings, packaged.registered_model,
                              packaged.version)
        self._install(self._servable(model, packaged.version), packaged.version)
        status = self.watcher.status
        status.served_version, status.loaded_at = packaged.version, _now()
        logger.info("serving the Bento's packaged %s v%s", packaged.registered_model, packaged.version)

    def _serve_packaged_uplift(self, packaged: PackagedModel) -> None:
        """Serve the Bento's packaged uplift champion; one that fails its checks is logged, never fatal."""
        from model.uplift import load_packaged_uplift
        from serving.uplift import runner_of

        status = self.uplift_watcher.status
        try:
            predictor = load_packaged_uplift(packaged.directory, packaged.tags, self.settings,
                                             packaged.registered_model, packaged.version)
            self._install_uplift(runner_of(self.settings, predictor, packaged.version), packaged.version)
        except Exception as exc:  # a churn answer never fails because of the uplift model
            status.last_error = f"the Bento's uplift v{packaged.version} failed to load: {type(exc).__name__}: {exc}"
            logger.error(status.last_error)
            return
        status.served_version, status.loaded_at = packaged.version, _now()
        logger.info("serving the Bento's packaged %s v%s", packaged.registered_model, packaged.version)

    def _servable(self, model: PersonaPredictor, version: str) -> ServingPredictor:
        from features.text_version import require_text_version

        if model.kind != "persona":
            raise ValueError(
                f"v{version} is a {model.kind!r} bundle; serving needs churn, value and personas"
            )
        # features of another text projection than it learned would be silently wrong: refuse the version
        require_text_version(self.settings, f"{self.model_name} v{version}", model.metadata)
        reader = OnlineFeatureReader.from_store(
            self.store(), model.feature_columns, model.metadata.get("feature_service"),
            timeout=online_store_timeout(self.settings),
        )
        return ServingPredictor(
            model=model, reader=reader, version=str(version), model_name=self.model_name,
            feature_abs_max=self.settings.whatif_feature_abs_max,
            sigma_margin=self.settings.whatif_feature_sigma_margin,
        )

    def load_uplift(self, version: str) -> UpliftRunner:
        """Load a registered uplift version ready to serve (:func:`serving.uplift.load_runner`)."""
        from serving.uplift import load_runner

        self._mlflow()
        return load_runner(self.settings, self.uplift_name, version)

    def _install_uplift(self, runner: UpliftRunner, version: str) -> None:
        self.uplift = runner  # one reference swap, as for the churn champion

    def _install(self, predictor: ServingPredictor, version: str) -> None:
        self.predictor = predictor  # one reference swap: in-flight requests keep the old one
        serving_metrics().served_version(version)
        freeze_heap(collect=False)

    # ---- readiness ----
    def readiness(self) -> tuple[bool, str]:
        """(ready, reason): a model is loaded and the online store answers.

        A registry that cannot be reached does not make a loaded model unready: it keeps serving
        and the watcher's ``last_error`` (``model_info``) says why no newer champion is loaded.
        """
        predictor = self.predictor
        if predictor is None:
            targets = self._custom_targets_only()
            if targets:
                return True, f"no {self.model_name} champion; serving custom targets: {', '.join(targets)}"
            return False, f"no model loaded: {self.watcher.status.last_error or 'loading'}"
        now = time.monotonic()
        if now - self._ready_checked > self.options.ready_cache_seconds:
            try:
                reader = predictor.reader
                if reader is not None and hasattr(reader, "ping"):
                    reader.ping()
                self._store_error = None
            except FeatureStoreError as exc:
                self._store_error = str(exc)
            except Exception as exc:
                self._store_error = f"online store unreachable: {type(exc).__name__}: {exc}"
            self._ready_checked = now
        if self._store_error:
            return False, self._store_error
        return True, f"serving {self.model_name} v{predictor.version}"

    def _custom_targets_only(self) -> list[str]:
        """Custom targets with a champion, while the persona model has none (else ``[]``).

        A server started for custom targets alone is ready once one of them has a champion
        (``/predict_target`` answers); the registry is asked at most once per poll interval.
        """
        if self.watcher.status.last_error != self.watcher.absent:
            return []  # the persona champion is loading, failed to load, or the registry is down
        now = time.monotonic()
        if self._targets_checked is None or now - self._targets_checked[0] > self.options.poll_seconds:
            from serving.registry_access import RegistryUnavailable, target_champions

            try:
                names = target_champions(self._mlflow(), self.settings)
            except RegistryUnavailable:
                names = []
            self._targets_checked = (now, names)
        return self._targets_checked[1]

    def current(self) -> ServingPredictor:
        """The predictor serving now.

        Raises:
            NotReady: none loaded yet (with the watcher's last error).
        """
        predictor = self.predictor
        if predictor is None:
            raise NotReady(f"no model loaded: {self.watcher.status.last_error or 'still loading'}")
        return predictor

    # ---- requests ----
    def predict_customers(self, customer_ids: list[int], request_id: str, explain: bool = False) -> Served:
        """Predict by id and log the rows (see :meth:`ServingPredictor.predict_customers`)."""
        served = self.current().predict_customers(customer_ids, request_id, explain=explain, uplift=self.uplift)
        self.log.append(served.log)
        return served

    def predict_features(self, rows: list[dict], request_id: str, explain: bool = False) -> Served:
        """Predict from supplied features and log the rows."""
        served = self.current().predict_features(rows, request_id, explain=explain, uplift=self.uplift)
        self.log.append(served.log)
        return served

    def predict_target(self, model: str, version: int | None, customer_ids: list[int], request_id: str) -> Served:
        """Predict by id with a custom target's model (:class:`serving.target_runtime.TargetModels`)."""
        return self.targets.predict(model, version, customer_ids, request_id)

    def similar(self, customer_id: int, k: int) -> list[tuple[int, float]]:
        """The ``k`` customers with the most similar review texts (:class:`serving.similar.SimilarCustomers`)."""
        return self.similar_customers.query(customer_id, k)

    # ---- introspection ----
    def _uplift_info(self, predictor: ServingPredictor | None) -> dict[str, object]:
        from serving.uplift import unserved_reason

        runner, status = self.uplift, self.uplift_watcher.status
        info: dict[str, object] = {"model_name": self.uplift_name, "champion_version": status.champion_version,
                                   "last_error": status.last_error}
        if runner is not None:
            info.update(runner.describe())
            info["last_error"] = status.last_error or unserved_reason(runner, predictor)
        return info

    def info(self) -> dict[str, object]:
        """What is served and the watcher's state (the ``model_info`` API)."""
        predictor = self.predictor
        status = self.watcher.status
        ready, reason = self.readiness()
        reader = predictor.reader if predictor is not None else None
        model = predictor.model if predictor is not None else None

        def iso(ts: dt.datetime | None) -> str | None:
            return ts.isoformat(timespec="seconds") if ts else None

        return {
            "ready": ready,
            "ready_reason": reason,
            "model_name": self.model_name,
            "model_version": predictor.version if predictor else None,
            "champion_version": status.champion_version,
            "feature_service": (getattr(model, "metadata", {}) or {}).get("feature_service")
            if model
            else None,
            "feature_columns": list(predictor.feature_columns) if predictor else [],
            "string_columns": list(predictor.string_columns) if predictor else [],
            "views": list(getattr(reader, "views", []) or []),
            "loaded_at": iso(status.loaded_at),
            "last_checked_at": iso(status.last_checked_at),
            "last_error": status.last_error,
            "uplift": self._uplift_info(predictor),
            "targets": self.targets.describe(),
            "prediction_log": {
                "directory": _home_relative(self.log.directory, self.settings.home),
                "rows_written": self.log.rows_written,
                "rows_pending": self.log.pending_rows,
                "rows_dropped": self.log.rows_dropped,
                "rows_replayed": self.log.rows_replayed,
                "last_error": self.log.last_error,
            },
        }


def _home_relative(path: Path, home: Path) -> str:
    """``path`` as clients may see it: relative to the home (no server paths), else its name."""
    try:
        return str(Path(path).relative_to(home))
    except ValueError:
        return Path(path).name


__all__ = [
    "FeatureStoreError",
    "NotReady",
    "OnlineStoreUnavailable",
    "RuntimeOptions",
    "ServingRuntime",
]

"""The custom-target models the served process holds: loaded on first request, then watched.

The first ``predict_target`` request for a model (``persona-T``) looks up its champion in the
MLflow registry, loads it (checked as the persona champion is: :func:`model.bundle.load_predictor`)
with a reader of the online features of the service it was trained on, and starts a
:class:`~serving.model_watch.ChampionWatcher` for it, so a promotion of a new version is picked
up as the persona champion's is. A request may pin a ``version`` instead (loaded once, a few
kept). Each model's predictions go to a prediction log of its own,
``<serving_dir>/prediction_log/model=<name>/`` (:func:`core.catalog.target_prediction_log`), so
the persona model's monitoring never reads another model's rows.

Requests that cannot be answered raise :class:`TargetUnavailable` with the HTTP status and the
field to blame: no such registered model (404), no champion (409), a pinned version that does not
exist (404), a champion that failed to load or a registry that does not answer (503).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from core import catalog
from serving.model_watch import ChampionWatcher
from serving.prediction_log import PredictionLog
from serving.registry_access import RegistryUnavailable, is_absent, resolve_alias
from serving.targets import TargetPredictor
from store.online_reader import FeatureStoreError, OnlineFeatureReader, online_store_timeout

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.settings import Settings
    from serving.predictor import Served

logger = logging.getLogger(__name__)

PINNED_KEPT = 8  # pinned versions kept loaded (least recently used dropped first)


class TargetUnavailable(RuntimeError):
    """A ``predict_target`` request that cannot be answered: ``status`` and the ``field`` to blame."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


class _Served:
    """One watched model: its champion watcher, the predictor serving now, its prediction log."""

    def __init__(self, watcher: ChampionWatcher[TargetPredictor], log: PredictionLog) -> None:
        self.watcher = watcher
        self.log = log
        self.predictor: TargetPredictor | None = None

    def install(self, predictor: TargetPredictor, version: str) -> None:
        self.predictor = predictor  # one reference swap: requests in flight keep the old one


class TargetModels:
    """Custom-target models of one served process (see module docstring).

    Args:
        settings: Persona settings.
        client: the MLflow client (configured once by the runtime).
        store: the Feast store (opened once by the runtime).
        poll_seconds / retry_seconds: the champion watchers' intervals (as for the persona champion).
        log_flush_seconds: longest time a prediction-log row waits in memory.
    """

    def __init__(
        self,
        settings: Settings,
        client: Callable[[], Any],
        store: Callable[[], Any],
        poll_seconds: float = 10.0,
        retry_seconds: float = 300.0,
        log_flush_seconds: float = 2.0,
    ) -> None:
        self.settings = settings
        self._client = client
        self._store = store
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.log_flush_seconds = log_flush_seconds
        self._models: dict[str, _Served] = {}
        self._pinned: OrderedDict[tuple[str, str], TargetPredictor] = OrderedDict()
        self._lock = threading.Lock()  # one load at a time: a burst of first requests loads once
        self._stopped = False

    # ---- requests ----
    def predict(self, name: str, version: int | None, customer_ids: list[int], request_id: str) -> Served:
        """Predict ``customer_ids`` with ``name``'s champion (or ``version``) and log the rows.

        Raises:
            TargetUnavailable: see module docstring.
            InputError: bad or oversized ``customer_ids``.
            FeatureStoreError: the online store cannot be read (the message says what to run).
        """
        served = self._served(name)
        predictor = self._pinned_version(name, str(version)) if version is not None else self._champion(name, served)
        try:
            answer = predictor.predict_customers(customer_ids, request_id)
        except FeatureStoreError as exc:
            raise _with_hint(exc) from None
        served.log.append(answer.log)
        return answer

    def describe(self) -> dict[str, dict[str, object]]:
        """Model name -> champion, version served and the watcher's last error (for ``model_info``)."""
        out: dict[str, dict[str, object]] = {}
        for name, served in list(self._models.items()):
            status = served.watcher.status
            out[name] = {
                "champion_version": status.champion_version,
                "model_version": status.served_version,
                "last_error": status.last_error,
                "rows_logged": served.log.rows_written,
            }
        return out

    def stop(self) -> None:
        """Stop every watcher and write every pending prediction-log row."""
        with self._lock:
            self._stopped = True
            models = list(self._models.values())
        for served in models:
            served.watcher.stop()
            served.log.close()

    # ---- loading ----
    def _served(self, name: str) -> _Served:
        served = self._models.get(name)
        if served is not None:
            return served
        with self._lock:
            served = self._models.get(name)
            if served is not None:
                return served
            self._require_registered(name)
            watcher: ChampionWatcher[TargetPredictor] = ChampionWatcher(
                lambda: resolve_alias(self._client(), name, self.settings.tracking_uri),
                lambda version: self.load(name, version),
                lambda predictor, version: served_now.install(predictor, version),
                interval_seconds=self.poll_seconds,
                retry_seconds=self.retry_seconds,
                absent=f'model {name!r} has no champion; promote a version, or pass "version"',
            )
            log = PredictionLog(
                catalog.target_prediction_log(self.settings, name),
                flush_seconds=self.log_flush_seconds,
                fsync=self.settings.prediction_log_fsync,
            )
            served_now = _Served(watcher, log)
            outcome = watcher.check_once()
            logger.info("%s champion check at first request: %s", name, outcome)
            if self._stopped:
                raise TargetUnavailable(503, "the server is stopping")
            log.start()
            watcher.start()
            self._models[name] = served_now
            return served_now

    def _champion(self, name: str, served: _Served) -> TargetPredictor:
        predictor = served.predictor
        if predictor is not None:
            return predictor
        status = served.watcher.status
        if status.champion_version is None and status.last_error == served.watcher.absent:
            raise TargetUnavailable(409, f"{status.last_error} (a version of it is served by number)", "version")
        raise TargetUnavailable(503, f"{name}: {status.last_error or 'loading'}")

    def _pinned_version(self, name: str, version: str) -> TargetPredictor:
        key = (name, version)
        with self._lock:
            predictor = self._pinned.get(key)
            if predictor is not None:
                self._pinned.move_to_end(key)
                return predictor
            self._require_version(name, version)
            try:
                predictor = self.load(name, version)
            except FeatureStoreError as exc:
                raise _with_hint(exc) from None
            except Exception as exc:
                raise TargetUnavailable(503, f"{name} v{version} failed to load: {type(exc).__name__}: {exc}") from None
            self._pinned[key] = predictor
            while len(self._pinned) > PINNED_KEPT:
                self._pinned.popitem(last=False)
            return predictor

    def load(self, name: str, version: str) -> TargetPredictor:
        """A registered version of a custom-target model with a reader of its feature service.

        Raises:
            ValueError: the version is not a custom-target bundle.
            UntrustedModelError / FeatureStoreError / MlflowException: it cannot serve.
        """
        from features.text_version import require_text_version
        from model.bundle import load_predictor

        self._client()
        model = load_predictor(f"models:/{name}/{version}", self.settings)
        if model.kind != "target":
            raise ValueError(f"{name} v{version} is a {model.kind!r} bundle, not a custom target's model")
        require_text_version(self.settings, f"{name} v{version}", model.metadata)
        reader = OnlineFeatureReader.from_store(
            self._store(),
            model.feature_columns,
            model.metadata.get("feature_service"),
            timeout=online_store_timeout(self.settings),
        )
        return TargetPredictor(
            model=model,
            reader=reader,
            model_name=name,
            version=str(version),
            unmaterialized=lambda: self._unmaterialized(reader.views),
        )

    def _unmaterialized(self, views: list[str]) -> list[str]:
        """Which of ``views`` were never materialized (the registry records every materialization)."""
        from store.registry_read import view_states, view_states_via_feast

        try:
            states = view_states(self.settings)
        except NotImplementedError:  # the prod registry is read through Feast
            states = view_states_via_feast(self.settings)
        done = {state.name for state in states or [] if state.intervals}
        return [view for view in views if view not in done]

    # ---- registry questions ----
    def _require_registered(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client().get_registered_model(name)
        except MlflowException as exc:
            if is_absent(exc):
                raise TargetUnavailable(
                    404,
                    f"no registered model {name!r}; train one with `persona train --labels FILE --target "
                    f"{name.removeprefix(self.settings.registered_model + '-')}` (`persona models list` "
                    "shows the models there are)",
                    "target",
                ) from None
            raise TargetUnavailable(503, f"the MLflow registry did not answer: {exc}") from None

    def _require_version(self, name: str, version: str) -> None:
        from mlflow.exceptions import MlflowException

        self._require_registered(name)
        try:
            self._client().get_model_version(name, version)
        except MlflowException as exc:
            if is_absent(exc):
                raise TargetUnavailable(404, f"model {name!r} has no version {version}", "version") from None
            raise TargetUnavailable(503, f"the MLflow registry did not answer: {exc}") from None


def _with_hint(exc: FeatureStoreError) -> FeatureStoreError:
    """The store error, saying what to run when the online store has no table for a view."""
    text = str(exc)
    if "no such table" in text or "not registered" in text or "no online feature view" in text:
        return FeatureStoreError(
            f"{text}; the online store is not materialized for this model: run "
            "`persona features apply` and `persona features materialize`"
        )
    return exc


__all__ = ["RegistryUnavailable", "TargetModels", "TargetUnavailable"]

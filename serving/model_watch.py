"""Champion watcher: notice when the ``champion`` alias moves and swap the served model.

:class:`ChampionWatcher` polls a ``resolve()`` function (the version holding the alias) and, on
a change, calls ``load(version)`` off the request path. A successful load is handed to
``install`` (one reference assignment: requests in flight finish on the model they started
with, new ones get the new model, none is dropped). A failed load keeps the last good model,
records why in :attr:`WatchStatus.last_error` and is retried only after ``retry_seconds`` (or
when the alias moves again).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class WatchStatus:
    """What the watcher last saw and did."""

    served_version: str | None = None
    champion_version: str | None = None
    loaded_at: dt.datetime | None = None
    last_checked_at: dt.datetime | None = None
    last_error: str | None = None
    failed_version: str | None = None
    failed_at: float = 0.0
    swaps: int = 0


class ChampionWatcher(Generic[T]):
    """Polls the champion alias and installs new versions (see module docstring).

    Args:
        resolve: the version currently holding the alias (None when there is none).
        load: build a servable object for a version (raises on failure).
        install: make a loaded object the one that serves (called with object and version).
        interval_seconds: time between polls.
        retry_seconds: wait before retrying a version that failed to load.
        absent: what ``last_error`` says while no version holds the alias.
    """

    def __init__(
        self,
        resolve: Callable[[], str | None],
        load: Callable[[str], T],
        install: Callable[[T, str], None],
        interval_seconds: float = 10.0,
        retry_seconds: float = 300.0,
        absent: str = "no champion registered yet; run `persona train`",
    ) -> None:
        self.resolve = resolve
        self.absent = absent
        self.load = load
        self.install = install
        self.interval_seconds = interval_seconds
        self.retry_seconds = retry_seconds
        self.status = WatchStatus()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._check_lock = threading.Lock()

    def check_once(self) -> str:
        """Poll once; returns what happened (``unchanged``, ``swapped to v2``, ``failed: ...``)."""
        with self._check_lock:
            status = self.status
            status.last_checked_at = dt.datetime.now(dt.UTC)
            try:
                version = self.resolve()
            except Exception as exc:  # registry unreachable: keep serving what we have
                error = f"cannot read the champion alias: {type(exc).__name__}: {exc}"
                if error != status.last_error:  # once per outage, not once per poll
                    logger.warning(error)
                status.last_error = error
                return f"failed: {status.last_error}"
            status.champion_version = version
            if version is None:
                if status.served_version is None:
                    status.last_error = self.absent
                return "no champion"
            if version == status.served_version:
                status.last_error = None  # the registry answers again and the champion is what we serve
                return "unchanged"
            if version == status.failed_version and time.monotonic() - status.failed_at < self.retry_seconds:
                return "unchanged (last load failed)"
            try:
                loaded = self.load(version)
                self.install(loaded, version)
            except Exception as exc:
                status.failed_version, status.failed_at = version, time.monotonic()
                keeping = f"; still serving v{status.served_version}" if status.served_version else ""
                status.last_error = (
                    f"champion v{version} failed to load: {type(exc).__name__}: {exc}{keeping}"
                )
                logger.error(status.last_error)
                return f"failed: {status.last_error}"
            previous = status.served_version
            status.served_version, status.loaded_at = version, dt.datetime.now(dt.UTC)
            status.last_error, status.failed_version = None, None
            status.swaps += 1
            logger.info("serving model v%s (was v%s)", version, previous)
            return f"swapped to v{version}"

    def start(self) -> None:
        """Poll in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling (waits for a load in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                self.check_once()
            except Exception:  # never let the watcher die
                logger.exception("champion check failed")

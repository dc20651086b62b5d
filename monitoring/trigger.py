"""The retrain trigger: training plus the promotion gate, single-flight and cooldown-checked.

Two triggers at once give one run: the second finds the lock held and reports
``already_running``. A trigger that gets the lock just after another retrain finished sees that
retrain's start time (written under the lock) and stops at the cooldown.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from core.errors import PersonaError
from core.locks import AlreadyRunning, single_flight

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from core.settings import Settings

RetrainStatus = Literal["trained", "already_running", "cooldown", "failed", "waiting_for_labels"]


class Gate(Protocol):
    """The promotion gate's decision (the fields used here)."""

    @property
    def promote(self) -> bool:
        """Whether the candidate became champion."""
        ...

    @property
    def alias(self) -> str:
        """The alias it got."""
        ...

    @property
    def reason(self) -> str:
        """The gate's one-line reason."""
        ...


class Trained(Protocol):
    """What :meth:`training.train.TrainJob.run` returns (the fields used here)."""

    @property
    def run_id(self) -> str:
        """The training MLflow run."""
        ...

    @property
    def version(self) -> str:
        """The registered version."""
        ...

    @property
    def decision(self) -> Gate:
        """The promotion gate's decision."""
        ...


@dataclass(frozen=True)
class RetrainOutcome:
    """What the trigger did.

    Attributes:
        status: ``trained``, ``already_running``, ``cooldown`` or ``failed``.
        version: the registered version (trained only).
        promoted: whether the gate made it champion (trained only).
        alias: ``champion`` or ``challenger`` (trained only).
        gate_reason: the gate's one-line reason.
        run_id: the training MLflow run.
        message: why it did not train.
        started_at: when the retrain started (trained and failed).
        train_window / holdout_window: the snapshots the retrain trained and was gated on
            (``first – last``; trained only, when the training plan is known).
        refresh: the label-free refresh run while the supervised models wait for labels
            (``status`` refreshed, skipped or failed, and ``summary``); None when none was tried.
    """

    status: RetrainStatus
    version: str | None = None
    promoted: bool | None = None
    alias: str | None = None
    gate_reason: str = ""
    run_id: str | None = None
    message: str = ""
    started_at: str | None = None
    train_window: str = ""
    holdout_window: str = ""
    refresh: dict | None = None

    def summary(self) -> str:
        """One short phrase."""
        if self.status == "trained":
            verdict = "promoted to champion" if self.promoted else f"kept as {self.alias}"
            windows = (f"; trained on {self.train_window}, holdout {self.holdout_window}"
                       if self.train_window else "")
            return f"retrained v{self.version}, {verdict} ({self.gate_reason}){windows}"
        if self.status == "waiting_for_labels":
            refreshed = f"{self.refresh['summary']}; " if self.refresh and self.refresh.get("summary") else ""
            return f"{refreshed}no supervised retrain: {self.message}"
        return f"retrain {self.status.replace('_', ' ')}: {self.message}"

    def to_dict(self) -> dict:
        """Plain data for the summary JSON and the MLflow tags."""
        return asdict(self)


def plan_windows(plan: object) -> tuple[str, str]:
    """``("first – last", "first – last")`` of a training plan's training and holdout snapshots ("" unknown)."""
    def span(times: object) -> str:
        stamps = sorted(times) if times else []  # type: ignore[call-overload]
        return f"{stamps[0]:%Y-%m-%d} – {stamps[-1]:%Y-%m-%d}" if stamps else ""

    return span(getattr(plan, "train_times", None)), span(getattr(plan, "holdout_times", None))


def lock_path(settings: Settings) -> Path:
    """The retrain lock file of this home."""
    return settings.home / "locks" / "retrain.lock"


def state_path(settings: Settings) -> Path:
    """Where the start time of the last retrain is kept (written under the lock)."""
    return settings.home / "locks" / "last_retrain.json"


def read_last_retrain(settings: Settings) -> dt.datetime | None:
    """Start time of the last retrain recorded in this home, or None."""
    path = state_path(settings)
    try:
        return dt.datetime.fromisoformat(json.loads(path.read_text())["started_at"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def _write_last_retrain(settings: Settings, started: dt.datetime) -> None:
    path = state_path(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"started_at": started.isoformat()}))
    tmp.replace(path)


def retrain(
    settings: Settings,
    train: Callable[[], Trained],
    cooldown_hours: float,
    last_retrain_at: Callable[[], dt.datetime | None] | None = None,
    now: Callable[[], dt.datetime] | None = None,
) -> RetrainOutcome:
    """Run ``train`` unless another retrain holds the lock or the cooldown has not passed.

    Args:
        settings: locates the lock and the state file under ``settings.home``.
        train: runs training and the promotion gate (e.g. ``TrainJob(settings, config).run``).
        cooldown_hours: minimum time between two retrain starts.
        last_retrain_at: other sources of the last retrain time (e.g. MLflow), checked under the lock.
        now: clock (tz-aware UTC).

    Returns:
        The outcome; training errors that users can cause become ``failed`` with the message.
    """
    clock = now or (lambda: dt.datetime.now(dt.UTC))
    try:
        with single_flight(lock_path(settings)):
            started = clock()
            known = [t for t in (read_last_retrain(settings), last_retrain_at() if last_retrain_at else None)
                     if t is not None]
            if known and cooldown_hours > 0:
                last = max(known)
                if started < last + dt.timedelta(hours=cooldown_hours):
                    return RetrainOutcome("cooldown", message=f"another retrain started at "
                                          f"{last.isoformat(timespec='seconds')}, within the "
                                          f"{cooldown_hours:g} h cooldown")
            _write_last_retrain(settings, started)
            stamp = started.isoformat(timespec="seconds")
            try:
                result = train()
            except PersonaError as exc:
                return RetrainOutcome("failed", message=str(exc), started_at=stamp)
            gate = result.decision
            train_window, holdout_window = plan_windows(getattr(result, "plan", None))
            return RetrainOutcome("trained", version=str(result.version), promoted=bool(gate.promote),
                                  alias=gate.alias, gate_reason=gate.reason, run_id=result.run_id,
                                  started_at=stamp, train_window=train_window, holdout_window=holdout_window)
    except AlreadyRunning as exc:
        return RetrainOutcome("already_running", message=str(exc))

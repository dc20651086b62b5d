"""Single-flight: at most one retrain at a time per home, via an exclusive ``flock`` on a file.

The kernel drops the lock when its holder exits, so a crashed retrain never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


class AlreadyRunning(Exception):
    """Another process (or thread) holds the lock."""


def _describe_holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return ""
    if not holder:
        return ""
    return f" (pid {holder.get('pid', '?')} since {holder.get('since', '?')})"


@contextlib.contextmanager
def _holding(fd: int) -> Iterator[None]:
    """With the lock on ``fd`` taken: record the holder (pid, since) while held, then clear and release."""
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": dt.datetime.now(dt.UTC)
                                 .isoformat(timespec="seconds")}).encode())
        yield
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def single_flight(path: Path, what: str = "a retrain") -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on ``path`` for the duration of the block.

    Args:
        path: the lock file (created with its directory if missing).
        what: what the lock protects, for the error message.

    Raises:
        AlreadyRunning: when another holder has the lock; the message names its pid and start time.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(f"{what} is already running{_describe_holder(path)}") from None
        with _holding(fd):
            yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive(path: Path, timeout_s: float | None = None, what: str = "the lock") -> Iterator[None]:
    """Wait for and hold an exclusive lock on ``path`` (short critical sections, e.g. workspace writes).

    Args:
        path: the lock file (created with its directory if missing).
        timeout_s: give up after this many seconds (None: wait as long as it takes).
        what: what the lock protects, for the error message.

    Raises:
        AlreadyRunning: the lock stayed held for ``timeout_s``; the message names the holder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if timeout_s is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise AlreadyRunning(f"{what} has been held for more than {timeout_s:g} s"
                                             f"{_describe_holder(path)}") from None
                    time.sleep(0.02)
        with _holding(fd):
            yield
    finally:
        os.close(fd)

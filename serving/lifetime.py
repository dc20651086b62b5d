"""The served worker lives no longer than the process that started it.

``bentoml serve`` is a parent (circus arbiter) holding the listening socket and worker
processes that inherit it. When the parent was killed with SIGKILL, the worker went on serving
the port as an orphan, unmanaged and unstoppable by a new ``persona serve``. So the worker asks
Linux to send it SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``) and, as a fallback
for other systems or a parent that died before the call, a daemon thread checks the parent's pid
every ``interval`` seconds and sends SIGTERM to its own process when it changed (SIGTERM: the
normal shutdown, which writes the prediction log).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel for ``sig`` when the parent dies (Linux only); True when it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def exit_with_parent(interval: float = 1.0) -> threading.Thread:
    """Make this process stop when its parent goes (see module docstring); returns the watchdog thread."""
    parent = os.getppid()
    set_parent_death_signal()
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(interval):
            if os.getppid() != parent:
                logger.warning("parent process %d is gone; stopping this server process", parent)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    if os.getppid() != parent:  # the parent died before prctl: the watchdog's first check stops us
        logger.warning("parent process %d died while starting", parent)
    return thread

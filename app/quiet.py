"""Quiet command output: library warnings and INFO lines go to a log file under the home.

``persona train`` and ``persona score`` end with their summary; what MLflow, numpy, Feast or
alembic would print on the way (``Mean of empty slice``, deprecation warnings, ``Created version``)
is kept in :func:`core.catalog.log_file` instead, where a person debugging a run can read it.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import TYPE_CHECKING

from core import catalog

if TYPE_CHECKING:
    from collections.abc import Iterator

    from core.settings import Settings

# Loggers that bring their own terminal handler (MLflow configures these at import).
NOISY_LOGGERS = ("mlflow", "alembic", "huey", "sqlalchemy.engine", "feast", "py.warnings")


def _terminal_handlers(logger: logging.Logger) -> list[logging.Handler]:
    """Handlers that write to a terminal stream (any stream handler but a file)."""
    return [h for h in logger.handlers if type(h) is logging.StreamHandler]


@contextlib.contextmanager
def quiet_output(settings: Settings) -> Iterator[None]:
    """Send warnings and library log lines to the home's log file while the block runs.

    MLflow's own ``eprint`` lines (``Created version '2' of model``) are silenced through its
    public switch; the command's summary says the same.
    """
    import mlflow.pyfunc  # noqa: F401 - importing it turns MLflow's prints back on: import it before silencing
    from mlflow.utils.logging_utils import disable_logging, enable_logging  # configures mlflow's loggers

    path = catalog.log_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in NOISY_LOGGERS)]
    saved = [(lg, _terminal_handlers(lg), lg.propagate) for lg in loggers]
    root = logging.getLogger()
    root_level = root.level
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        logging.captureWarnings(True)
        disable_logging()
        for logger, terminal, _ in saved:
            for h in terminal:
                logger.removeHandler(h)
            logger.propagate = True
        root.addHandler(handler)
        root.setLevel(logging.INFO if root_level == logging.NOTSET or root_level > logging.INFO else root_level)
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(root_level)
            logging.captureWarnings(False)
            enable_logging()
            for logger, terminal, propagate in saved:
                for h in terminal:
                    logger.addHandler(h)
                logger.propagate = propagate
            handler.close()

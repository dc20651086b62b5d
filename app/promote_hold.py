"""Whether a hand promotion is held by the latest skew replay (the same verdict the training gate reads)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings import Settings


def held_reason(settings: Settings) -> str | None:
    """Why the latest skew replay holds promotion (None: no replay yet, or a clean one).

    An unreadable verdict holds too: a check that cannot be read has not passed.
    """
    from training.gate import skew_hold
    from training.train import read_skew_verdict

    return skew_hold(read_skew_verdict(settings))

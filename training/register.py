"""The registry steps of a run: score the champion, register the logged model, move an alias.

The alias move is a compare-and-set: the candidate takes ``champion`` only if the champion is
still the version the gate compared it with; otherwise it becomes ``challenger`` and says why.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from model.registry import CHALLENGER, CHAMPION
from training.gate import GateDecision

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    import pandas as pd

    from core.settings import Settings
    from model.bundle import PersonaPredictor
    from training.lineage import LoggedRun

logger = logging.getLogger(__name__)

ChampionScore = tuple[dict[str, float] | None, str | None]


def load_champion(client, model: str, settings: Settings) -> tuple[PersonaPredictor | None, str | None]:
    """The champion's predictor (None when there is none or it fails a check) and its version.

    Loaded once per run: the fit matches its personas to it and the gate scores it.
    """
    from model.bundle import load_predictor
    from model.registry import alias_version

    version = alias_version(client, model, CHAMPION)
    if version is None:
        return None, None
    try:
        return load_predictor(f"models:/{model}/{version}", settings), version
    except Exception as exc:  # an unreadable champion must not block training
        logger.warning("could not load champion v%s: %s", version, exc)
        return None, version


def champion_score(
    client,
    model: str,
    holdout: pd.DataFrame,
    frame_for: Callable[[PersonaPredictor, pd.DataFrame], pd.DataFrame | None],
    settings: Settings | None = None,
    loaded: tuple[PersonaPredictor | None, str | None] | None = None,
) -> ChampionScore:
    """The champion's metrics on this holdout and its version.

    The champion is loaded only if it passes every trust check (see :func:`model.bundle.load_predictor`;
    ``settings`` name the signing key, default: the active job's).

    ``loaded`` is what :func:`load_champion` returned earlier in the run (default: load it now).

    Returns:
        ``(None, None)`` with no champion; ``({}, version)`` when it cannot be evaluated here
        (unreadable, refused, or its features cannot be fetched for this holdout).
    """
    from model.bundle import load_predictor
    from model.registry import alias_version
    from training.evaluate import bundle_metrics

    if loaded is not None:
        predictor, version = loaded
        if version is None:
            return None, None
        if predictor is None:
            return {}, version
    else:
        version = alias_version(client, model, CHAMPION)
        if version is None:
            return None, None
    try:
        if loaded is None:
            predictor = load_predictor(f"models:/{model}@{CHAMPION}", settings)
        assert predictor is not None
        frame = frame_for(predictor, holdout)
    except Exception as exc:  # an unreadable champion must not block training
        logger.warning("could not evaluate champion v%s: %s", version, exc)
        return {}, version
    if frame is None:
        return {}, version
    return bundle_metrics(predictor, frame), version


def register(
    client,
    model: str,
    logged: LoggedRun,
    metrics: Mapping[str, float],
    gated: Iterable[str],
    settings: Settings | None = None,
) -> str:
    """Register the logged model as a new version of ``model``: lineage tags, artifact hash, signature.

    The signature (an HMAC under a key the registry does not hold, see :mod:`model.signing`) is
    what loaders trust; a version whose files or tags change afterwards is refused.

    Args:
        client: an MLflow client on this profile's registry.
        model: the registered model name.
        logged: the run and logged model (see :func:`training.lineage.log`).
        metrics: the candidate's holdout metrics.
        gated: metric names the gate used (kept as ``metric.<name>`` version tags).
        settings: where the signing key comes from (default: the active job's settings).

    Returns:
        The new version.
    """
    import mlflow

    from model.trust import record_and_sign

    if settings is None:
        from core.runtime import active_settings

        settings = active_settings()
    version = str(mlflow.register_model(logged.model_uri, model).version)
    for key, value in {**logged.tags, "run_id": logged.run_id}.items():
        client.set_model_version_tag(model, version, key, str(value))
    record_and_sign(client, settings, model, version)  # loaders refuse artifacts changed after this
    for key in gated:
        if key in metrics:
            client.set_model_version_tag(model, version, f"metric.{key}", f"{metrics[key]:.6f}")
    return version


def move(client, model: str, version: str, decision: GateDecision, champion_version: str | None) -> GateDecision:
    """Point the decided alias at ``version``; returns the decision as it finally applied.

    A promotion is a compare-and-set: only if ``champion`` still points at
    ``champion_version`` (the one the gate beat). If it moved meanwhile, the candidate becomes
    ``challenger`` instead.
    """
    from model.registry import AliasMoved, move_alias

    if not decision.promote:
        move_alias(client, model, decision.alias, version, decision.reason)
        return decision
    try:
        move_alias(client, model, decision.alias, version, decision.reason, expect_from=champion_version)
    except AliasMoved as exc:
        decision = GateDecision(
            promote=False,
            alias=CHALLENGER,
            reason=f"gated against v{champion_version} but the champion moved meanwhile ({exc}); "
            "train again to compare with the new champion",
        )
        move_alias(client, model, decision.alias, version, decision.reason)
    return decision

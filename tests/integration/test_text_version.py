"""The champion is served text features of the projection it was trained on (embed, train, embed, materialize)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from core import catalog
from core.settings import load_settings
from features.text_build import embed_reviews
from features.text_version import TEXT_VERSION_KEY, TextVersionMismatch, load_projection
from tests.conftest import SERVING_ENV, BagOfWordsEncoder, copy_home

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


def _new_reviews(settings, folder: Path) -> Path:
    """Reviews written on the newest day by customers who already reviewed (new data for the next embed)."""
    reviews = pd.read_parquet(catalog.raw_table(settings, "reviews"), columns=["customer_id", "event_timestamp"])
    newest = pd.to_datetime(reviews["event_timestamp"], utc=True).max()
    writers = reviews["customer_id"].drop_duplicates().head(40)
    texts = ["Parcel lost twice, support never answered, cancelling my account.",
             "Great quality and fast delivery, I keep coming back."]
    frame = pd.DataFrame({"customer_id": writers.to_numpy(), "event_timestamp": newest,
                          "text": [texts[i % 2] for i in range(len(writers))], "rating": 3})
    path = folder / "more_reviews.parquet"
    frame.to_parquet(path)
    return path


def test_the_champion_is_served_text_features_of_its_own_projection(
    champion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.run import ingest_files
    from model.registry import promote
    from monitoring.champion import load_champion
    from scoring.score import score
    from serving.runtime import ServingRuntime
    from store.repo import materialize
    from training.config import PersonaParams, TrainConfig, XGBParams
    from training.train import TrainJob

    # given: the reviews embedded and a champion trained on them
    for name in SERVING_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PERSONA_HOME", str(copy_home(champion_home, tmp_path / "home")))
    settings = load_settings()
    first = embed_reviews(settings, encoder=BagOfWordsEncoder())
    config = TrainConfig(xgb=XGBParams(n_estimators=5), personas=PersonaParams(k_min=2, k_max=2),
                         horizon_days=28, purge=False, compare_behavior_only=False)
    trained = TrainJob(settings, config).run()
    if not trained.decision.promote:
        promote(settings, trained.version, reason="test: serve the model trained on text")

    # when: new reviews arrive, are embedded and materialized
    ingest_files(settings, {"reviews": _new_reviews(settings, tmp_path)})
    second = embed_reviews(settings, encoder=BagOfWordsEncoder())
    materialize(settings)

    # then: the champion recorded its version and is served coordinates of that version
    served = ServingRuntime(settings).load_version(trained.version)
    assert served.model.metadata[TEXT_VERSION_KEY] == first.projection_version  # type: ignore[attr-defined]
    assert second.projection_version == first.projection_version
    text = pd.read_parquet(catalog.text_source(settings))
    latest = text.sort_values("event_timestamp").drop_duplicates("customer_id", keep="last")
    latest = latest[latest["text_pca_0"].notna()].head(50)
    expected = load_projection(settings, first.projection_version).transform(np.stack(latest["text_embedding"]))
    batch = served.reader.read(latest["customer_id"].to_numpy())  # type: ignore[union-attr]
    columns = [f"text_pca_{i}" for i in range(expected.shape[1])]
    online = np.stack([batch.column(c) for c in columns], axis=1)
    np.testing.assert_allclose(online, expected, rtol=1e-5, atol=1e-5)

    # and: a refitted projection is a new version that serving, scoring and monitoring refuse, naming both
    refit = embed_reviews(settings, encoder=BagOfWordsEncoder(), refit_projection=True)
    assert refit.projection_version != first.projection_version
    with pytest.raises(TextVersionMismatch) as refused:
        ServingRuntime(settings).load_version(trained.version)
    message = str(refused.value)
    assert first.projection_version in message
    assert refit.projection_version in message
    assert "\n" not in message
    with pytest.raises(TextVersionMismatch, match=refit.projection_version):
        score(settings, tmp_path / "scores.parquet")
    with pytest.raises(TextVersionMismatch, match=refit.projection_version):
        load_champion(settings)

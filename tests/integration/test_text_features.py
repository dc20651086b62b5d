"""Per-customer text features as of each snapshot, the embed job and `persona similar` (issue 3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.errors import PersonaError
from core.settings import Settings, load_settings
from features.embedding.encoder import EMBEDDING_DIM
from features.embedding.similarity import SimilarityIndex, similar_customers
from features.text_build import distinct_texts, embed_reviews
from features.transforms.text import (
    PCA_COLUMNS,
    TEXT_FEATURES,
    TextProjection,
    build_text_features,
    compute_text_windows,
    fit_text_projection,
    fit_windows_projection,
    projection_cutoff,
    training_rows,
)
from tests.conftest import BagOfWordsEncoder

if TYPE_CHECKING:
    from pathlib import Path

UTC = "UTC"




def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


# --------------------------------------------------------------------------- windows (pure)
def test_window_is_last_365_days_up_to_and_including_the_snapshot() -> None:
    # given: customer 1 reviews 365 days before t (out), 364 days before (in), at t (in), after t (out)
    t = _ts("1997-06-01")
    entities = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [t, t]})
    reviews = pd.DataFrame({
        "customer_id": [1, 1, 1, 1],
        "event_timestamp": [
            t - pd.Timedelta(days=365), t - pd.Timedelta(days=364), t, t + pd.Timedelta(seconds=1),
        ],
        "text_row": [0, 1, 2, 3],
    })
    vectors = np.eye(4, EMBEDDING_DIM, dtype=np.float32)
    sentiment = np.array([-1.0, 0.5, -0.1, 1.0])

    # when
    windows = compute_text_windows(entities, reviews, vectors, sentiment)

    # then
    frame = windows.frame
    assert frame["review_count"].tolist() == [2, 0]
    np.testing.assert_allclose(windows.embeddings()[0, :4], [0.0, 0.5, 0.5, 0.0])
    assert not windows.embeddings()[1].any()
    assert frame["sentiment_mean_365d"].iloc[0] == pytest.approx(0.2)
    assert np.isnan(frame["sentiment_mean_365d"].iloc[1])
    assert frame["event_timestamp"].tolist() == [t, t]


def test_consecutive_snapshots_share_windows_and_keep_entity_order() -> None:
    # given: one review, three weekly snapshots after it, entities listed newest first
    snaps = [_ts("2024-01-15"), _ts("2024-01-08"), _ts("2024-01-01")]
    entities = pd.DataFrame({"customer_id": [7, 7, 7], "event_timestamp": snaps})
    reviews = pd.DataFrame(
        {"customer_id": [7], "event_timestamp": [_ts("2024-01-03 12:00")], "text_row": [0]})

    # when
    vectors = np.ones((1, EMBEDDING_DIM), np.float32)
    windows = compute_text_windows(entities, reviews, vectors, np.array([0.3]))

    # then
    assert windows.frame["review_count"].tolist() == [1, 1, 0]
    assert windows.frame["window"].tolist() == [0, 0, -1]
    assert windows.means.shape == (1, EMBEDDING_DIM)


def test_projection_is_fitted_on_the_training_region_only() -> None:
    # given: early snapshots have text along axis 0, late ones (holdout) along axis 1
    snaps = pd.date_range("2020-01-05", periods=60, freq="7D", tz=UTC)
    entities = pd.DataFrame({"customer_id": np.repeat([1, 2], 60), "event_timestamp": np.tile(snaps, 2)})
    reviews = pd.DataFrame({
        "customer_id": [1, 2, 1, 2],
        "event_timestamp": [snaps[0], snaps[0], snaps[-2], snaps[-2]],
        "text_row": [0, 1, 2, 3],
    })
    vectors = np.zeros((4, EMBEDDING_DIM), np.float32)
    vectors[0, 0], vectors[1, 0] = 1.0, -1.0
    vectors[2, 1], vectors[3, 1] = 5.0, -5.0
    windows = compute_text_windows(entities, reviews, vectors, np.zeros(4))
    cutoff = projection_cutoff(windows.frame["event_timestamp"], horizon_days=90)

    # when
    projection = fit_windows_projection(windows, "m", cutoff)

    # then
    assert (windows.frame["event_timestamp"].iloc[training_rows(windows, cutoff)] <= cutoff).all()
    assert abs(projection.components[0, 0]) == pytest.approx(1.0, abs=1e-6)
    assert projection.components[0, 1] == pytest.approx(0.0, abs=1e-6)
    assert projection.cutoff == cutoff.isoformat()


def test_projection_version_save_and_load(tmp_path: Path) -> None:
    # given
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(200, EMBEDDING_DIM)).astype(np.float32)

    # when
    a = fit_text_projection(vectors, "model-a")
    again = fit_text_projection(vectors, "model-a")
    b = fit_text_projection(vectors, "model-b")
    loaded = TextProjection.load(a.save(tmp_path))

    # then
    assert a.version == again.version
    assert a.version != b.version
    assert loaded.version == a.version
    assert (tmp_path / f"{a.version}.npz").exists()
    coords = a.transform(vectors)
    assert coords.shape == (200, 8)
    assert np.all(np.diff(coords.var(axis=0)) <= 1e-4)  # components ordered by variance


def test_feature_frame_has_every_text_feature() -> None:
    # given
    entities = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [_ts("2024-03-01")] * 2})
    reviews = pd.DataFrame({"customer_id": [1], "event_timestamp": [_ts("2024-02-01")], "text_row": [0]})
    vectors = np.ones((1, EMBEDDING_DIM), np.float32)
    windows = compute_text_windows(entities, reviews, vectors, np.array([0.5]))
    projection = fit_text_projection(windows.means, "m")

    # when
    frame = build_text_features(windows, projection, "m", _ts("2024-03-02"))

    # then
    assert set(TEXT_FEATURES) <= set(frame.columns)
    assert len(frame["text_embedding"].iloc[0]) == EMBEDDING_DIM
    assert frame[PCA_COLUMNS].iloc[1].isna().all()
    assert frame[PCA_COLUMNS].iloc[0].notna().all()
    assert frame["embedding_model"].tolist() == ["m", "m"]


def test_distinct_texts_normalises_and_marks_empty() -> None:
    # given
    texts = pd.Series(["Late  parcel", "late parcel", "Late parcel ", "   ", None, "ok"])

    # when
    rows, distinct, empty = distinct_texts(texts)

    # then
    assert distinct == ["Late parcel", "late parcel", "ok"]
    assert rows.tolist() == [0, 1, 0, -1, -1, 2]
    assert empty == 2


# --------------------------------------------------------------------------- the job
def _write_raw(settings: Settings, reviews: pd.DataFrame) -> None:
    settings.raw_dir.mkdir(parents=True, exist_ok=True)
    reviews = reviews.assign(_row_id=np.arange(len(reviews)))
    reviews.to_parquet(settings.raw_dir / "reviews.parquet", index=False)
    ids = sorted(reviews["customer_id"].unique())
    pd.DataFrame({
        "customer_id": np.array(ids, np.int64),
        "event_timestamp": [_ts("2023-01-02")] * len(ids),
        "amount": [10.0] * len(ids),
    }).to_parquet(settings.raw_dir / "transactions.parquet", index=False)


def _reviews(rows: list[tuple[int, str, str]]) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": np.array([r[0] for r in rows], np.int64),
        "event_timestamp": pd.to_datetime([r[1] for r in rows], utc=True),
        "text": [r[2] for r in rows],
        "rating": [3] * len(rows),
    })


BASE_REVIEWS = [
    (1, "2023-02-01", "Parcel arrived two weeks late, delivery is terrible."),
    (2, "2023-02-03", "Delivery late again, the parcel was lost by the courier."),
    (3, "2023-02-05", "Lovely jacket, great quality, very happy."),
    (4, "2023-02-07", "Great quality and lovely colours, happy customer."),
    (1, "2023-03-01", "Parcel arrived two weeks late, delivery is terrible."),
    (5, "2023-03-02", "   "),
]


def test_embed_job_writes_one_row_per_entity_snapshot(persona_home: Path) -> None:
    # given
    settings = load_settings()
    _write_raw(settings, _reviews(BASE_REVIEWS))
    encoder = BagOfWordsEncoder()

    # when
    report = embed_reviews(settings, encoder=encoder)

    # then
    from features.build import entity_snapshots

    out = pd.read_parquet(report.path)
    entities = entity_snapshots(settings)
    assert len(out) == len(entities) == report.rows_written
    assert set(map(tuple, out[["customer_id", "event_timestamp"]].itertuples(index=False))) == set(
        map(tuple, entities.itertuples(index=False)))
    assert report.texts_seen == 5
    assert report.unique_texts == 4
    assert report.refused_empty == 1
    assert sorted(encoder.embedded) == sorted(t for _, _, t in BASE_REVIEWS[:4])
    schema = pq.read_schema(report.path)
    assert str(schema.field("text_embedding").type) == "list<element: float>"
    assert str(schema.field("sentiment_mean_365d").type) == "float"
    assert str(schema.field("event_timestamp").type) == "timestamp[ns, tz=UTC]"
    latest = out[out["event_timestamp"] == out["event_timestamp"].max()].set_index("customer_id")
    assert not np.any(latest.loc[5, "text_embedding"])  # only an empty review: zeros, NaN sentiment
    assert np.isnan(latest.loc[5, "sentiment_mean_365d"])
    assert np.isnan(latest.loc[5, "text_pca_0"])
    assert latest.loc[1, "sentiment_mean_365d"] < 0 < latest.loc[3, "sentiment_mean_365d"]
    assert (out["embedding_model"] == encoder.identity).all()
    assert (settings.embeddings_dir / "projections" / f"{report.projection_version}.npz").exists()
    assert "5 texts seen" in report.summary()
    assert encoder.identity in report.summary()


def test_the_text_source_is_stored_compact_and_reads_back_the_values_of_a_default_file(persona_home: Path,
                                                                                      tmp_path: Path) -> None:
    # given an embedded home, and its rows rewritten with pyarrow's default encoding
    settings = load_settings()
    _write_raw(settings, _reviews(BASE_REVIEWS))
    report = embed_reviews(settings, encoder=BagOfWordsEncoder())
    plain = tmp_path / "plain.parquet"
    pq.write_table(pq.read_table(report.path), plain)

    # when both are read, by pyarrow and by DuckDB (Feast's offline engine)
    import duckdb

    query = "SELECT * FROM read_parquet('{}') ORDER BY customer_id, event_timestamp"
    compact, default = (duckdb.sql(query.format(p)).arrow().read_all() for p in (report.path, plain))

    # then the values are the same, and the embedding is stored byte-stream split and zstd-compressed
    pd.testing.assert_frame_equal(pd.read_parquet(report.path), pd.read_parquet(plain))  # NaN sentiment equal too
    pd.testing.assert_frame_equal(compact.to_pandas(), default.to_pandas())
    meta = pq.ParquetFile(report.path).metadata.row_group(0)
    embedding = next(meta.column(i) for i in range(meta.num_columns)
                     if meta.column(i).path_in_schema == "text_embedding.list.element")
    assert "BYTE_STREAM_SPLIT" in embedding.encodings
    assert embedding.compression == "ZSTD"


def test_rerun_hits_the_cache_and_new_reviews_embed_only_new_texts(persona_home: Path) -> None:
    # given
    settings = load_settings()
    _write_raw(settings, _reviews(BASE_REVIEWS))
    embed_reviews(settings, encoder=BagOfWordsEncoder())

    # when: nothing new
    idle = BagOfWordsEncoder()
    second = embed_reviews(settings, encoder=idle)

    # then
    assert idle.embedded == []
    assert second.new_embedded == 0
    assert second.cache_hits == 4
    assert second.rows_written == 0
    assert second.rows_total > 0

    # when: one new review and one repeat of a known text arrive
    more = BASE_REVIEWS + [(3, "2023-03-05", "Support never answered my emails."),
                           (4, "2023-03-06", "Lovely jacket, great quality, very happy.")]
    _write_raw(settings, _reviews(more))
    fresh = BagOfWordsEncoder()
    third = embed_reviews(settings, encoder=fresh)

    # then
    assert fresh.embedded == ["Support never answered my emails."]
    assert third.new_embedded == 1
    assert third.cache_hits == 4
    assert third.rows_written > 0


def test_model_change_invalidates_the_cache_and_reembeds_everything(persona_home: Path) -> None:
    # given
    settings = load_settings()
    _write_raw(settings, _reviews(BASE_REVIEWS))
    first = embed_reviews(settings, encoder=BagOfWordsEncoder("1"))

    # when
    upgraded = BagOfWordsEncoder("2")
    second = embed_reviews(settings, encoder=upgraded)

    # then
    assert len(upgraded.embedded) == 4
    assert second.new_embedded == 4
    assert second.invalidated == 4
    assert second.projection_version != first.projection_version
    out = pd.read_parquet(second.path, columns=["embedding_model"])
    assert set(out["embedding_model"]) == {upgraded.identity}


def test_later_embeds_reuse_the_pinned_projection_and_an_older_version_can_be_rebuilt(persona_home: Path) -> None:
    # given: a first embed pins its projection
    settings = load_settings()
    _write_raw(settings, _reviews(BASE_REVIEWS))
    first = embed_reviews(settings, encoder=BagOfWordsEncoder())

    # when: new reviews arrive (a refit would move the projection's centre)
    more = BASE_REVIEWS + [(3, "2023-03-05", "Support never answered my emails, awful service.")]
    _write_raw(settings, _reviews(more))
    second = embed_reviews(settings, encoder=BagOfWordsEncoder())

    # then: the same version projects the new rows
    assert second.projection_version == first.projection_version
    assert "(pinned)" in second.summary()
    second_rows = pd.read_parquet(second.path)
    assert set(second_rows["text_projection_version"]) == {first.projection_version}

    # when: refitted explicitly, then projected again with the first version
    refit = embed_reviews(settings, encoder=BagOfWordsEncoder(), refit_projection=True)
    back = embed_reviews(settings, encoder=BagOfWordsEncoder(), projection_version=first.projection_version)

    # then: the refit is a new version, and the first one rebuilds the same coordinates
    assert refit.projection_version != first.projection_version
    assert "(new: refit requested)" in refit.summary()
    rebuilt = pd.read_parquet(back.path).merge(second_rows, on=["customer_id", "event_timestamp"], suffixes=("", "_0"))
    assert len(rebuilt) == len(second_rows)
    assert (rebuilt["text_projection_version"] == first.projection_version).all()
    np.testing.assert_array_equal(rebuilt["text_pca_0"].to_numpy(), rebuilt["text_pca_0_0"].to_numpy())
    with pytest.raises(PersonaError, match="pca8-000000000000 is not stored"):
        embed_reviews(settings, encoder=BagOfWordsEncoder(), projection_version="pca8-000000000000")


def test_missing_reviews_file_says_to_ingest(persona_home: Path) -> None:
    # given
    settings = load_settings()

    # when / then
    with pytest.raises(PersonaError, match="persona ingest --reviews"):
        embed_reviews(settings, encoder=BagOfWordsEncoder())


# --------------------------------------------------------------------------- persona similar
def test_similar_customers_from_the_offline_snapshot(persona_home: Path) -> None:
    # given: the online store was never materialised, so the offline newest snapshot is used
    settings = load_settings()
    _write_raw(settings, _reviews(BASE_REVIEWS))
    embed_reviews(settings, encoder=BagOfWordsEncoder())

    # when
    neighbours = similar_customers(settings, customer_id=1, k=10)

    # then
    ids = [n.customer_id for n in neighbours]
    assert ids[0] == 2
    assert 1 not in ids
    assert 5 not in ids
    assert sorted(ids) == [2, 3, 4]
    assert list(settings.embeddings_dir.glob("similarity/index-*.vectors.npy"))


def test_similar_refuses_unknown_and_textless_customers(persona_home: Path) -> None:
    # given
    settings = load_settings()
    _write_raw(settings, _reviews(BASE_REVIEWS))
    embed_reviews(settings, encoder=BagOfWordsEncoder())

    # when / then
    with pytest.raises(PersonaError, match="no review text"):
        similar_customers(settings, customer_id=5, k=3)
    with pytest.raises(PersonaError, match="unknown customer 999"):
        similar_customers(settings, customer_id=999, k=3)


def test_similar_before_embed_says_to_run_embed(persona_home: Path) -> None:
    # given
    settings = load_settings()

    # when / then
    with pytest.raises(PersonaError, match="persona embed"):
        similar_customers(settings, customer_id=1, k=3)


def test_index_query_latency_is_small_for_many_customers() -> None:
    # given
    rng = np.random.default_rng(0)
    index = SimilarityIndex.from_arrays(np.arange(20_000), rng.normal(size=(20_000, EMBEDDING_DIM)))

    # when
    neighbours = index.query(123, k=10)

    # then
    assert len(neighbours) == 10
    assert 123 not in [n.customer_id for n in neighbours]


@pytest.mark.integration
def test_similarity_index_reads_vectors_from_the_materialized_online_store(persona_home: Path) -> None:
    # given: offline sources built, text embedded, repo applied and materialized
    from features.build import build_offline_sources
    from features.embedding import similarity
    from store.repo import apply_repo, materialize

    settings = load_settings()
    _write_raw(settings, _reviews(BASE_REVIEWS))
    pd.DataFrame({
        "customer_id": np.arange(1, 6, dtype=np.int64),
        "signup_date": pd.to_datetime(["2022-01-01"] * 5, utc=True),
        "region": ["north"] * 5,
    }).to_parquet(settings.raw_dir / "customers.parquet", index=False)
    build_offline_sources(settings)
    embed_reviews(settings, encoder=BagOfWordsEncoder())
    apply_repo(settings)
    materialize(settings)

    # when
    ids = np.array([1, 2, 3, 4, 5], np.int64)
    online = similarity._online_vectors(settings, ids)
    neighbours = similar_customers(settings, customer_id=1, k=2)

    # then
    latest = similarity.latest_snapshot(settings.offline_dir / "customer_text.parquet", with_vectors=True)
    offline = np.stack(latest.set_index("customer_id").loc[ids, "text_embedding"].to_numpy())
    assert online is not None
    np.testing.assert_allclose(online, offline, atol=1e-6)
    assert [n.customer_id for n in neighbours][0] == 2

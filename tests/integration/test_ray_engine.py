"""The Ray engine on a real two-node Ray cluster started on this machine (``ray start`` twice).

Under CI a cluster that does not start fails the tests (the fixture raises; nothing skips).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from core.settings import load_settings
from engine.runner import open_engine
from features.build import build_offline_sources
from tests.conftest import copy_home, write_tricky_raw
from tests.integration.ray_cluster import RAY_AUTH, RayCluster, two_node_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def ray_auth(monkeypatch):
    """Every driver here authenticates with the test clusters' token (never ``~/.ray/auth_token``)."""
    for name, value in RAY_AUTH.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)


@pytest.fixture(scope="session")
def ray_cluster():
    root = Path(tempfile.mkdtemp(prefix="pray-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    try:
        with two_node_cluster(root) as cluster:
            print(f"\ntwo-node Ray cluster up in {cluster.seconds_to_start:.1f} s at {cluster.address}")
            yield cluster
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ran_on(monkeypatch) -> list[str]:
    """The nodes the Ray engine's partitions (or pool batches) ran on, recorded however the engine was opened."""
    from engine.ray_engine import RayEngine

    nodes: list[str] = []

    def recording(original):
        def record(self, *args, **kwargs):
            out = original(self, *args, **kwargs)
            nodes.extend(self.nodes)
            return out

        return record

    monkeypatch.setattr(RayEngine, "map", recording(RayEngine.map))
    monkeypatch.setattr(RayEngine, "map_batches", recording(RayEngine.map_batches))
    return nodes


def _behavior(settings) -> pd.DataFrame:
    frame = pd.read_parquet(settings.offline_dir / "customer_behavior.parquet").drop(columns="created_timestamp")
    return frame.sort_values(["customer_id", "event_timestamp"], kind="stable").reset_index(drop=True)


def _local_then_ray(
    cluster: RayCluster, monkeypatch, client: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    write_tricky_raw(load_settings())
    build_offline_sources(load_settings())
    local = _behavior(load_settings())
    monkeypatch.setenv("PERSONA_ENGINE", "ray")
    monkeypatch.setenv("PERSONA_RAY_ADDRESS", cluster.client_address if client else cluster.address)
    settings = load_settings()
    with open_engine(settings) as engine:
        build_offline_sources(settings, engine=engine)
        nodes = list(engine.nodes)
    return local, _behavior(settings), nodes


def test_features_build_on_two_node_ray_equals_local_bit_for_bit(ray_cluster, monkeypatch):
    # given ingested data whose sums depend on the order of tied rows
    # when behavior snapshots are built locally, then on the two-node cluster
    local, on_ray, nodes = _local_then_ray(ray_cluster, monkeypatch)

    # then every row and value is the same, bit for bit, and partitions ran on both nodes
    assert len(local) > 1000
    pd.testing.assert_frame_equal(on_ray, local, check_exact=True)
    assert len(nodes) >= 2
    assert len(set(nodes)) == 2


def test_features_build_through_the_ray_client_equals_local_bit_for_bit(ray_cluster, monkeypatch):
    # given ingested data
    # when behavior snapshots are built locally, then through ray://host:port (Ray client, as from outside)
    local, on_ray, nodes = _local_then_ray(ray_cluster, monkeypatch, client=True)

    # then the rows are the same and both nodes ran partitions
    pd.testing.assert_frame_equal(on_ray, local, check_exact=True)
    assert len(set(nodes)) == 2


def test_partition_that_fails_once_is_retried_and_the_result_is_unchanged(ray_cluster, monkeypatch):
    # given the cluster armed to fail the first partition task that starts
    ray_cluster.fail_once_file.write_text("armed")

    # when behavior snapshots are built on it
    local, on_ray, _ = _local_then_ray(ray_cluster, monkeypatch)

    # then a task did fail (it took the marker), was retried, and the rows equal the local ones
    assert not ray_cluster.fail_once_file.exists()
    pd.testing.assert_frame_equal(on_ray, local, check_exact=True)


def test_batch_scores_on_two_node_ray_equal_local_bit_for_bit(
    ray_cluster, champion_home, tmp_path, monkeypatch, ran_on
):
    # given a copy of a home with a champion
    from scoring.score import score

    home = copy_home(champion_home, tmp_path / "home")
    monkeypatch.setenv("PERSONA_HOME", str(home))

    # when every customer is scored locally, then with predictions on the two-node cluster
    score(load_settings(), tmp_path / "local.parquet", publish=False)
    monkeypatch.setenv("PERSONA_ENGINE", "ray")
    monkeypatch.setenv("PERSONA_RAY_ADDRESS", ray_cluster.address)
    score(load_settings(), tmp_path / "ray.parquet", publish=False)

    # then predictions ran on both nodes and the score tables are identical, row order included
    local = pd.read_parquet(tmp_path / "local.parquet")
    on_ray = pd.read_parquet(tmp_path / "ray.parquet")
    assert len(local) > 100
    assert len(set(ran_on)) == 2
    pd.testing.assert_frame_equal(on_ray, local, check_exact=True)


def test_an_empty_ray_address_starts_a_local_ray_for_the_command(monkeypatch, ran_on):
    # given ingested data and the Ray engine with no cluster named
    write_tricky_raw(load_settings())
    build_offline_sources(load_settings())
    local = _behavior(load_settings())
    monkeypatch.setenv("PERSONA_ENGINE", "ray")
    monkeypatch.delenv("PERSONA_RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    import ray
    from typer.testing import CliRunner

    from app.cli import app

    # when features are built through the command
    result = CliRunner().invoke(app, ["features", "build"])

    # then a Ray started for the command computed the same rows, and it is gone afterwards
    assert result.exit_code == 0, result.output
    assert ran_on
    pd.testing.assert_frame_equal(_behavior(load_settings()), local, check_exact=True)
    assert not ray.is_initialized()


def test_bad_data_in_a_partition_is_one_persona_error_on_ray(ray_cluster, monkeypatch):
    # given a transaction whose amount is missing (as if written around ingest)
    from core.errors import PersonaError
    from features.build import write_parquet_atomic

    settings = load_settings()
    write_tricky_raw(settings)
    path = settings.raw_dir / "transactions.parquet"
    tx = pd.read_parquet(path)
    tx.loc[5, "amount"] = float("nan")
    write_parquet_atomic(tx, path)
    monkeypatch.setenv("PERSONA_ENGINE", "ray")
    monkeypatch.setenv("PERSONA_RAY_ADDRESS", ray_cluster.address)

    # when built on the cluster
    # then the partition's own one-line error comes back as it would locally
    with pytest.raises(PersonaError, match=r"^transactions.amount has 1 missing or non-numeric value\(s\)"):
        build_offline_sources(load_settings())


# --------------------------------------------------------------------------- embedding on an actor pool
def _encoder(chunk_texts: int):
    """The fast encoder (ONNX export shared with the unit tests), cutting texts into small chunks."""
    from features.embedding.encoder import FastEncoder

    encoder = FastEncoder(Path(tempfile.gettempdir()) / "persona-test-models")
    encoder.chunk_texts = chunk_texts
    return encoder


def _review_texts(n: int, seed: int = 5) -> list[str]:
    """Distinct review texts of very different lengths (the batch padding differs between chunks)."""
    import numpy as np

    words = ["parcel", "late", "crushed", "lovely", "jacket", "support", "never", "answered", "refund", "great",
             "value", "fast", "delivery", "kettle", "price", "shipping", "expensive", "quality", "broke", "returned"]
    rng = np.random.default_rng(seed)
    return [f"{' '.join(rng.choice(words, int(rng.integers(1, 60))))} #{i}" for i in range(n)]


def _text_source(settings) -> pd.DataFrame:
    from core import catalog

    return pd.read_parquet(catalog.text_source(settings)).drop(columns="created_timestamp")


def test_embed_on_two_node_ray_equals_local_bit_for_bit(ray_cluster, monkeypatch, ran_on):
    # given ingested reviews with 240 distinct texts, embedded locally in chunks of 64
    import numpy as np

    from core import catalog
    from features.build import write_parquet_atomic
    from features.text_build import embed_reviews

    settings = load_settings()
    write_tricky_raw(settings)
    reviews = pd.read_parquet(settings.raw_dir / "reviews.parquet")
    reviews = pd.concat([reviews, reviews.assign(customer_id=reviews["customer_id"][::-1].to_numpy())],
                        ignore_index=True).assign(text=_review_texts(240) + _review_texts(160))
    write_parquet_atomic(reviews, settings.raw_dir / "reviews.parquet")
    build_offline_sources(settings)
    local_report = embed_reviews(settings, encoder=_encoder(64))
    local = _text_source(settings)
    local_cache = (catalog.embedding_cache(settings), catalog.text_source(settings))
    for path in local_cache:
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    # when the same texts are embedded again (nothing cached) by the encoder actors of the two-node cluster
    monkeypatch.setenv("PERSONA_ENGINE", "ray")
    monkeypatch.setenv("PERSONA_RAY_ADDRESS", ray_cluster.address)
    on_ray = embed_reviews(load_settings(), encoder=_encoder(64))

    # then every chunk ran on an actor, on both nodes, and the text features are the local ones bit for bit
    assert local_report.new_embedded == on_ray.new_embedded == 240
    assert len(ran_on) == 4  # ceil(240 / 64) chunks
    assert len(set(ran_on)) == 2
    assert on_ray.rows_written == len(local) > 100
    pd.testing.assert_frame_equal(_text_source(load_settings()), local, check_exact=True)
    assert np.isfinite(np.stack(local["text_embedding"].to_numpy())).all()


def test_embedding_chunk_that_fails_once_is_retried_and_the_vectors_are_unchanged(ray_cluster):
    # given texts embedded locally, and the cluster armed to fail the first batch an encoder actor takes
    import numpy as np

    from engine.ray_engine import connected
    from features.embedding.pool import encode_on_engine

    texts = _review_texts(150, seed=9)
    local = _encoder(50).encode(texts)
    ray_cluster.fail_once_file.write_text("armed")

    # when the encoder actors of the cluster embed them
    with connected(ray_cluster.address) as engine:
        done: list[int] = []
        on_ray = encode_on_engine(engine, _encoder(50), texts, done.append)

    # then a batch did fail (it took the marker), was retried, and every vector equals the local one
    assert not ray_cluster.fail_once_file.exists()
    np.testing.assert_array_equal(on_ray.vectors, local.vectors)
    np.testing.assert_array_equal(on_ray.truncated, local.truncated)
    assert sum(done) == len(texts)


def test_a_batch_that_keeps_failing_is_one_line_naming_the_workers_error(ray_cluster):
    # given an encoder whose export directory cannot be created on the workers
    from core.errors import PersonaError
    from engine.ray_engine import MAX_RETRIES, connected
    from features.embedding.encoder import FastEncoder
    from features.embedding.pool import encode_on_engine

    broken = FastEncoder(Path("/proc/persona-no-such-dir"))

    # when the cluster's encoder actors try to embed with it
    with connected(ray_cluster.address) as engine, pytest.raises(PersonaError) as raised:
        encode_on_engine(engine, broken, ["the parcel came late", "lovely jacket"])

    # then, after the retries, one line names the worker's own error and what to do
    message = str(raised.value)
    assert "\n" not in message
    assert f"after {MAX_RETRIES} retries" in message
    assert "/proc/persona-no-such-dir" in message
    assert "ray logs" in message

"""Erasure pieces on small inline data.

Suppression list, ingest's ``erased`` quarantine, file rewrites, the vector cache, the online
store keys, consent and the id file.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import catalog
from core.errors import PersonaError
from core.settings import load_settings
from features.embedding.cache import VectorCache, normalize_text, text_key
from ingest import suppression
from privacy.caches import erase_vector_cache, scan_vector_cache
from privacy.consent import contactable
from privacy.files import Targets, erase_json_file, erase_table_file, scan_file
from privacy.forget import forget, read_ids

NOW = pd.Timestamp("2026-01-01", tz="UTC")


def _targets(*ids: int, texts: tuple[str, ...] = ()) -> Targets:
    return Targets(np.array(sorted(ids), np.int64), frozenset(texts))


# --------------------------------------------------------------------------- suppression
def test_salt_file_is_private_and_hashes_name_nobody(persona_home: Path) -> None:
    # given a home that never erased anyone
    settings = load_settings()
    assert suppression.salt(settings) is None

    # when two ids are suppressed
    assert suppression.add_ids(settings, [7, 8], NOW) == 2

    # then the salt file is 0600, the list holds hashes only and adding again adds nothing
    mode = stat.S_IMODE(catalog.erasure_salt(settings).stat().st_mode)
    assert mode == 0o600
    stored = pd.read_parquet(catalog.suppression_list(settings))
    assert list(stored.columns) == ["id_hash", "erased_at"]
    assert len(stored) == 2
    assert not ({"7", "8"} & set(stored["id_hash"]))
    assert suppression.add_ids(settings, [8], NOW) == 0


def test_salt_from_the_setting_is_used_instead_of_a_file(persona_home: Path) -> None:
    # given a salt in the settings
    settings = load_settings(erasure_salt="a-salt-of-sixteen-chars")

    # when ids are hashed
    suppression.add_ids(settings, [1], NOW)

    # then no salt file is written and the hash depends on the salt
    assert not catalog.erasure_salt(settings).exists()
    assert suppression.hash_ids(b"a-salt-of-sixteen-chars", [1]) != suppression.hash_ids(b"another-salt-16ch", [1])


def test_ingest_quarantines_erased_customers_blanked_and_counted(persona_home: Path, tmp_path: Path) -> None:
    from ingest.run import ingest_files

    # given customer 2 on the suppression list
    settings = load_settings()
    suppression.add_ids(settings, [2], NOW)
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("customer_id,event_timestamp,text\n1,2025-01-01,fine\n2,2025-01-02,my secret words\n"
                       " 2 ,2025-01-03,more of mine\n")

    # when the file is ingested
    (report,) = ingest_files(settings, {"reviews": reviews})

    # then customer 2's rows are quarantined as erased, counted, and hold no value of theirs
    assert (report.accepted, report.quarantined, report.reasons) == (1, 2, {"erased": 2})
    assert "erased 2" in report.summary()
    quarantined = pd.read_parquet(catalog.quarantine_table(settings, "reviews"))
    assert quarantined["reason"].tolist() == ["erased", "erased"]
    assert quarantined[["customer_id", "event_timestamp", "text"]].isna().all().all()
    assert quarantined["source_row"].tolist() == [2, 3]


# --------------------------------------------------------------------------- files
def test_table_rewrite_drops_ids_kept_as_numbers_or_text(tmp_path: Path) -> None:
    # given a typed table and a quarantine-like table of text values
    typed = tmp_path / "t.parquet"
    pd.DataFrame({"customer_id": [1, 2, 3], "x": [0.1, 0.2, 0.3]}).to_parquet(typed)
    texty = tmp_path / "q.parquet"
    pd.DataFrame({"customer_id": pd.array([" 2", "2.0", "x", None], "string")}).to_parquet(texty)

    # when customer 2 is erased from both
    first, second = erase_table_file(typed, _targets(2)), erase_table_file(texty, _targets(2))

    # then their rows are gone, the rest kept with their types, and a scan finds nothing
    assert (first.rows, first.removed, second.removed) == (3, 1, 2)
    kept = pd.read_parquet(typed)
    assert kept["customer_id"].tolist() == [1, 3]
    assert kept["customer_id"].dtype == np.int64
    assert scan_file(typed, _targets(2)).hits == scan_file(texty, _targets(2)).hits == 0
    assert not list(tmp_path.glob(".*.tmp"))


def test_partition_left_empty_is_deleted_and_csv_rewritten(tmp_path: Path) -> None:
    # given a prediction-log partition of one customer and an exported audience
    part = tmp_path / "part-1.parquet"
    pd.DataFrame({"customer_id": [5, 5]}).to_parquet(part)
    audience = tmp_path / "audience.csv"
    audience.write_text("customer_id,offer\n5,a\n6,b\n")

    # when customer 5 is erased
    erase_table_file(part, _targets(5))
    erase_table_file(audience, _targets(5))

    # then the partition is gone and the audience keeps customer 6 only
    assert not part.exists()
    assert audience.read_text().splitlines() == ["customer_id,offer", "6,b"]


def test_json_entries_of_erased_ids_are_removed_and_texts_found(tmp_path: Path) -> None:
    # given a document listing customers and quoting a review
    doc = tmp_path / "d.json"
    doc.write_text(json.dumps({"rows": [{"customer_id": 4, "v": 1}, {"customer_id": 5}],
                               "customer_ids": [4, 6], "quote": "a long enough private review"}))
    targets = _targets(4, texts=("a long enough private review",))

    # when customer 4 is erased
    removed = erase_json_file(doc, targets).removed

    # then both mentions are gone; the quoted text is still found by the scan
    assert removed == 2
    assert json.loads(doc.read_text())["customer_ids"] == [6]
    assert scan_file(doc, targets).hits == 1


def test_vector_cache_keeps_vectors_of_texts_others_still_use(tmp_path: Path) -> None:
    # given a cache holding two texts
    cache = VectorCache(tmp_path / "cache", "test|v1", 2)
    cache.add([text_key("mine", "test|v1"), text_key("shared", "test|v1")], np.ones((2, 2), np.float32))

    # when only "mine" belongs to erased customers
    counts = erase_vector_cache(tmp_path / "cache", _targets(1, texts=("mine",)))

    # then its vector is gone and the shared one stays
    assert (counts.rows, counts.removed) == (2, 1)
    fresh = VectorCache(tmp_path / "cache", "test|v1", 2)
    assert fresh.lookup([text_key("mine", "test|v1"), text_key("shared", "test|v1")]).found.tolist() == [False, True]
    assert scan_vector_cache(tmp_path / "cache", _targets(1, texts=("mine",))).hits == 0


# --------------------------------------------------------------------------- the job
def test_forget_on_raw_tables_only_reports_every_store_clean(persona_home: Path, tmp_path: Path) -> None:
    from ingest.run import ingest_files

    # given two customers who share one review text
    settings = load_settings()
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("customer_id,event_timestamp,text\n1,2025-01-01,great  shop\n2,2025-01-02,great shop\n"
                       "1,2025-01-03,only customer one wrote this\n")
    ingest_files(settings, {"reviews": reviews})

    # when customer 1 is forgotten
    report = forget(settings, [1], now=NOW)

    # then their rows are gone, the shared text is kept, nothing is found and the report is on disk
    assert report.clean
    assert (report.erased_texts, report.shared_texts_kept) == (1, 1)
    raw = {s.store: s for s in report.stores}["raw"]
    assert (raw.rows_before, raw.removed, raw.hits_after) == (3, 2, 0)
    assert pd.read_parquet(catalog.raw_table(settings, "reviews"))["customer_id"].tolist() == [2]
    assert "scan: clean" in report.summary()
    assert report.path is not None
    assert json.loads(Path(report.path).read_text())["clean"] is True
    assert normalize_text("great  shop") == "great shop"


def test_forget_needs_an_id(persona_home: Path) -> None:
    with pytest.raises(PersonaError, match="no customer id"):
        forget(load_settings(), [])


def test_read_ids_takes_a_customer_id_column_and_refuses_junk(tmp_path: Path) -> None:
    good = tmp_path / "ids.csv"
    good.write_text("name,customer_id\na,3\nb, 1\nc,3\n")
    assert read_ids(good) == [1, 3]
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id\n1\nabc\n")
    with pytest.raises(PersonaError, match="row 2"):
        read_ids(bad)


# --------------------------------------------------------------------------- consent
def test_contactable_needs_recorded_consent(persona_home: Path, tmp_path: Path) -> None:
    from ingest.run import ingest_files

    # given customers with consent yes, no, empty, and one without a row
    settings = load_settings()
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,signup_date,consent\n1,2024-01-01,yes\n2,2024-01-01,false\n"
                         "3,2024-01-01,\n4,2024-01-01,TRUE\n")
    ingest_files(settings, {"customers": customers})

    # when asked who may be contacted
    mask = contactable(settings, [4, 1, 2, 3, 99])

    # then only recorded consent counts, in the order asked
    assert mask.tolist() == [True, True, False, False, False]


def test_no_consent_column_means_nobody_is_contactable(persona_home: Path, tmp_path: Path) -> None:
    from ingest.run import ingest_files

    settings = load_settings()
    assert contactable(settings, [1]).tolist() == [False]
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,signup_date\n1,2024-01-01\n")
    ingest_files(settings, {"customers": customers})
    assert contactable(settings, [1]).tolist() == [False]


# --------------------------------------------------------------------------- online store keys
def test_redis_keys_are_feasts_own(persona_home: Path) -> None:
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from privacy.online import _redis_keys

    settings = load_settings(project="forgetkeys")
    expected = [_redis_key("forgetkeys", EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=i)]),
                           entity_key_serialization_version=3) for i in (3, 2**40)]
    assert _redis_keys(settings, _targets(3, 2**40)) == expected


@pytest.mark.prod
def test_redis_hashes_of_erased_customers_are_deleted(persona_home: Path) -> None:
    import redis

    from privacy.online import _redis_keys, erase_online, scan_online

    # given two customers' hashes under a test project
    settings = load_settings(profile="prod", project="forgettest")
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    mine, other = _redis_keys(settings, _targets(11, 12))
    client.hset(mine, "_ts:v", b"1")
    client.hset(other, "_ts:v", b"1")
    try:
        # when customer 11 is erased
        counts = erase_online(settings, _targets(11))

        # then only their hash is gone
        assert counts.removed == 1
        assert scan_online(settings, _targets(11)).hits == 0
        assert client.exists(other) == 1
    finally:
        client.delete(mine, other)


@pytest.mark.prod
def test_postgres_offline_rows_of_erased_customers_are_deleted(persona_home: Path) -> None:
    import psycopg

    from privacy.online import erase_offline_postgres, scan_offline_postgres

    # given a scratch database with one offline source holding customers 1 and 2
    settings = load_settings(profile="prod", postgres_db="persona_forget_test")
    admin = f"postgresql://{settings.postgres_user}@{settings.postgres_host}:{settings.postgres_port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "persona_forget_test" WITH (FORCE)')
        conn.execute('CREATE DATABASE "persona_forget_test"')
    try:
        with psycopg.connect(admin.rsplit("/", 1)[0] + "/persona_forget_test") as conn:
            conn.execute(f'CREATE TABLE "{catalog.PROFILE_SOURCE}" (customer_id bigint, x float)')
            conn.execute(f'INSERT INTO "{catalog.PROFILE_SOURCE}" VALUES (1, 0.5), (2, 0.5), (1, 0.7)')

        # when customer 1 is erased
        counts = erase_offline_postgres(settings, _targets(1))

        # then both their rows are gone and customer 2 is kept
        assert (counts.rows, counts.removed) == (3, 2)
        assert scan_offline_postgres(settings, _targets(1)).hits == 0
        assert scan_offline_postgres(settings, _targets(2)).hits == 1
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "persona_forget_test" WITH (FORCE)')


def test_similarity_index_files_with_an_erased_id_are_dropped(tmp_path: Path) -> None:
    from privacy.caches import erase_similarity, scan_similarity

    # given a cached index of customers 1 and 2
    np.save(tmp_path / "index-1.ids.npy", np.array([1, 2], np.int64))
    np.save(tmp_path / "index-1.vectors.npy", np.ones((2, 2), np.float32))

    # when customer 2 is erased
    counts = erase_similarity(tmp_path, _targets(2))

    # then the cache is gone (rebuilt on the next query) and nothing is found
    assert (counts.rows, counts.removed) == (2, 1)
    assert not list(tmp_path.glob("index-*"))
    assert scan_similarity(tmp_path, _targets(2)).hits == 0


def test_scan_finds_a_quoted_text_json_escapes(tmp_path: Path) -> None:
    doc = tmp_path / "d.json"
    doc.write_text(json.dumps({"quote": "café was \"terrible\" today"}))
    assert scan_file(doc, _targets(1, texts=('café was "terrible" today',))).hits == 1


def test_a_copy_outside_the_stores_fails_the_scan_and_the_command(persona_home: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from app.cli import app
    from ingest.run import ingest_files

    # given a customer ingested from a file the user keeps under the home
    settings = load_settings()
    kept = persona_home / "generated" / "customers.csv"
    kept.parent.mkdir(parents=True)
    kept.write_text("customer_id,signup_date\n1,2024-01-01\n2,2024-01-01\n")
    ingest_files(settings, {"customers": kept})

    # when customer 1 is forgotten
    result = CliRunner().invoke(app, ["forget", "--customer-id", "1"])

    # then the stores are clean but the copy is found: the command says so and exits 1
    assert result.exit_code == 1
    assert "FOUND elsewhere_in_home 1" in result.output
    assert kept.read_text().count("\n1,") == 1  # the user's own file is not rewritten

"""Prod profile: a corrected row appended to a Postgres source reaches Redis on the next materialize."""

from __future__ import annotations

import pytest

from core.settings import load_settings
from features.build import build_offline_sources
from store.repo import apply_repo, check_consistency, get_store, materialize
from tests.conftest import write_raw

pytestmark = [pytest.mark.integration, pytest.mark.prod]




def test_prod_a_corrected_row_in_postgres_reaches_redis(prod_settings):
    import psycopg

    from store.offline import postgres_url

    # given a materialized prod store
    write_raw(prod_settings)
    build_offline_sources(prod_settings)
    apply_repo(prod_settings)
    materialize(prod_settings)

    # when a corrected row (same customer and event time, newer created_timestamp) is inserted
    with psycopg.connect(postgres_url(prod_settings), autocommit=True) as conn:
        customer, _ = conn.execute(
            "SELECT customer_id, event_timestamp FROM customer_behavior "
            "ORDER BY event_timestamp DESC, customer_id LIMIT 1"
        ).fetchone()
        conn.execute(
            "CREATE TEMP TABLE fix AS SELECT * FROM customer_behavior WHERE customer_id = %s "
            "ORDER BY event_timestamp DESC LIMIT 1", (customer,))
        conn.execute("UPDATE fix SET orders_30d = orders_30d + 1000, created_timestamp = created_timestamp + "
                     "interval '1 hour'")
        conn.execute("INSERT INTO customer_behavior SELECT * FROM fix")
        expected = conn.execute("SELECT orders_30d FROM fix").fetchone()[0]
    lines = materialize(load_settings())

    # then Redis serves the corrected value and the check agrees
    online = get_store(prod_settings).get_online_features(
        features=["customer_behavior:orders_30d"], entity_rows=[{"customer_id": int(customer)}]).to_dict()
    assert online["orders_30d"][0] == pytest.approx(float(expected))
    assert any("source changed" in line for line in lines)
    assert check_consistency(prod_settings, sample=30).ok

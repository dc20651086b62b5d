"""Property-based run (schemathesis) against the service's own OpenAPI document: no 5xx, ever."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.conftest import SERVING_ENV

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def schema(champion_home: Path) -> Iterator[object]:
    """The OpenAPI schema loaded from the running ASGI app (lifespan started once).

    Similarity search gets an index of every customer (random vectors), so ``/similar`` is
    available as in a home where ``persona embed`` ran.
    """
    import numpy as np
    import schemathesis
    from schemathesis.python import asgi

    from features.embedding import similarity
    from serving.service import PersonaService

    index = similarity.SimilarityIndex.from_arrays(
        np.arange(1, 301), np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    )
    with pytest.MonkeyPatch.context() as patch:
        for name in SERVING_ENV:
            patch.delenv(name, raising=False)
        patch.setattr(similarity, "load_index", lambda settings: index)
        patch.setenv("PERSONA_HOME", str(champion_home))
        patch.setenv("PERSONA_MODEL_POLL_SECONDS", "3600")
        app = PersonaService.to_asgi()
        loaded = schemathesis.openapi.from_asgi("/docs.json", app)
        try:
            yield loaded
        finally:
            asgi.shutdown_lifespans()


def test_no_input_makes_the_service_fail(schema) -> None:
    # given every operation of the OpenAPI document, with valid and invalid generated inputs
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode

    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/predict_features", "/similar", "/model_info"}
    answered: dict[int, int] = {}

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                # when the generated request is sent
                response = case.call()
                answered[response.status_code] = answered.get(response.status_code, 0) + 1

                # then the answer is never a server error, and never carries NaN
                assert "NaN" not in response.text
                case.validate_response(response, checks=[not_a_server_error])

            try:
                run()
            except Unsatisfiable:  # nothing invalid can be built (e.g. an operation without a body)
                continue

    # then (reaching here) no operation ever answered 5xx, and both successes and rejections were seen
    assert not any(status >= 500 for status in answered)
    assert answered.get(200)
    assert any(400 <= status < 500 for status in answered)

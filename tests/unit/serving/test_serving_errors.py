"""The service's own error paths, through its real ASGI app with a stand-in runtime (no model).

An unexpected exception is a server bug: it must answer 500 (never a 4xx that a "no 5xx" fuzz
test would read as the client's fault), carry a request id and leave a log line with that id.
Every route the app exposes needs the API key unless it is on an explicit public list, so a
route added later is covered without touching this file.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

if TYPE_CHECKING:
    from collections.abc import Iterator

# The only paths served without a key: health probes, the OpenAPI document and UI. Written out
# here on purpose (not read from serving.auth), so making an API public fails this test.
PUBLIC = frozenset({"/livez", "/readyz", "/healthz", "/", "/docs.json", "/schema.json", "/static_content"})
KEY = "s3cret-test-key"


class _BrokenRuntime:
    """A runtime that is ready but whose every answer raises an unexpected error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def start(self) -> _BrokenRuntime:
        return self

    def stop(self) -> None:
        pass

    def readiness(self) -> tuple[bool, str]:
        return True, "stand-in runtime"

    def _boom(self, *args: Any) -> Any:
        raise RuntimeError("planted bug")

    predict_customers = predict_features = similar = info = _boom


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The service's ASGI app with the key configured and a runtime that always raises."""
    from serving import runtime
    from serving.service import PersonaService

    monkeypatch.setenv("PERSONA_API_KEY", KEY)
    monkeypatch.setattr(runtime, "ServingRuntime", _BrokenRuntime)
    with TestClient(PersonaService.to_asgi(), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Records of the ``persona.serving`` logger, whatever BentoML did to propagation."""
    logger = logging.getLogger("persona.serving")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="persona.serving")
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.mark.parametrize(
    ("path", "body"),
    [("/predict", {"customer_ids": [1]}), ("/predict_features", {"rows": [{"customer_id": 1, "features": {}}]}),
     ("/similar", {"customer_id": 1, "k": 2})],
)
def test_an_unexpected_exception_is_a_500_with_a_request_id_that_the_log_names(
    client: TestClient, server_log: pytest.LogCaptureFixture, path: str, body: dict
) -> None:
    # given a runtime that raises an unexpected error
    # when an API is called with the key
    response = client.post(path, json=body, headers={"X-API-Key": KEY})

    # then 500, a request id in the body and header, and an error log line with that id and the traceback
    assert response.status_code == 500, response.text
    payload = response.json()
    request_id = payload["request_id"]
    assert request_id
    assert request_id in payload["error"]
    assert response.headers["X-Request-ID"] == request_id
    errors = [r for r in server_log.records if r.levelno >= logging.ERROR and request_id in r.getMessage()]
    assert errors, [r.getMessage() for r in server_log.records]
    assert errors[0].exc_info
    assert "planted bug" in str(errors[0].exc_info[1])
    assert "planted bug" not in response.text  # the internals stay in the log


def _routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves; a mount is probed below its prefix."""
    found = []
    for route in app.routes:
        if isinstance(route, Mount):
            found.append(("GET", route.path))
        elif isinstance(route, Route):
            found.extend((method, route.path) for method in sorted(route.methods or {"GET"}) if method != "HEAD")
    return found


def test_every_route_but_the_public_ones_needs_the_key(client: TestClient) -> None:
    # given every route the service's app exposes
    from serving.service import API_PATHS

    routes = _routes(client.app)
    assert set(API_PATHS) <= {path for _, path in routes}  # the enumeration sees the APIs

    # when each is called without a key
    answers = {(method, path): client.request(method, path + ("/x" if path == "/static_content" else ""),
                                               json={} if method == "POST" else None).status_code
               for method, path in routes}

    # then every non-public route answers 401, and only the public list is open
    protected = {route: status for route, status in answers.items() if route[1] not in PUBLIC}
    assert protected, "no protected route found"
    assert all(status == 401 for status in protected.values()), protected
    assert all(status != 401 for route, status in answers.items() if route[1] in PUBLIC), answers

"""An unreachable Ray cluster is one line naming the address and what to do, not a traceback or a hang."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.ray_cluster import free_port

PERSONA = Path(sys.executable).with_name("persona")


def test_features_build_against_an_unreachable_cluster_exits_1_with_one_line(persona_home: Path) -> None:
    # given the Ray engine pointed at a port nobody listens on
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PERSONA_ENGINE": "ray", "PERSONA_RAY_ADDRESS": address}

    # when features are built
    started = time.monotonic()
    done = subprocess.run([str(PERSONA), "features", "build"], env=env, capture_output=True, text=True, timeout=60)

    # then one line names the address and the fix, fast
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 1
    assert len(lines) == 1, lines
    assert address in lines[0]
    assert "ray start --head" in lines[0]
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 30


def test_an_engine_opened_on_first_use_connects_only_when_it_maps(persona_home: Path, monkeypatch) -> None:
    # given the Ray engine pointed at a port nobody listens on
    import pytest

    from core.errors import PersonaError
    from core.settings import load_settings
    from engine.runner import open_engine_on_first_use

    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("PERSONA_ENGINE", "ray")
    monkeypatch.setenv("PERSONA_RAY_ADDRESS", address)

    # when the engine is opened on first use
    with open_engine_on_first_use(load_settings()) as engine:
        # then nothing connects while nothing is mapped (its name is known)
        assert engine.name == "ray"
        # and the first map fails as opening it would, naming the address
        with pytest.raises(PersonaError, match=f"cannot reach the Ray cluster at {address}"):
            engine.map(len, [("abc",)])


def test_an_unreachable_address_is_refused_before_ray_is_imported() -> None:
    # given a fresh process and an address nobody listens on
    address = f"127.0.0.1:{free_port()}"
    script = (
        "import sys\n"
        "from core.errors import PersonaError\n"
        "from engine.ray_engine import connected\n"
        "try:\n"
        f"    with connected({address!r}):\n"
        "        pass\n"
        "except PersonaError as exc:\n"
        "    print('refused:', exc)\n"
        "print('ray imported:', 'ray' in sys.modules)\n"
    )

    # when the engine connects
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[3])

    # then it is refused naming the address, and Ray (which reads its auth settings once, at import)
    # was never imported by the failed attempt
    assert f"refused: cannot reach the Ray cluster at {address}" in done.stdout, done.stderr
    assert "ray imported: False" in done.stdout

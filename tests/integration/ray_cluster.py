"""A real two-node Ray cluster on this machine for the Ray engine tests (``ray start`` twice).

Each node is its own ``ray start`` in a new process group, with its own temp dir under one
short folder in /tmp and one CPU; the head listens at a free port. Token authentication is on,
with a token of this run (:data:`RAY_AUTH`). At the end both process groups are ended by their
id (never ``ray stop``, which ends every Ray on the machine) and the fixture fails if any process
of the cluster is left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

RAY = Path(sys.executable).with_name("ray")
RAY_AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
"""Token authentication with a token of this run only: Ray's default token file (``~/.ray/auth_token``,
shared by everything on the machine) is neither read nor written. Drivers in the test process set
the same variables."""
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class RayCluster:
    address: str
    client_address: str
    fail_once_file: Path
    seconds_to_start: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen([str(RAY), "start", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    code = proc.wait(timeout=START_TIMEOUT_S)
    if code != 0:
        raise RuntimeError(f"`ray start {' '.join(args)}` exited {code}:\n{log.read_text()[-3000:]}")
    return proc


def _group_members(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat="], capture_output=True, text=True, check=True).stdout
    return [int(pid) for pid, group, stat in (line.split() for line in out.splitlines())
            if int(group) == pgid and not stat.startswith("Z")]


def _processes_naming(root: Path) -> list[int]:
    """Live processes whose command line names ``root`` (a Ray process that left its group)."""
    out = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    rows = (line.split(None, 2) for line in out.splitlines())
    return [int(row[0]) for row in rows if len(row) == 3 and str(root) in row[2] and not row[1].startswith("Z")]


def _end_group(pgid: int) -> list[int]:
    """SIGTERM the group, then SIGKILL what is left; the ids still alive after that."""
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _group_members(pgid):
            return []
    return _group_members(pgid)


def _wait_for_nodes(address: str, env: dict[str, str], nodes: int) -> None:
    probe = (
        "import sys, time, ray\n"
        f"ray.init(address={address!r}, log_to_driver=False)\n"
        f"deadline = time.monotonic() + {START_TIMEOUT_S}\n"
        f"while sum(n['Alive'] for n in ray.nodes()) < {nodes}:\n"
        "    if time.monotonic() > deadline: sys.exit(f'nodes alive: {ray.nodes()}')\n"
        "    time.sleep(0.5)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          timeout=START_TIMEOUT_S + 60)
    if done.returncode != 0:
        raise RuntimeError(f"the Ray cluster at {address} did not reach {nodes} alive nodes: {done.stderr[-2000:]}")


@contextlib.contextmanager
def two_node_cluster(root: Path) -> Iterator[RayCluster]:
    started = time.perf_counter()
    fail_once = root / "fail_once"
    env = {**os.environ, **RAY_AUTH, "RAY_USAGE_STATS_ENABLED": "0", "PERSONATEST_FAIL_ONCE_FILE": str(fail_once)}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    groups: list[int] = []
    try:
        client_port = free_port()
        head = _start(["--head", "--port", str(port), "--include-dashboard=false",
                       "--dashboard-port", str(free_port()), "--ray-client-server-port", str(client_port),
                       "--temp-dir", str(root / "head"), *common], env, root / "head.log")
        groups.append(head.pid)
        worker = _start(["--address", address, "--temp-dir", str(root / "worker"), *common],
                        env, root / "worker.log")
        groups.append(worker.pid)
        _wait_for_nodes(address, env, 2)
        yield RayCluster(address, f"ray://127.0.0.1:{client_port}", fail_once, time.perf_counter() - started)
    finally:
        left = [pid for pgid in groups for pid in _end_group(pgid)] + _processes_naming(root)
        if left:
            raise RuntimeError(f"Ray processes left after the cluster was ended: {left}")

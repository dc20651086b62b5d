"""The champion watcher: swaps on a moved alias, keeps the last good model when a load fails."""

from __future__ import annotations

import time

from serving.model_watch import ChampionWatcher


class Registry:
    """A fake alias and loader: versions in ``broken`` fail to load."""

    def __init__(self) -> None:
        self.champion: str | None = "1"
        self.broken: set[str] = set()
        self.loads: list[str] = []
        self.installed: list[str] = []

    def load(self, version: str) -> str:
        self.loads.append(version)
        if version in self.broken:
            raise ValueError(f"artifacts of v{version} are missing")
        return f"model-{version}"

    def install(self, model: str, version: str) -> None:
        self.installed.append(model)


def _watcher(registry: Registry, retry_seconds: float = 300.0) -> ChampionWatcher:
    return ChampionWatcher(
        lambda: registry.champion,
        registry.load,
        registry.install,
        interval_seconds=0.01,
        retry_seconds=retry_seconds,
    )


def test_a_moved_alias_swaps_the_model_once() -> None:
    # given a watcher serving v1
    registry = Registry()
    watcher = _watcher(registry)
    assert watcher.check_once() == "swapped to v1"

    # when the alias moves to v2 and is checked twice
    registry.champion = "2"
    outcomes = [watcher.check_once(), watcher.check_once()]

    # then v2 is installed once
    assert outcomes == ["swapped to v2", "unchanged"]
    assert registry.installed == ["model-1", "model-2"]
    assert watcher.status.served_version == "2"
    assert watcher.status.swaps == 2


def test_a_version_that_fails_to_load_keeps_the_last_good_one_and_says_why() -> None:
    # given a watcher serving v1 and a broken v2
    registry = Registry()
    watcher = _watcher(registry)
    watcher.check_once()
    registry.champion, registry.broken = "2", {"2"}

    # when the alias moves to v2 and is checked again
    outcome = watcher.check_once()
    again = watcher.check_once()

    # then v1 keeps serving, the reason is recorded, and v2 is not reloaded on every poll
    assert outcome.startswith("failed")
    assert registry.installed == ["model-1"]
    assert watcher.status.served_version == "1"
    assert "v2 failed to load" in watcher.status.last_error
    assert "missing" in watcher.status.last_error
    assert "still serving v1" in watcher.status.last_error
    assert again == "unchanged (last load failed)"
    assert registry.loads == ["1", "2"]


def test_a_failed_version_is_retried_after_the_wait_and_a_new_one_at_once() -> None:
    # given v2 failed once
    registry = Registry()
    watcher = _watcher(registry, retry_seconds=0.05)
    watcher.check_once()
    registry.champion, registry.broken = "2", {"2"}
    watcher.check_once()

    # when it is fixed and the retry wait has passed
    registry.broken = set()
    time.sleep(0.06)
    outcome = watcher.check_once()

    # then it is loaded and the error cleared
    assert outcome == "swapped to v2"
    assert watcher.status.last_error is None


def test_no_champion_and_an_unreachable_registry_are_reported() -> None:
    # given no champion yet
    registry = Registry()
    registry.champion = None
    watcher = _watcher(registry)

    # when checked
    first = watcher.check_once()

    # then nothing is served and the reason says what to do
    assert first == "no champion"
    assert "persona train" in watcher.status.last_error

    # and when the registry itself fails, the error names it
    def down() -> str:
        raise ConnectionError("registry down")

    watcher.resolve = down
    assert watcher.check_once().startswith("failed")
    assert "registry down" in watcher.status.last_error


def test_the_background_thread_notices_a_move() -> None:
    # given a started watcher serving v1
    registry = Registry()
    watcher = _watcher(registry)
    watcher.check_once()
    watcher.start()
    try:
        # when the alias moves
        registry.champion = "3"
        deadline = time.monotonic() + 5
        while watcher.status.served_version != "3" and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        watcher.stop()

    # then the thread swapped it in
    assert watcher.status.served_version == "3"

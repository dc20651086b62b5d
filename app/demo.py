"""``persona demo``: the whole loop on the embedded profile, from an empty home.

generate (with past randomized campaign waves) -> ingest -> build -> embed -> apply -> materialize
-> train (gate -> champion) -> train uplift -> serve in the background -> requests (with the next
best action) -> plan a campaign with a control group -> shifted period arrives (the customers
answer the campaign) -> ingest/build/embed/materialize -> requests -> evaluate the campaign ->
retrain uplift on its outcomes -> monitor uplift -> monitor (drift -> policy: labels do not cover
the shift yet, churn and value wait) -> time passes until they do -> monitor (drift -> retrain on
the shifted period -> gate) -> serving switches champion -> stop the server -> summary (the
campaign against a churn-score targeting of the same budget, :mod:`app.demo_campaign`). Each step
calls the same functions as the CLI commands.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from app.demo_home import claim_home, free_port, materialize_summary, new_home
from app.demo_phases import hold_back_later, write_phases
from core import catalog
from core.errors import PersonaError
from core.settings import PROJECT_ROOT, Settings, load_settings

if TYPE_CHECKING:
    from pathlib import Path

    from monitoring.job import MonitorResult



@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo (defaults run in a few minutes on 2 cores)."""

    customers: int = 3_000
    days: int = 300
    shift_days: int = 60
    seed: int = 7
    requests: int = 200
    port: int = 0  # 0: pick a free port
    campaign_waves: int = 5
    campaign_budget: float = 300.0
    control_share: float = 0.2


@dataclass
class DemoLog:
    """Steps and their durations, for the summary."""

    steps: list[tuple[str, float, str]] = field(default_factory=list)
    console: Console = field(default_factory=lambda: Console(stderr=False))

    def step(self, name: str, started: float, detail: str = "") -> None:
        """Record a finished step and print its line."""
        seconds = time.perf_counter() - started
        self.steps.append((name, seconds, detail))
        self.console.print(f"[bold green]✓[/] {name:<34} {seconds:6.1f} s  {detail}", highlight=False)


def _refresh_features(settings: Settings, log: DemoLog, label: str) -> None:
    from app.console import progress
    from features.build import build_offline_sources
    from features.text_build import embed_reviews
    from store.repo import apply_repo, materialize

    started = time.perf_counter()
    with progress(f"{label}: build features", unit="rows") as on_progress:
        built = build_offline_sources(settings, on_progress=on_progress)
    log.step(f"{label}: build features", started, f"{built['customer_behavior'][1]:,} behavior snapshots")
    started = time.perf_counter()
    with progress(f"{label}: embed reviews", unit="texts") as on_progress:
        report = embed_reviews(settings, on_progress=on_progress)
    log.step(f"{label}: embed reviews", started, report.summary())
    started = time.perf_counter()
    apply_repo(settings)
    with progress("materialize", unit="rows") as on_progress:
        lines = materialize(settings, on_progress=on_progress)
    log.step(f"{label}: apply + materialize", started, materialize_summary(lines))


def _train(settings: Settings, log: DemoLog, label: str):
    from app.console import progress
    from training.config import TrainConfig
    from training.train import TrainJob

    started = time.perf_counter()
    with progress(label, unit="steps") as on_progress:  # oracle metrics come from the generator's truth
        result = TrainJob(settings, TrainConfig(ground_truth_path=catalog.ground_truth(settings)),
                          on_progress=on_progress).run()
    log.step(label, started, f"v{result.version} -> {result.decision.alias} ({result.decision.reason})")
    return result


def _start_server(settings: Settings, port: int, log: DemoLog) -> subprocess.Popen:
    import httpx

    started = time.perf_counter()
    env = {**os.environ, "PERSONA_HOME": str(settings.home)}
    logfile = open(settings.home / "serve.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--poll-seconds", "2"],
        env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True, cwd=PROJECT_ROOT,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PersonaError(f"the server exited with code {process.returncode}; see {settings.home / 'serve.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                log.step("serve the champion (BentoML)", started, f"http://127.0.0.1:{port}")
                return process
        except httpx.HTTPError:
            pass
        time.sleep(1)
    _stop_server(process)
    raise PersonaError(f"the server did not become ready within 240 s; see {settings.home / 'serve.log'}")


def _stop_server(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Sent(TypedDict):
    """What demo requests got back: count per status, model versions, bad-input statuses, next best offers."""

    statuses: dict[int, int]
    versions: list[str]
    bad: list[int]
    offers: dict[str, int]


def _send_requests(port: int, customer_ids: np.ndarray, count: int, seed: int) -> Sent:
    """Single and batch predictions plus a few bad requests; returns what came back."""
    import httpx

    rng = np.random.default_rng(seed)
    url = f"http://127.0.0.1:{port}"
    statuses: dict[int, int] = {}
    versions: set[str] = set()
    offers: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(count):
            size = 1 if i % 10 else 50
            ids = [int(x) for x in rng.choice(customer_ids, size=size, replace=False)]
            response = client.post("/predict", json={"customer_ids": ids})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                predictions = response.json().get("predictions", [])
                versions.update(str(p.get("model_version")) for p in predictions)
                for p in predictions:
                    if p.get("next_best_action"):
                        offer = str(p["next_best_action"]["offer"] or "none pays")
                        offers[offer] = offers.get(offer, 0) + 1
        bad = [client.post("/predict", json={"customer_ids": []}),
               client.post("/predict", json={"customer_ids": ["x"]}),
               client.post("/predict", json={"customer_id": 1})]
    return {"statuses": statuses, "versions": sorted(versions), "bad": [r.status_code for r in bad], "offers": offers}


def _current_version(port: int, customer_id: int) -> str | None:
    import httpx

    try:
        response = httpx.post(f"http://127.0.0.1:{port}/predict", json={"customer_ids": [customer_id]}, timeout=5)
        return str(response.json()["predictions"][0]["model_version"]) if response.status_code == 200 else None
    except (httpx.HTTPError, KeyError, IndexError, ValueError):
        return None


def run_demo(config: DemoConfig, home: Path | None = None) -> Path:
    """Run the loop in a fresh home and print a summary.

    Each run gets a new home (``PERSONA_HOME/demo/run-<time>``, or ``home`` if it is new or
    empty); nothing that existed before the run is deleted or overwritten.

    Returns:
        The demo's home directory.
    """
    home = claim_home(home.resolve()) if home is not None else new_home(catalog.demo_runs(load_settings()))
    os.environ["PERSONA_HOME"] = str(home)
    settings = load_settings()
    log = DemoLog()
    log.console.rule(f"Persona demo in {home}")
    import mlflow.pyfunc  # noqa: F401 - importing it re-enables MLflow's prints: do it before quiet_output

    from app.quiet import quiet_output
    from store.repo import load_feast

    load_feast()  # Feast resets warning filters when imported: import it before quiet_output applies its own
    with quiet_output(settings):
        _run_loop(config, settings, log)
    log.console.print(f"library warnings and logs: {catalog.log_file(settings)}", highlight=False)
    return home


def _run_loop(config: DemoConfig, settings: Settings, log: DemoLog) -> None:
    home = settings.home

    from app.console import progress
    from ingest.run import ingest_files
    from synthetic.generator import GenerateConfig, generate_dataset

    started = time.perf_counter()
    start = pd.Timestamp("2025-01-01", tz="UTC")
    # the later days follow the shifted period, so matured labels come to cover the shift
    generate = GenerateConfig(customers=config.customers, days=config.days, seed=config.seed,
                              start=start.to_pydatetime(), shift_days=config.shift_days + _later_days(config, settings),
                              campaign_waves=config.campaign_waves)
    with progress("generate", unit="steps") as on_progress:
        generated = generate_dataset(generate, home / "generated", on_progress=on_progress)
    cut = start + pd.Timedelta(days=config.days)
    history, shifted = write_phases(generated, home / "generated", cut)
    later = hold_back_later(shifted, home / "generated" / "later", cut + pd.Timedelta(days=config.shift_days))
    # The generator's ground truth lets training report the oracle AUC next to the model's.
    catalog.ground_truth(settings).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(generated["ground_truth"], catalog.ground_truth(settings))
    log.step("generate customers", started, f"{config.customers:,} customers, {config.days} days + "
             f"{config.shift_days} shifted days + {_later_days(config, settings)} later days, "
             f"{config.campaign_waves} campaign waves")

    started = time.perf_counter()
    with progress("ingest history", unit="steps") as on_progress:
        reports = ingest_files(settings, history, on_progress=on_progress)
    log.step("ingest history", started, ", ".join(f"{r.table} {r.accepted:,}" for r in reports))
    _refresh_features(settings, log, "history")
    first = _train(settings, log, "train + gate (first champion)")
    from app import demo_campaign

    truth = generated.get("campaign_truth")
    if truth is not None and not demo_campaign.train_uplift(settings, log, "train uplift + gate (past waves)", truth):
        # the gate kept the uplift model a challenger: no campaign is planned with a model that lost
        log.console.print("no campaign this run: the uplift model did not beat its baselines", highlight=False)
        truth = None

    port = config.port or free_port()
    server = _start_server(settings, port, log)
    try:
        customer_ids = pd.read_parquet(catalog.raw_table(settings, "customers"), columns=["customer_id"])[
            "customer_id"].to_numpy()
        started = time.perf_counter()
        sent = _send_requests(port, customer_ids, config.requests, config.seed)
        log.step("requests before the shift", started, f"statuses {sent['statuses']}, bad input -> {sent['bad']}, "
                 f"model v{','.join(sent['versions'])}, next best offers {sent['offers']}")
        planned = None
        if truth is not None:
            planned = demo_campaign.plan(settings, log, cut, config.campaign_budget, config.control_share,
                                         home / "campaign" / "audience")
            demo_campaign.answer(generate, generated["transactions"], shifted["transactions"], planned, cut,
                                 config.seed)

        started = time.perf_counter()
        with progress("ingest shifted period", unit="steps") as on_progress:
            reports = ingest_files(settings, shifted, on_progress=on_progress)
        log.step("shifted period arrives (ingest)", started, ", ".join(f"{r.table} +{r.new_rows:,}" for r in reports))
        _refresh_features(settings, log, "shifted")
        started = time.perf_counter()
        sent = _send_requests(port, customer_ids, config.requests, config.seed + 1)
        log.step("requests after the shift", started, f"statuses {sent['statuses']}")
        campaign = None
        if planned is not None:
            campaign = demo_campaign.measure(settings, log, generate, generated["transactions"], planned, cut,
                                             config.campaign_budget)

        from app.console import progress
        from monitoring.job import MonitorConfig, MonitorJob

        started = time.perf_counter()
        job = MonitorJob(settings, MonitorConfig(drift_since=cut.to_pydatetime()))  # the price rise's date
        with progress("monitor", unit="steps") as on_progress:
            seen = job.observe(on_progress)
        with progress("retrain and record", unit="steps") as on_progress:  # a retrain reports its steps
            outcome = job.conclude(seen, on_progress)
        log.step("monitor: drift -> policy -> retrain", started, outcome.summary())
        _until_labels_cover_the_shift(settings, log, later, cut, outcome)

        started = time.perf_counter()
        champion_now = _champion_version(settings)
        served = _current_version(port, int(customer_ids[0]))
        deadline = time.monotonic() + 60
        while champion_now is not None and served != champion_now and time.monotonic() < deadline:
            time.sleep(1)
            served = _current_version(port, int(customer_ids[0]))
        switched = served == champion_now and champion_now != first.version
        log.step("serving follows the champion", started,
                 f"champion v{champion_now}, serving v{served}" + (" (switched)" if switched else ""))
    finally:
        started = time.perf_counter()
        _stop_server(server)
        log.step("stop the server", started)

    _summary(settings, log)
    if campaign is not None:
        demo_campaign.summary(log, *campaign)


def _later_days(config: DemoConfig, settings: Settings) -> int:
    """Days generated after the shifted period so matured labels cover it: two horizons and two cadences.

    A retrain that learns the shift needs a post-shift training snapshot whose label window has
    closed before a purged post-shift holdout snapshot, whose own labels have matured.
    """
    return max(0, 2 * (settings.horizon_days + settings.snapshot_every_days) - config.shift_days)


def _until_labels_cover_the_shift(settings: Settings, log: DemoLog, later: dict[str, Path], shift_start: pd.Timestamp,
                                  first: MonitorResult) -> None:
    """Let time pass until matured labels cover the shift, monitor again, and print the retrain's windows.

    The first monitor run after the shift finds drift but cannot retrain churn and value on it (no
    post-shift label has matured); it prints the date they wait for. The data up to that date arrive
    here, and the next run retrains and gates on the freshest matured window, which holds the shift.
    """
    from app.console import progress
    from ingest.run import ingest_files
    from monitoring.job import MonitorConfig, MonitorJob

    result = first
    if first.retrain is None or first.retrain.status == "waiting_for_labels":
        started = time.perf_counter()
        with progress("later period arrives", unit="steps") as on_progress:
            reports = ingest_files(settings, later, on_progress=on_progress)
        log.step("time passes: labels mature (ingest)", started,
                 ", ".join(f"{r.table} +{r.new_rows:,}" for r in reports))
        _refresh_features(settings, log, "later")
        started = time.perf_counter()
        job = MonitorJob(settings, MonitorConfig(drift_since=shift_start.to_pydatetime()))
        with progress("monitor", unit="steps") as on_progress:
            seen = job.observe(on_progress)
        with progress("retrain and record", unit="steps") as on_progress:
            result = job.conclude(seen, on_progress)
        log.step("monitor again: retrain on the shift", started, result.summary())
    outcome = result.retrain
    if outcome is not None and outcome.status == "trained":
        log.console.print(f"  final retrain v{outcome.version}: training snapshots {outcome.train_window}, holdout "
                          f"{outcome.holdout_window} (shift began {shift_start:%Y-%m-%d})", highlight=False)


def _champion_version(settings: Settings) -> str | None:
    from model.registry import alias_version, configure_mlflow

    client = configure_mlflow(settings)
    return alias_version(client, settings.registered_model, "champion")


def _summary(settings: Settings, log: DemoLog) -> None:
    table = Table(title="Persona demo", show_lines=False)
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for name, seconds, _ in log.steps:
        table.add_row(name, f"{seconds:.1f}")
    table.add_row("total", f"{sum(s for _, s, _ in log.steps):.1f}")
    log.console.print(table)
    reports = settings.reports_dir
    home = settings.home
    log.console.print(f"""
[bold]Where to look[/]
  reports (persona cards, drift):  {reports}
  prediction log:                  {settings.serving_dir}
  MLflow UI:     PERSONA_HOME={home} .venv/bin/persona ui mlflow --port {free_port()}
  Evidently UI:  PERSONA_HOME={home} .venv/bin/persona ui evidently --port {free_port()}
  Feast UI:      PERSONA_HOME={home} .venv/bin/persona ui feast --port {free_port()}
""", highlight=False)


def main(config: DemoConfig | None = None) -> None:
    """Entry point used by ``persona demo``."""
    started = dt.datetime.now(dt.UTC)
    home = run_demo(config or DemoConfig())
    elapsed = (dt.datetime.now(dt.UTC) - started).total_seconds()
    Console().print(f"[bold]demo finished in {elapsed / 60:.1f} min[/] (home: {home})")
    # Feast's metrics module leaves files open that Python reports while it shuts down, after the
    # summary: what is printed from here on goes to the run's log with the other library output.
    sys.stderr.flush()
    log_file = catalog.log_file(load_settings())  # PERSONA_HOME is the run's home now
    sys.stderr = open(log_file, "a")  # noqa: SIM115 - open until the process exits

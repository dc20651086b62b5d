"""Shared fixtures and helpers: every test gets its own PERSONA_HOME; nothing touches the repo's .persona.

Under ``CI=true`` a test that would skip because Redis, Postgres or Chromium is missing fails
instead, with the skip's reason: CI must not go green while testing less. Every such skip in
``tests/`` says so with one of :data:`SERVICE_SKIP_PREFIXES` (checked by
``tests/unit/bench/test_ci_skips.py``), which is how the hook below recognises it.

Helpers that tests of several folders share live here and are imported from ``tests.conftest``:
:func:`make_training_frame` (a labelled feature frame, no Feast needed) and the champion home of
the serving tests (:func:`build_champion_home`, also used by the benchmarks, and the
``champion_home`` / ``served_env`` fixtures).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from features.build import write_parquet_atomic
from features.embedding.encoder import EMBEDDING_DIM, Encoded, check_texts
from tests.integration.ray_cluster import RAY_AUTH

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Ray reads RAY_AUTH_MODE and its token once per process, when it is first imported: a test that
# imports Ray before the two-node cluster's token is set would leave every later driver in this
# process unauthenticated. So the run's token is set before any test runs (subprocesses inherit it).
os.environ.update(RAY_AUTH)
os.environ.pop("RAY_AUTH_TOKEN_PATH", None)

# A skip whose reason starts with one of these means "a service this test needs is missing".
SERVICE_SKIP_PREFIXES = (
    "PRODUCTION SERVICES NOT REACHABLE",
    "REDIS NOT REACHABLE",
    "POSTGRES NOT REACHABLE",
    "CHROMIUM NOT FOUND",
)


def in_ci() -> bool:
    """Whether this run is CI (``CI=true``, as CI systems set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI, turn a missing-service skip (in setup or in the test) into a failure with its reason."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if reason.startswith(SERVICE_SKIP_PREFIXES):
        report.outcome = "failed"
        report.longrepr = f"CI=true: a required service is missing, so this fails instead of skipping: {reason}"


@pytest.fixture(autouse=True)
def persona_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home per test, with MLflow pointed inside it."""
    home = tmp_path / "persona_home"
    monkeypatch.setenv("PERSONA_HOME", str(home))
    monkeypatch.delenv("PERSONA_PROFILE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home



def write_raw(settings, start: str = "1997-01-06", customers: int = 30, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start, tz="UTC")
    n = 600
    tx = pd.DataFrame({
        "customer_id": rng.integers(1, customers + 1, n).astype("int64"),
        "event_timestamp": t0 + pd.to_timedelta(rng.integers(0, 120 * 24 * 3600, n), unit="s"),
        "amount": rng.gamma(2.0, 20.0, n),
        "discount": rng.choice([0.0, 0.1], n),
        "returned": rng.random(n) < 0.1,
    })
    customers_frame = pd.DataFrame({
        "customer_id": np.arange(1, customers + 1, dtype="int64"),
        "signup_date": t0 - pd.to_timedelta(rng.integers(0, 60, customers), unit="D"),
        "region": rng.choice(["north", "south"], customers),
    })
    sessions = pd.DataFrame({
        "customer_id": rng.integers(1, customers + 1, 300).astype("int64"),
        "event_timestamp": t0 + pd.to_timedelta(rng.integers(0, 120 * 24 * 3600, 300), unit="s"),
    })
    reviews = pd.DataFrame({
        "customer_id": rng.integers(1, customers + 1, 50).astype("int64"),
        "event_timestamp": t0 + pd.to_timedelta(rng.integers(0, 120 * 24 * 3600, 50), unit="s"),
        "text": "fine",
        "rating": rng.integers(1, 6, 50),
    })
    for name, frame in {"transactions": tx, "customers": customers_frame, "sessions": sessions,
                        "reviews": reviews}.items():
        write_parquet_atomic(frame, settings.raw_dir / f"{name}.parquet")


def write_tricky_raw(settings, customers: int = 120, seed: int = 11) -> None:
    """Raw tables whose sums depend on row order, with edge customers and missing ratings.

    Same-second ties with amounts of very different size; customers only in the customers table
    or only in transactions.
    """
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2003-02-03", tz="UTC")
    n = 3000
    ids = rng.integers(1, customers + 1, n).astype("int64")
    seconds = rng.integers(0, 200 * 24 * 3600, n)
    seconds[::3] = seconds[1::3][: len(seconds[::3])]  # many exact ties, within and across customers
    ids[::3] = ids[1::3][: len(ids[::3])]
    tx = pd.DataFrame({
        "customer_id": ids,
        "event_timestamp": t0 + pd.to_timedelta(seconds, unit="s"),
        "amount": rng.choice([0.1, 3.3, 1e6, 7e-3], n) * rng.random(n),
        "discount": rng.choice([0.0, 0.1], n),
        "returned": rng.random(n) < 0.1,
    })
    known = np.arange(1, customers + 20, dtype="int64")  # 19 customers who never bought
    frame = pd.DataFrame({
        "customer_id": known[known % 7 != 0],  # every 7th buyer has no customers row
        "signup_date": t0 - pd.to_timedelta(rng.integers(0, 60, (known % 7 != 0).sum()), unit="D"),
        "region": "north",
    })
    sessions = pd.DataFrame({
        "customer_id": rng.integers(1, customers + 1, 800).astype("int64"),
        "event_timestamp": t0 + pd.to_timedelta(rng.integers(0, 200 * 24 * 3600, 800), unit="s"),
    })
    rating = rng.integers(1, 6, 200).astype(float)
    rating[::4] = np.nan
    reviews = pd.DataFrame({
        "customer_id": rng.integers(1, customers + 1, 200).astype("int64"),
        "event_timestamp": t0 + pd.to_timedelta(rng.integers(0, 200 * 24 * 3600, 200), unit="s"),
        "text": "fine",
        "rating": rating,
    })
    for name, table in {"transactions": tx, "customers": frame, "sessions": sessions, "reviews": reviews}.items():
        write_parquet_atomic(table, settings.raw_dir / f"{name}.parquet")


class PartitionedInProcess:
    """The local engine dealing rows into several partitions, as the Ray engine does, last partition first."""

    name = "partitioned"
    partitions = 5

    def map(
        self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]], on_progress: Any = None, shared: tuple = ()
    ) -> list[Any]:
        return list(reversed([fn(*shared, *item) for item in reversed(items)]))


class BagOfWordsEncoder:
    """A fast stand-in encoder: hashed bag of words, so shared words mean nearby vectors."""

    def __init__(self, version: str = "1") -> None:
        self.version = version
        self.calls: list[list[str]] = []

    @property
    def identity(self) -> str:
        return f"test/bag-of-words|v{self.version}|numpy|f32"

    def encode(self, texts: Sequence[str], progress=None) -> Encoded:
        check_texts(texts)
        self.calls.append(list(texts))
        vectors = np.zeros((len(texts), EMBEDDING_DIM), np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % EMBEDDING_DIM] += 1.0
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        if progress:
            progress(len(texts))
        return Encoded(vectors, np.zeros(len(texts), bool))

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]


# --------------------------------------------------------------------------- training frame
def make_training_frame(
    customers: int = 300,
    snapshots: int = 4,
    seed: int = 0,
    start: str = "2024-01-07",
    every_days: int = 7,
    interaction: float = 0.0,
) -> pd.DataFrame:
    """Customers x snapshots with profile, behavior and text features and churn/value labels.

    Churn falls with activity (latent rate) and rises with negative review sentiment, so both
    behavior and text carry signal. ``interaction`` adds that much log-odds of churn for bargain
    hunters who are unhappy (a rule a tree finds and a linear baseline cannot), so a test can
    give the boosted model a real edge over the run's logistic baseline.
    """
    rng = np.random.default_rng(seed)
    rate = rng.gamma(2.0, 1.0, customers)  # orders per month
    mood = rng.normal(0, 1, customers)  # review sentiment
    bargain = rng.beta(2, 5, customers)
    regions = np.array(["north", "south", "east", "west"])[rng.integers(0, 4, customers)]
    channels = np.array(["organic", "paid_search", "social"])[rng.integers(0, 3, customers)]
    ages = rng.integers(18, 80, customers)
    rows = []
    for s in range(snapshots):
        t = pd.Timestamp(start, tz="UTC") + pd.Timedelta(days=every_days * s)
        drift = rate * rng.lognormal(0, 0.2, customers)
        orders_365 = rng.poisson(drift * 12)
        spend_365 = orders_365 * rng.gamma(5, 10, customers)
        logit = 1.0 - 1.3 * np.log1p(drift) - 0.8 * mood
        logit = logit + interaction * ((bargain > 0.3) & (mood < 0)) - interaction / 4
        churn_p = 1 / (1 + np.exp(-logit))
        churned = (rng.random(customers) < churn_p).astype(int)
        future_orders = np.where(churned == 1, 0, rng.poisson(drift * 3) + 1)
        frame = pd.DataFrame(
            {
                "customer_id": np.arange(1, customers + 1, dtype="int64"),
                "event_timestamp": t,
                "region": regions,
                "acquisition_channel": channels,
                "age": ages,
                "recency_days": rng.exponential(30 / (drift + 0.1)),
                "tenure_days": rng.uniform(30, 900, customers) + every_days * s,
                "orders_30d": rng.poisson(drift),
                "orders_90d": rng.poisson(drift * 3),
                "orders_365d": orders_365,
                "spend_30d": rng.gamma(1 + drift, 20),
                "spend_90d": rng.gamma(1 + 3 * drift, 20),
                "spend_365d": spend_365,
                "avg_order_value_365d": np.where(
                    orders_365 > 0, spend_365 / np.maximum(orders_365, 1), np.nan
                ),
                "order_trend": rng.normal(0, 1, customers),
                "mean_days_between_orders": 30 / (drift + 0.05),
                "return_share_365d": rng.beta(1, 9, customers),
                "discount_share_365d": bargain,
                "sessions_30d": rng.poisson(drift * 2),
                "sessions_90d": rng.poisson(drift * 6),
                "review_count_365d": rng.poisson(1.5, customers),
                "mean_rating_365d": np.clip(3 + mood + rng.normal(0, 0.3, customers), 1, 5),
                "sentiment_mean_365d": np.tanh(mood + rng.normal(0, 0.3, customers)),
                "churned": churned,
                "future_orders": future_orders,
                "future_spend": future_orders * rng.gamma(5, 10, customers),
            }
        )
        for k in range(8):
            frame[f"text_pca_{k}"] = (mood if k == 0 else rng.normal(0, 1, customers)) * 0.5
        no_reviews = frame["review_count_365d"] == 0
        text_cols = [f"text_pca_{k}" for k in range(8)] + ["sentiment_mean_365d", "mean_rating_365d"]
        frame.loc[no_reviews, text_cols] = np.nan
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="session")
def persona_bundle():
    """A small fitted persona bundle (churn, value, personas, actions), fitted once per session."""
    from model.actions import load_policy
    from training.config import DEFAULT_POLICY_PATH, PersonaParams, TrainConfig, XGBParams
    from training.data import feature_columns_of
    from training.fit import fit_persona_bundle

    frame = make_training_frame(customers=200, snapshots=3, seed=4)
    times = sorted(frame["event_timestamp"].unique())
    train, holdout = frame[frame["event_timestamp"] < times[-1]], frame[frame["event_timestamp"] == times[-1]]
    config = TrainConfig(xgb=XGBParams(n_estimators=40), personas=PersonaParams(k_min=2, k_max=3))
    fit = fit_persona_bundle(
        train.reset_index(drop=True),
        holdout.reset_index(drop=True),
        feature_columns_of(frame),
        config,
        load_policy(DEFAULT_POLICY_PATH),
    )
    return fit.predictor


def make_uplift_predictor(n: int = 1500, seed: int = 5, region: str = "region"):
    """A small fitted uplift model over ``orders_90d, spend_365d, region`` with offers ``discount`` and ``voucher``.

    Planted effects: a discount adds 0.4 to conversion for customers with 2+ orders in 90 days
    and puts the others off (-0.1); a voucher adds 0.3 in the south and nothing elsewhere.
    ``region`` renames the region column (a model needing a feature a reader lacks).
    """
    from campaign.uplift import UpliftConfig, fit_uplift

    rng = np.random.default_rng(seed)
    orders = rng.integers(0, 5, n).astype(float)
    region_of = rng.choice(["north", "south", "west"], n)
    arm = rng.choice(["control", "discount", "voucher"], n)
    effect = np.where(arm == "discount", np.where(orders >= 2, 0.4, -0.1),
                      np.where((arm == "voucher") & (region_of == "south"), 0.3, 0.0))
    converted = (rng.random(n) < 0.2 + effect).astype(np.int64)
    frame = pd.DataFrame({
        "orders_90d": orders, "spend_365d": rng.uniform(0, 500, n), "region": region_of,
        "group": np.where(arm == "control", "control", "treatment"),
        "offer": np.where(arm == "control", rng.choice(["discount", "voucher"], n), arm),
        "converted": converted, "spend": 50.0 * converted,
    })
    frame = frame.rename(columns={"region": region})
    return fit_uplift(frame, ["orders_90d", "spend_365d", region], UpliftConfig(n_estimators=30))


# --------------------------------------------------------------------------- champion home
# A home with a registered champion, for serving tests (and the serving benchmarks).
# build_champion_home runs the real pipeline on tiny synthetic data: generate, ingest, build the
# offline sources, feast apply, materialize, train (champion = v1). The session fixture builds it
# once; tests that move aliases work on a copy (copy_home).
SERVING_ENV = (
    "PERSONA_HOME",
    "PERSONA_PROFILE",
    "PERSONA_API_KEY",
    "PERSONA_SERVING_AUTH",
    "PERSONA_MODEL_POLL_SECONDS",
    "MLFLOW_TRACKING_URI",
)


def build_champion_home(
    home: Path,
    customers: int = 300,
    days: int = 120,
    seed: int = 3,
    n_estimators: int = 20,
    horizon_days: int = 28,
) -> Path:
    """Generate data into ``home`` and train a champion (``PERSONA_HOME`` is set while building).

    Returns:
        ``home``.
    """
    from core.settings import load_settings
    from features.build import build_offline_sources
    from ingest.run import ingest_files
    from store.repo import apply_repo, materialize
    from synthetic.generator import GenerateConfig, generate_dataset
    from training.config import PersonaParams, TrainConfig, XGBParams
    from training.train import TrainJob

    home = Path(home)
    previous = os.environ.get("PERSONA_HOME")
    os.environ["PERSONA_HOME"] = str(home)
    try:
        settings = load_settings()
        config = GenerateConfig(
            customers=customers, days=days, seed=seed, start=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        )
        paths = generate_dataset(config, home / "generated")
        ingest_files(
            settings, {name: paths[name] for name in ("customers", "transactions", "sessions", "reviews")}
        )
        build_offline_sources(settings)
        apply_repo(settings)
        materialize(settings)
        train = TrainConfig(
            xgb=XGBParams(n_estimators=n_estimators),
            personas=PersonaParams(k_min=2, k_max=3),
            horizon_days=horizon_days,
            purge=False,
        )
        result = TrainJob(settings, train).run()
        if not result.decision.promote:  # small data: the first model may not beat its own baselines
            from model.registry import promote

            promote(settings, result.version, reason="test home: serve v1")
    finally:
        if previous is None:
            os.environ.pop("PERSONA_HOME", None)
        else:
            os.environ["PERSONA_HOME"] = previous
    return home


def copy_home(source: Path, target: Path) -> Path:
    """A copy of a home, without its serving state; the copy's registry can change freely.

    A copied home refuses to read the original's files until its features are applied in it
    (``persona features apply``), as a user would after copying a home.
    """
    from core.settings import load_settings
    from store.repo import apply_repo

    shutil.copytree(
        source, target, ignore=lambda folder, names: ["serving"] if Path(folder) == source else []
    )
    settings = load_settings(home=target)
    if (settings.feast_dir / "registry.db").exists():  # a home with registered features
        apply_repo(settings)
    return target


def register_copy_of(home: Path, version: str = "1", name: str | None = None) -> str:
    """Register the model of ``version`` again (a new version number, same artifacts), signed.

    ``name`` is the registered model (default: the home's persona model).

    Returns:
        The new version.
    """
    from core.settings import load_settings
    from model.registry import configure_mlflow
    from model.trust import record_and_sign

    settings = load_settings(home=home)
    client = configure_mlflow(settings)
    name = name or settings.registered_model
    old = client.get_model_version(name, version)
    new = client.create_model_version(
        name,
        old.source,
        run_id=old.run_id,
        tags=dict(old.tags or {}),
        model_id=getattr(old, "model_id", None),
    )
    record_and_sign(client, settings, name, str(new.version))  # signatures name the version
    return str(new.version)


def matured_campaigns(features: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Two matured randomized discount campaigns over a home's customers (recent buyers respond)."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, start in enumerate(("2025-03-01", "2025-06-01")):
        rows = features.copy()
        treated = rng.random(len(rows)) < 0.5
        effect = np.where(rows["orders_90d"].fillna(0).to_numpy() > 0, 0.4, -0.1)
        converted = (rng.random(len(rows)) < 0.2 + treated * effect).astype(np.int64)
        parts.append(rows.assign(campaign_id=f"c{k}", offer="discount", start=pd.Timestamp(start, tz="UTC"),
                                 group=np.where(treated, "treatment", "control"), converted=converted,
                                 orders=converted, spend=40.0 * converted, cost_per_contact=1.5))
    return pd.concat(parts, ignore_index=True)


def register_uplift_champion(home: Path) -> str:
    """Train an uplift model on :func:`matured_campaigns` of ``home``'s customers and make it champion.

    Returns:
        Its version.
    """
    from campaign.plan import latest_features
    from campaign.train import UpliftJob
    from campaign.uplift import UpliftConfig
    from core.runtime import using
    from core.settings import load_settings
    from model.registry import configure_mlflow, move_alias

    settings = load_settings(home=home)
    with using(settings):
        features = latest_features(settings, "churn_model_v1")
        result = UpliftJob(settings, config=UpliftConfig(n_estimators=20)).run(frame=matured_campaigns(features))
    if result.decision.alias != "champion":  # tiny data: serve it anyway
        move_alias(configure_mlflow(settings), result.model_name, "champion", result.version, "serving test")
    return str(result.version)


def register_broken_version(home: Path, tmp: Path) -> str:
    """Register a version whose artifacts are not a loadable model.

    Returns:
        The new version.
    """
    from core.settings import load_settings
    from model.registry import configure_mlflow

    settings = load_settings(home=home)
    client = configure_mlflow(settings)
    junk = tmp / "not-a-model"
    junk.mkdir(parents=True, exist_ok=True)
    (junk / "README").write_text("not a model\n")
    new = client.create_model_version(settings.registered_model, junk.as_uri())
    return str(new.version)


def move_champion(home: Path, version: str) -> None:
    """Point ``champion`` at ``version`` (recorded in the alias history)."""
    from core.settings import load_settings
    from model.registry import configure_mlflow, move_alias

    settings = load_settings(home=home)
    client = configure_mlflow(settings)
    move_alias(client, settings.registered_model, "champion", version, "serving test")


@pytest.fixture(scope="session")
def champion_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with data, materialized features and champion v1 (built once per session)."""
    home = tmp_path_factory.mktemp("serving") / "home"
    with pytest.MonkeyPatch.context() as patch:
        for name in SERVING_ENV:
            patch.delenv(name, raising=False)
        build_champion_home(home)
    return home


@pytest.fixture
def served_env(champion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """PERSONA_HOME pointing at the shared champion home (read-only use)."""
    for name in SERVING_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PERSONA_HOME", str(champion_home))
    return champion_home


# --------------------------------------------------------------------------- headless Chromium
# JavaScript apps (Evidently's reports, MLflow's and Feast's UIs) render only in a browser; these
# helpers load a page in Debian's headless ``chromium`` (`make browser`) with virtual time, so the
# app's fetches finish and it draws before the DOM is read and the screenshot is taken.
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                  "--no-first-run", "--disable-component-update", "--disable-sync", "--window-size=1280,900"]


def render_in_chromium(url: str, profile: Path, screenshot: Path | None = None, budget_ms: int = 15000) -> str:
    """The page's DOM after its JavaScript ran, without script elements; with ``screenshot``, a PNG of it too.

    Skips (a failure under CI) when no Chromium is installed.
    """
    if CHROMIUM is None:
        pytest.skip("CHROMIUM NOT FOUND: install it with `make browser` (apt-get install chromium "
                    "chromium-driver) to check that pages render")
    shot = [f"--screenshot={screenshot}"] if screenshot is not None else []
    out = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--virtual-time-budget={budget_ms}",
                          f"--user-data-dir={profile}", *shot, "--dump-dom", url],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    return re.sub(r"<script\b[^>]*>.*?</script>", "", out.stdout, flags=re.S | re.I)


def dominant_colour_share(png: Path) -> float:
    """The share of a PNG's pixels that have its most common colour (1.0: a blank, single-colour image)."""
    from PIL import Image

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        counts = rgb.getcolors(rgb.width * rgb.height) or []
        return max(count for count, _ in counts) / (rgb.width * rgb.height)


def raw_exchange(port: int, data: bytes, wait: float = 10.0) -> bytes:
    """Send ``data`` on a bare socket and read until the server closes (or ``wait`` passes)."""
    import contextlib
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

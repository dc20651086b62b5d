"""Real public data, end to end: the CDNOW log (value and churn) and a labelled customer table.

Data sets a package ships, never generated ones:

- **CDNOW** (Fader & Hardie): the full log of 23,570 customers who first bought in Q1 1997,
  to June 1998, and the 1/10 sample of 2,357. The ``lifetimes`` wheel (a dev dependency, for
  its data only) ships both as ``lifetimes/datasets/CDNOW_*.txt``; the files are read where
  the package is installed, without importing its code.
- **Caravan** (ISLP, 5,822 insurance customers, 85 attributes, ``Purchase`` Yes/No): ISLP
  would pull torch-lightning and move the scipy pin, so it is not a dependency; ``make setup``
  downloads its wheel (hash-pinned in ``bench/realdata-wheels.txt``, never installed) into
  ``REALDATA_WHEELS`` (default ``~/.cache/persona/wheels``) and the table is read from inside it
  (or from an installed ISLP).

The suite runs the same steps as ``persona ingest``, ``persona features build`` and
``persona train`` on a scratch home and puts the value model beside BG/NBD (expected orders
MAE / RMSE / correlation, predicted vs actual total) and churn beside its classic baselines;
then Caravan as a user's own feature view with labels at one time and no transactions
(``persona features apply``, ``persona train --labels --cv-folds 5``): purchase ROC and PR AUC
beside the logistic and majority-class baselines, the split, the gate's verdict and the folds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import re
import zipfile
from pathlib import Path

import pandas as pd

from bench.common import row, scratch_home, timed

ISSUE = 12
LONGER_HORIZONS = (60, 181)  # beside the 90-day rows; 181: the longest CDNOW's 78 weeks support twice over
ISLP_WHEEL = "islp-0.6.0-py3-none-any.whl"
WHEELS_FILE = Path(__file__).resolve().parent / "realdata-wheels.txt"
DEFAULT_WHEELS = Path.home() / ".cache" / "persona" / "wheels"  # the Makefile's REALDATA_WHEELS default
CARAVAN_TARGET = "purchase"
CARAVAN_SERVICE = "caravan_model_v1"
CARAVAN_KNOWN = "2000-01-01"  # when the attributes are known; Caravan itself is undated (CoIL 2000)
# The user's own view over Caravan's attributes, as README's "your own features" section writes one.
CARAVAN_VIEWS = '''
from datetime import timedelta
from feast import FeatureService, FeatureView, Field, FileSource
from feast.types import Int64

from feature_repo.definitions import customer

COLUMNS = {columns!r}
caravan_source = FileSource(name="caravan_source", path="{path}", timestamp_field="event_timestamp")
caravan_fv = FeatureView(name="caravan", entities=[customer], ttl=timedelta(days=30),
                         schema=[Field(name=c, dtype=Int64) for c in COLUMNS], source=caravan_source)
{service} = FeatureService(name="{service}", features=[caravan_fv])
'''


def cdnow_transactions(full: bool = False) -> pd.DataFrame:
    """CDNOW as Persona transactions (one row = one order): customer_id, event_timestamp, amount.

    Raises:
        FileNotFoundError: ``lifetimes`` (the dev dependency that ships the files) is not installed.
    """
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("CDNOW ships with the `lifetimes` dev dependency; run `make setup`")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets"
    if full:
        raw = pd.read_csv(folder / "CDNOW_master.txt", sep=r"\s+", header=0,
                          names=["customer_id", "date", "cds", "amount"])
    else:
        raw = pd.read_csv(folder / "CDNOW_sample.txt", sep=r"\s+", header=None,
                          names=["master_id", "customer_id", "date", "cds", "amount"])
    return pd.DataFrame({
        "customer_id": raw["customer_id"].astype("int64"),
        "event_timestamp": pd.to_datetime(raw["date"].astype(str), format="%Y%m%d", utc=True),
        "amount": raw["amount"].astype(float),
    })


def wheels_dir() -> Path:
    """Where ``make setup`` puts the real-data wheels: ``REALDATA_WHEELS``, default ``~/.cache/persona/wheels``."""
    return Path(os.environ.get("REALDATA_WHEELS") or DEFAULT_WHEELS)


def pinned_wheel_hash(wheel: str = ISLP_WHEEL) -> str:
    """The sha256 ``bench/realdata-wheels.txt`` pins for a wheel (``make setup`` downloads what it names)."""
    name, version = wheel.split("-")[:2]
    for line in WHEELS_FILE.read_text().splitlines():
        pin = re.match(rf"\s*{re.escape(name)}=={re.escape(version)}\s+--hash=sha256:([0-9a-f]{{64}})", line, re.I)
        if pin:
            return pin.group(1)
    raise LookupError(f"{WHEELS_FILE.name} pins no {name}=={version}")


def islp_table(name: str) -> pd.DataFrame:
    """An ISLP data table (``Caravan``, ``Default``) from an installed ISLP or the pinned wheel.

    Raises:
        FileNotFoundError: neither is there, or the wheel is not the pinned one; the message says
            what to run.
    """
    member = f"ISLP/data/{name}.csv"
    spec = importlib.util.find_spec("ISLP")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.csv"
        if path.is_file():
            return pd.read_csv(path)
    wheel = wheels_dir() / ISLP_WHEEL
    if not wheel.is_file():
        raise FileNotFoundError(f"{name} ships in {wheel} (missing); run `make setup` to download it")
    if hashlib.sha256(wheel.read_bytes()).hexdigest() != pinned_wheel_hash():
        raise FileNotFoundError(f"{wheel} does not match the sha256 pinned in {WHEELS_FILE.name}; "
                                "delete it and run `make setup`")
    with zipfile.ZipFile(wheel) as archive:
        return pd.read_csv(io.BytesIO(archive.read(member)))


def caravan_table(customers: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Caravan's real rows, all or a slice stratified by ``Purchase`` (the same share of buyers)."""
    table = islp_table("Caravan")
    if customers is None or customers >= len(table):
        return table
    share = customers / len(table)
    picked = table.groupby("Purchase", group_keys=False).sample(frac=share, random_state=seed)
    return picked.sort_index()


def caravan_customers(table: pd.DataFrame, known: str = CARAVAN_KNOWN) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Caravan as the user's own customer attributes (one row each, known at one time) and labels a day later.

    Returns:
        ``(attributes, labels)``: ``customer_id``, ``event_timestamp`` and the 85 attributes as
        int64; ``customer_id``, ``event_timestamp`` and ``purchase`` (1 for ``Purchase == "Yes"``).
    """
    ids = pd.RangeIndex(1, len(table) + 1, name="customer_id")
    attributes = table.drop(columns=["Purchase"]).astype("int64").set_axis(ids).reset_index()
    attributes.insert(1, "event_timestamp", pd.Timestamp(known, tz="UTC"))
    labels = pd.DataFrame({
        "customer_id": ids,
        "event_timestamp": pd.Timestamp(known, tz="UTC") + pd.Timedelta(days=1),
        CARAVAN_TARGET: (table["Purchase"] == "Yes").astype(int).to_numpy(),
    })
    return attributes, labels


def write_caravan(table: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    """The user's side of Caravan: attributes parquet, a feature repo folder with its view, a labels file.

    Returns:
        ``(views, labels)``: the folder to point ``PERSONA_FEATURE_REPO`` at and the labels CSV.
    """
    attributes, labels = caravan_customers(table)
    folder.mkdir(parents=True, exist_ok=True)
    attributes.to_parquet(folder / "caravan.parquet", index=False)
    labels.to_csv(folder / "purchase_labels.csv", index=False)
    views = folder / "views"
    views.mkdir(exist_ok=True)
    columns = [c for c in attributes.columns if c not in ("customer_id", "event_timestamp")]
    (views / "caravan.py").write_text(CARAVAN_VIEWS.format(path=folder / "caravan.parquet", columns=columns,
                                                           service=CARAVAN_SERVICE))
    return views, folder / "purchase_labels.csv"


def train_caravan(customers: int | None = None, cv_folds: int = 5) -> tuple[dict[str, float], str, str]:
    """Caravan as the user's own view and labels, no transactions: apply, train ``purchase``; the run's metrics.

    Returns:
        ``(metrics, split, verdict)``: the run's metrics, the split the plan used and why, the gate's alias.
    """
    from core.settings import load_settings
    from features.build import empty_sources_without_transactions
    from store.repo import apply_repo
    from training.config import TrainConfig
    from training.train import TrainJob

    plans: list = []
    home = load_settings().home
    views, labels = write_caravan(caravan_table(customers), home.parent / "caravan")
    previous = os.environ.get("PERSONA_FEATURE_REPO")
    os.environ["PERSONA_FEATURE_REPO"] = str(views)
    try:
        settings = load_settings()
        empty_sources_without_transactions(settings)  # as `persona features apply` does
        apply_repo(settings)
        config = TrainConfig(labels_path=labels, target=CARAVAN_TARGET, feature_service=CARAVAN_SERVICE,
                             cv_folds=cv_folds)
        result = TrainJob(settings, config, on_plan=plans.append).run()
    finally:
        if previous is None:
            os.environ.pop("PERSONA_FEATURE_REPO", None)
        else:
            os.environ["PERSONA_FEATURE_REPO"] = previous
    plan = plans[0]
    return result.metrics, f"{plan.split} split, {plan.split_reason.split(':')[0]}", result.decision.alias


def _value_rows(m: dict, label: str) -> list[dict]:
    rows = []
    for stat, unit in (("mae", "orders"), ("rmse", "orders"), ("corr", "")):
        model, btyd = m.get(f"orders_{stat}", float("nan")), m.get(f"baseline_btyd_orders_{stat}", float("nan"))
        better = model > btyd if stat == "corr" else model < btyd
        rows.append(row(ISSUE, "value (real)", f"expected orders {stat.upper()}, XGBoost vs BG/NBD {btyd:.3f} "
                        f"({label})", model, unit, "beats BG/NBD", bool(better)))
    for name, who in (("orders_total_ratio", "XGBoost"), ("baseline_btyd_orders_total_ratio", "BG/NBD")):
        ratio = m.get(name, float("nan"))
        rows.append(row(ISSUE, "value (real)", f"predicted / actual total orders, {who} ({label})", ratio, "x",
                        "0.9-1.1", bool(0.9 <= ratio <= 1.1)))
    if "orders_weight" in m:  # BG/NBD's weight in the served expectation, chosen by the run itself
        rows.append(row(ISSUE, "value (real)", f"BG/NBD weight in expected orders, chosen on the run's inner split "
                        f"(0.5 without one) ({label})", m["orders_weight"], ""))
    return rows


def _churn_rows(m: dict, label: str) -> list[dict]:
    auc = m.get("churn_roc_auc", float("nan"))
    classic = {k: m.get(f"baseline_{k}_roc_auc", float("nan")) for k in ("logreg", "rfm")}
    btyd = m.get("baseline_btyd_churn_roc_auc", float("nan"))
    best = max(classic.values())
    return [
        row(ISSUE, "churn (real)", f"churn ROC AUC vs logistic {classic['logreg']:.3f} / RFM {classic['rfm']:.3f} "
            f"/ BG/NBD {btyd:.3f} ({label})", auc, "", "beats RFM and logistic", bool(auc > best)),
    ]


def train_cdnow(full: bool, horizon_days: int = 90) -> dict[str, float]:
    """Ingest CDNOW into the current home, build features and train; the run's metrics."""
    from core.settings import load_settings
    from features.build import build_offline_sources
    from ingest.run import ingest_files
    from store.repo import apply_repo
    from training.config import TrainConfig
    from training.train import TrainJob

    settings = load_settings()
    path = settings.home / "cdnow.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    cdnow_transactions(full).to_csv(path, index=False)
    ingest_files(settings, {"transactions": path})
    build_offline_sources(settings)
    apply_repo(settings)
    return TrainJob(settings, TrainConfig(horizon_days=horizon_days)).run().metrics


def _purchase_rows(m: dict, label: str, split: str, verdict: str) -> list[dict]:
    auc, logreg = m.get("purchase_roc_auc", float("nan")), m.get("baseline_logreg_purchase_roc_auc", float("nan"))
    majority = m.get("baseline_majority_purchase_roc_auc", float("nan"))
    pr, pr_logreg = m.get("purchase_pr_auc", float("nan")), m.get("baseline_logreg_purchase_pr_auc", float("nan"))
    pr_majority = m.get("baseline_majority_purchase_pr_auc", float("nan"))
    folds = int(m.get("cv_folds", 0))
    cv_mean, cv_std = m.get("purchase_roc_auc_cv_mean", float("nan")), m.get("purchase_roc_auc_cv_std", float("nan"))
    return [
        row(ISSUE, "purchase (real)", f"purchase ROC AUC vs logistic {logreg:.3f} / majority {majority:.3f} "
            f"({label}; {split}; gate: {verdict})", auc, "", "beats logistic and majority",
            bool(auc > max(logreg, majority))),
        row(ISSUE, "purchase (real)", f"purchase PR AUC vs logistic {pr_logreg:.3f} / majority (base rate) "
            f"{pr_majority:.3f} ({label})", pr, "", "beats logistic and majority",
            bool(pr > max(pr_logreg, pr_majority))),
        row(ISSUE, "purchase (real)", f"purchase ROC AUC over {folds} stratified customer folds: mean, "
            f"spread ± {cv_std:.3f} ({label})", cv_mean, ""),
    ]


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows for issue 12 (``quick``: the 2,357-customer CDNOW sample and 1,500 Caravan customers)."""
    label = f"CDNOW {'1/10 sample' if quick else 'full'}, 90-day horizon"
    with scratch_home("realdata"), timed() as took:
        metrics = train_cdnow(full=not quick)
    rows = _value_rows(metrics, label) + _churn_rows(metrics, label)
    rows.append(row(ISSUE, "value (real)", f"train on {label} incl. ingest and features", took[0], "s"))
    for horizon in () if quick else LONGER_HORIZONS:  # any horizon with twice its history (CDNOW: 546 days)
        with scratch_home(f"realdata-{horizon}"):
            rows += _value_rows(train_cdnow(full=True, horizon_days=horizon), f"CDNOW full, {horizon}-day horizon")
    customers = 1_500 if quick else None
    table = "1,500-customer stratified slice" if quick else "all 5,822 customers"
    label = f"Caravan {table}, own view, no transactions"
    with scratch_home("realdata-caravan"), timed() as took:
        metrics, split, verdict = train_caravan(customers, cv_folds=5)
    rows += _purchase_rows(metrics, label, split, verdict)
    rows.append(row(ISSUE, "purchase (real)", f"apply and train on {label}, 5 folds included", took[0], "s"))
    return rows

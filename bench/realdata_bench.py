"""Real public data, end to end: the CDNOW log (value and churn) and a labelled customer table.

Data sets a package ships, never generated ones:

- **CDNOW** (Fader & Hardie): the full log of 23,570 customers who first bought in Q1 1997,
  to June 1998, and the 1/10 sample of 2,357. The ``lifetimes`` wheel (a dev dependency, for
  its data only) ships both as ``lifetimes/datasets/CDNOW_*.txt``; the files are read where
  the package is installed, without importing its code.
- **Caravan** (ISLP, 5,822 insurance customers, 85 attributes, ``Purchase`` Yes/No): ISLP
  would pull torch-lightning and move the scipy pin, so it is not a dependency; the table is
  read from an installed ISLP or from its wheel in ``REALDATA_WHEELS`` (default
  ``~/.cache/persona/wheels``; ``pip download --no-deps ISLP==0.6.0 -d DIR`` puts it there).

The suite runs the same steps as ``persona ingest``, ``persona features build`` and
``persona train`` on a scratch home and puts the value model beside BG/NBD (expected orders
MAE / RMSE / correlation, predicted vs actual total) and churn beside its classic baselines.
"""

from __future__ import annotations

import importlib.util
import io
import os
import zipfile
from pathlib import Path

import pandas as pd

from bench.common import row, scratch_home, timed

ISSUE = 12
ISLP_WHEEL = "islp-0.6.0-py3-none-any.whl"


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


def islp_table(name: str) -> pd.DataFrame | None:
    """An ISLP data table (``Caravan``, ``Default``) from an installed ISLP or its wheel; None if neither."""
    member = f"ISLP/data/{name}.csv"
    spec = importlib.util.find_spec("ISLP")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.csv"
        if path.is_file():
            return pd.read_csv(path)
    wheels = Path(os.environ.get("REALDATA_WHEELS", Path.home() / ".cache" / "persona" / "wheels"))
    wheel = wheels / ISLP_WHEEL
    if not wheel.is_file():
        return None
    with zipfile.ZipFile(wheel) as archive:
        return pd.read_csv(io.BytesIO(archive.read(member)))


def caravan_customers(table: pd.DataFrame, signup: str = "2020-01-01") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Caravan as a customers table (attributes, one signup date) and a labels table (``purchase`` 0/1 at one time)."""
    ids = pd.RangeIndex(1, len(table) + 1, name="customer_id")
    attributes = table.drop(columns=["Purchase"]).set_axis(ids).reset_index()
    attributes.insert(1, "signup_date", pd.Timestamp(signup, tz="UTC"))
    labels = pd.DataFrame({
        "customer_id": ids,
        "event_timestamp": pd.Timestamp(signup, tz="UTC") + pd.Timedelta(days=1),
        "purchase": (table["Purchase"] == "Yes").astype(int).to_numpy(),
    })
    return attributes, labels


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


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows for issue 12 (``quick``: the 2,357-customer sample instead of the full log)."""
    label = f"CDNOW {'1/10 sample' if quick else 'full'}, 90-day horizon"
    with scratch_home("realdata"), timed() as took:
        metrics = train_cdnow(full=not quick)
    rows = _value_rows(metrics, label) + _churn_rows(metrics, label)
    rows.append(row(ISSUE, "value (real)", f"train on {label} incl. ingest and features", took[0], "s"))
    caravan = islp_table("Caravan")
    if caravan is None:
        rows.append(row(ISSUE, "churn (real)", f"Caravan: {ISLP_WHEEL} not in REALDATA_WHEELS (skipped)",
                        float("nan"), ""))
    return rows

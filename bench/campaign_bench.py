"""Issue 15 figures: uplift targeting against churn-score targeting and the oracle, on generated campaigns.

One home with past randomized campaign waves (``quick``: 4k customers, else 20k): ``persona train
--uplift``'s job learns from the earlier waves and is judged on the latest one, which it never
saw. Every eligible customer of that wave is in it (treatment or control of one offer), and the
generator knows each one's true effect of every offer, so each policy is scored without noise:
the incremental conversions it would get by contacting the same number of customers.

* uplift: per customer the offer with the highest predicted conversion uplift; the top by it.
* churn score: the highest true churn probabilities at the snapshot before the wave (a perfect
  churn model, the strongest version of this baseline), each given the offer best on average.
* oracle: per customer the truly best offer; the top by its true effect.

The same budget means the same number of contacts (offers' costs differ; the plan's money budget
is tested in ``tests/unit/campaign``). A last row says how much of the oracle the features can
explain at all (a model fitted on the true effects themselves), which bounds every learner.

The targeting figures are seeded (data, splits, single-threaded XGBoost), so they do not depend
on how busy the machine is (``load_sensitive=False``); the timings do.

Run: ``python -m bench.campaign_bench [--quick]``.
"""

from __future__ import annotations

import datetime as dt
import sys

import numpy as np
import pandas as pd

from bench.common import row, scratch_home, timed

ISSUE = 15
AREA = "campaigns"
CONTACT_SHARE = 0.2


def _prepare(base, customers: int):
    from core.settings import load_settings
    from features.build import build_offline_sources
    from ingest.run import ingest_files
    from store.repo import apply_repo
    from synthetic.generator import GenerateConfig, generate_dataset

    config = GenerateConfig(customers=customers, days=365, seed=11, start=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
                            campaign_waves=5)
    paths = generate_dataset(config, base / "generated")
    settings = load_settings()
    tables = ("customers", "transactions", "sessions", "reviews", "campaigns", "exposures")
    ingest_files(settings, {name: paths[name] for name in tables})
    build_offline_sources(settings)
    apply_repo(settings)
    return settings, paths


def policy_gains(holdout: pd.DataFrame, predicted: pd.DataFrame, truth: pd.DataFrame, churn: np.ndarray,
                 offers: tuple[str, ...], contacts: int) -> dict[str, float]:
    """Incremental conversions (sum of true effects) of each policy contacting ``contacts`` customers."""
    keys = ["customer_id", "campaign_id"]
    wave = holdout["campaign_id"].str.split("-").str[0]
    true = np.column_stack([
        holdout[["customer_id"]].assign(campaign_id=wave + f"-{o}").merge(truth, on=keys, how="left")
        ["true_uplift_conversion"].to_numpy() for o in offers])
    pred = np.column_stack([predicted[f"uplift_conversion_{o}"].to_numpy() for o in offers])
    rows = np.arange(len(holdout))
    pick = np.argmax(pred, axis=1)
    on_average = int(np.argmax(pred.mean(axis=0)))

    def top(score: np.ndarray, effect: np.ndarray) -> float:
        return float(effect[np.argsort(-score, kind="stable")[:contacts]].sum())

    rng = np.random.default_rng(0)
    return {
        "uplift": top(pred[rows, pick], true[rows, pick]),
        "churn": top(churn, true[:, on_average]),
        "random": top(rng.random(len(holdout)), true[:, on_average]),
        "oracle": top(true.max(axis=1), true.max(axis=1)),
    }


def learnable_ceiling(holdout: pd.DataFrame, truth: pd.DataFrame, features: list[str],
                      offers: tuple[str, ...]) -> pd.DataFrame:
    """Per offer, the true conversion effect as predicted from the model's features (2-fold, fitted on the truth).

    No learner sees more than these features; this is how much of the oracle they can explain,
    so the gap between it and the oracle is effect the features do not show (chance, hidden traits).
    """
    import xgboost as xgb

    from model.preprocess import fit_feature_spec, model_matrix

    spec = fit_feature_spec(holdout, features)
    matrix = model_matrix(holdout, spec).astype(np.float32)
    wave = holdout["campaign_id"].str.split("-").str[0]
    fold = np.random.default_rng(1).random(len(holdout)) < 0.5
    out = {}
    for offer in offers:
        target = holdout[["customer_id"]].assign(campaign_id=wave + f"-{offer}").merge(
            truth, on=["customer_id", "campaign_id"], how="left")["true_uplift_conversion"].to_numpy()
        pred = np.zeros(len(holdout))
        for part in (fold, ~fold):
            booster = xgb.train({"max_depth": 4, "eta": 0.1, "nthread": 1, "verbosity": 0},
                                xgb.DMatrix(matrix[~part], label=target[~part]), 200)
            pred[part] = booster.inplace_predict(matrix[part])
        out[f"uplift_conversion_{offer}"] = pred
    return pd.DataFrame(out, index=holdout.index)


def churn_at_contact(holdout: pd.DataFrame, ground_truth: pd.DataFrame) -> np.ndarray:
    """True churn probability at the latest snapshot at or before each contact."""
    gt = ground_truth[["customer_id", "event_timestamp", "true_churn_probability"]].copy()
    gt["event_timestamp"] = pd.to_datetime(gt["event_timestamp"], utc=True).dt.as_unit("ns")
    gt = gt.sort_values("event_timestamp")
    left = holdout[["customer_id", "event_timestamp"]].reset_index()
    left["event_timestamp"] = pd.to_datetime(left["event_timestamp"], utc=True).dt.as_unit("ns")
    left = left.sort_values("event_timestamp")
    joined = pd.merge_asof(left, gt, on="event_timestamp", by="customer_id", direction="backward")
    return joined.sort_values("index")["true_churn_probability"].fillna(1.0).to_numpy()


def run(quick: bool = False) -> list[dict]:
    from campaign.train import UpliftJob
    from core.runtime import using

    customers = 4_000 if quick else 20_000
    rows: list[dict] = []
    with scratch_home("campaign") as base:
        with timed() as t_prep:
            settings, paths = _prepare(base, customers)
        rows.append(row(ISSUE, AREA, f"prepare {customers:,} customers with 5 campaign waves", t_prep[0], "s"))
        with timed() as t_train, using(settings):
            result = UpliftJob(settings, truth_path=paths["campaign_truth"]).run()
        m = result.metrics
        rows.append(row(ISSUE, AREA, f"train uplift ({int(m['train_rows']):,} exposures, "
                        f"{len(result.predictor.offers)} offers x 2 outcomes)", t_train[0], "s"))
        holdout = result.holdout
        truth = pd.read_parquet(paths["campaign_truth"])
        churn = churn_at_contact(holdout, pd.read_parquet(paths["ground_truth"]))
        contacts = int(CONTACT_SHARE * len(holdout))
        gains = policy_gains(holdout, result.predictor.predict(holdout), truth, churn, result.predictor.offers,
                             contacts)
        label = f"{contacts:,} of {len(holdout):,} customers of the held-out wave"
        for name in ("uplift", "churn", "random", "oracle"):
            rows.append(row(ISSUE, AREA, f"incremental conversions, {name} targeting ({label})", gains[name], ""))
        ceiling = policy_gains(holdout, learnable_ceiling(holdout, truth, result.predictor.feature_columns,
                                                          result.predictor.offers),
                               truth, churn, result.predictor.offers, contacts)["uplift"]
        rows.append(row(ISSUE, AREA, "what the features can explain: targeting by true effects predicted from "
                        "them (2-fold) / oracle", ceiling / gains["oracle"], ""))
        vs_churn = gains["uplift"] / gains["churn"] if gains["churn"] > 0 else float("inf")
        rows.append(row(ISSUE, AREA, "uplift / churn-score targeting, incremental conversions at the same budget",
                        vs_churn, "x", ">= 1.5", vs_churn >= 1.5, load_sensitive=False))
        vs_oracle = gains["uplift"] / gains["oracle"]
        rows.append(row(ISSUE, AREA, "uplift / oracle targeting, incremental conversions", vs_oracle, "",
                        ">= 0.8", vs_oracle >= 0.8, load_sensitive=False))
        qini = m["uplift_qini"] / m["oracle_uplift_qini"]
        rows.append(row(ISSUE, AREA, "Qini coefficient / oracle's, held-out wave (realized outcomes)", qini, "",
                        ">= 0.8", qini >= 0.8, load_sensitive=False))
        expected = m["expected_uplift_qini"] / m["oracle_expected_uplift_qini"]
        rows.append(row(ISSUE, AREA, "Qini coefficient / oracle's, held-out wave (true effects, no noise)",
                        expected, ""))
    return rows


if __name__ == "__main__":  # pragma: no cover
    for r in run(quick="--quick" in sys.argv):
        print(r)

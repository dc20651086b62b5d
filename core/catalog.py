"""Where every artifact lives: one function per file or folder under ``PERSONA_HOME``.

Writers and readers both call these, so ``grep offline_source`` shows everyone who touches an
offline source. Pure path arithmetic: nothing is created or read here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from core.settings import Settings

# Offline sources Persona builds; Feast views read them (feature_repo/definitions.py).
PROFILE_SOURCE = "customer_profile"
BEHAVIOR_SOURCE = "customer_behavior"
TEXT_SOURCE = "customer_text"
BUILT_SOURCES = (PROFILE_SOURCE, BEHAVIOR_SOURCE, TEXT_SOURCE)
# Model outputs written back as features by batch scoring (feature view ``customer_scores``).
SCORES_SOURCE = "customer_scores"
OFFLINE_SOURCES = (*BUILT_SOURCES, SCORES_SOURCE)

# Artifact paths inside an MLflow run.
REFERENCE_ARTIFACT = "reference/reference.parquet"


# ---- raw data (ingest) ----
def raw_table(s: Settings, table: str) -> Path:
    """Accepted, deduplicated rows of one contract table."""
    return s.raw_dir / f"{table}.parquet"


def quarantine_table(s: Settings, table: str) -> Path:
    """Rejected rows of one contract table, each with its reason and source file."""
    return s.quarantine_dir / f"{table}.parquet"


def ground_truth(s: Settings) -> Path:
    """The generator's exact ground truth, when a synthetic data set was ingested into this home."""
    return s.raw_dir.parent / "ground_truth.parquet"


# ---- offline store and Feast ----
def offline_source(s: Settings, name: str) -> Path:
    """A parquet offline source (local profile); the prod profile keeps a Postgres table ``name``."""
    return s.offline_dir / f"{name}.parquet"


def scores_source(s: Settings) -> Path:
    """Batch scores per customer and scoring time, with the model version (local profile)."""
    return offline_source(s, SCORES_SOURCE)


def text_source(s: Settings) -> Path:
    """Text features per customer and snapshot."""
    return offline_source(s, TEXT_SOURCE)


def feast_registry_db(s: Settings) -> Path:
    """Feast's SQL registry (local profile; ``feature_repo/feature_store.yaml`` names the same file)."""
    return s.feast_dir / "registry.db"


def online_store_db(s: Settings) -> Path:
    """The SQLite online store (local profile)."""
    return s.feast_dir / "online_store.db"


def materialized_sources(s: Settings) -> Path:
    """What each feature view's online values were materialized from (source, fingerprint, newest created)."""
    return s.feast_dir / "materialized_sources.json"


# ---- embeddings ----
def embedding_cache(s: Settings) -> Path:
    """Review-text vectors keyed by text hash and encoder identity."""
    return s.embeddings_dir / "cache"


def sentiment_cache(s: Settings) -> Path:
    """Sentiment scores keyed by text hash and scorer identity."""
    return s.embeddings_dir / "sentiment_cache"


def projections_dir(s: Settings) -> Path:
    """Fitted text projections, one file per version."""
    return s.embeddings_dir / "projections"


def pinned_projection(s: Settings) -> Path:
    """The version of the projection ``persona embed`` reuses until it is explicitly refitted."""
    return projections_dir(s) / "pinned"


def encoder_models_dir(s: Settings) -> Path:
    """Exported fast encoders (derived from the packaged model)."""
    return s.embeddings_dir / "models"


def similarity_cache(s: Settings) -> Path:
    """The exact similarity index's vectors per snapshot."""
    return s.embeddings_dir / "similarity"


# ---- models ----
def mlflow_db(s: Settings) -> Path:
    """MLflow's SQLite backend (local profile)."""
    return s.mlflow_dir / "mlflow.db"


def mlflow_artifacts(s: Settings) -> Path:
    """MLflow's artifact root (local profile and the server the app starts)."""
    return s.mlflow_dir / "artifacts"


def mlflow_server_pid(s: Settings) -> Path:
    """Process id of the MLflow server ``persona prod up`` started."""
    return s.mlflow_dir / "server.pid"


def mlflow_auth_config(s: Settings) -> Path:
    """The MLflow server's basic-auth configuration (no secrets: those reach it by environment)."""
    return s.mlflow_dir / "basic_auth.ini"


def mlflow_auth_db(s: Settings) -> Path:
    """The MLflow server's user and permission store."""
    return s.mlflow_dir / "basic_auth.db"


def mlflow_server_log(s: Settings) -> Path:
    """Output of the MLflow server ``persona prod up`` started."""
    return s.mlflow_dir / "server.log"


def model_signing_key(s: Settings) -> Path:
    """The key that signs registered versions (local profile; 0600, created at first registration)."""
    return s.home / "keys" / "model_signing.key"


def locks_dir(s: Settings) -> Path:
    """File locks (alias moves, single-flight jobs)."""
    return s.home / "locks"


def scores_lock(s: Settings) -> Path:
    """Held by ``persona score`` while it rewrites the ``customer_scores`` source."""
    return locks_dir(s) / "scores.lock"


def ingest_lock(s: Settings, table: str) -> Path:
    """Held by whoever writes ``table``'s raw store and quarantine files (one writer at a time)."""
    return locks_dir(s) / f"ingest-{table}.lock"


# ---- reports ----
def persona_cards_html(s: Settings) -> Path:
    """The champion's persona cards."""
    return s.reports_dir / "persona_cards.html"


def monitoring_reports(s: Settings) -> Path:
    """Drift reports and summaries, one folder per monitor run."""
    return s.reports_dir / "monitoring"


def skew_verdict(s: Settings) -> Path:
    """The latest skew replay's result; the promotion gate holds while it reports skew."""
    return s.reports_dir / "skew" / "latest.json"


def evidently_workspace(s: Settings) -> Path:
    """Evidently's workspace (projects and snapshots) for its UI."""
    return s.reports_dir / "evidently_workspace"


# ---- campaigns ----
def audiences_dir(s: Settings) -> Path:
    """Exported campaign audiences (one file per audience), when any were exported."""
    return s.reports_dir / "audiences"


def planned_audience(s: Settings, campaign_id: str) -> Path:
    """One planned campaign's audience with its expected uplift (the evaluation's Qini curve reads it)."""
    return audiences_dir(s) / f"{campaign_id}.parquet"


def campaign_reports(s: Settings) -> Path:
    """Campaign evaluations: one HTML page and one JSON file per evaluated campaign."""
    return s.reports_dir / "campaigns"


# ---- privacy (erasure and suppression) ----
def privacy_dir(s: Settings) -> Path:
    """Erasure state: the salt, the suppression list and erasure reports."""
    return s.home / "privacy"


def erasure_salt(s: Settings) -> Path:
    """The secret salt of the suppression list's id hashes (created 0600 on first use)."""
    return privacy_dir(s) / "salt"


def suppression_list(s: Settings) -> Path:
    """Salted hashes of erased customer ids; ingest quarantines their rows (reason ``erased``)."""
    return privacy_dir(s) / "suppressed.parquet"


def erasure_reports(s: Settings) -> Path:
    """One JSON report per ``persona forget`` run."""
    return privacy_dir(s) / "reports"


def erasure_lock(s: Settings) -> Path:
    """Held by ``persona forget`` while it rewrites the stores."""
    return locks_dir(s) / "erasure.lock"


# ---- logs ----
def log_file(s: Settings) -> Path:
    """Library warnings and INFO lines kept out of the terminal by ``persona train`` and ``score``."""
    return s.home / "logs" / "persona.log"


# ---- status ----
def last_check(s: Settings) -> Path:
    """The result of the last ``persona features check`` (read by ``persona status``)."""
    return s.reports_dir / "last_features_check.json"


# ---- demo ----
def demo_runs(s: Settings) -> Path:
    """The demo's own folder: one fresh home per ``persona demo`` run under it."""
    return s.home / "demo"


def demo_marker(home: Path) -> Path:
    """The file that marks a home as created by ``persona demo`` (and nothing else)."""
    return home / ".persona-demo"


# ---- serving ----
def prediction_log(s: Settings) -> Path:
    """What serving answered, partitioned by date."""
    return s.serving_dir / "prediction_log"


def target_prediction_log(s: Settings, model: str) -> Path:
    """What serving answered with a custom target's model (``predict_target``), one folder per model.

    Inside :func:`prediction_log` (erased with it) but apart from the persona model's partitions,
    whose readers never see these rows.
    """
    return prediction_log(s) / f"model={model}"


def serving_state(s: Settings) -> Path:
    """Process id, host and port of the server ``persona serve`` started from this home."""
    return s.serving_dir / "server.json"

"""One typed settings object for every Persona job.

Values come from (highest first) explicit arguments, environment variables prefixed
``PERSONA_`` (``PERSONA_HOME``, ``PERSONA_PROFILE``, ...), then the defaults below.
All state lives under ``home``; nothing is created at import.

Every ``PERSONA_*`` variable is a field here: :func:`load_settings` refuses one it does not
know (naming the closest valid one), so a misspelt knob fails instead of being ignored. The
``${PERSONA_*}`` names in ``feature_repo/feature_store*.yaml`` are these fields too, exported by
:meth:`Settings.feast_env` for Feast to expand. Test and benchmark harnesses only set these
fields (a scratch ``PERSONA_HOME``, the prod stack's names) for the code and processes they run. This
module is also the one place below the app that changes the process environment
(:func:`environ_defaults`), for libraries that read their knobs only from there.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import catalog
from core.errors import PersonaError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

ENV_PREFIX = "PERSONA_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
FEATURE_REPO_DIR = PROJECT_ROOT / "feature_repo"


class Settings(BaseSettings):
    """Settings shared by every Persona job (see README, "Settings")."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=True
    )

    home: Path = Field(
        default=PROJECT_ROOT / ".persona",
        description="Directory holding all state: data, quarantine, stores, MLflow, reports.",
    )
    profile: Literal["local", "prod"] = Field(
        default="local", description="local: embedded SQLite/parquet; prod: Redis/Postgres/MLflow server."
    )
    snapshot_every_days: int = Field(default=7, ge=1, le=366, description="Days between feature snapshots.")
    horizon_days: int = Field(default=90, ge=1, le=3650, description="Label horizon in days.")
    project: str = Field(default="persona", pattern=r"^[a-z][a-z0-9_]*$", description="Feast project name.")
    registered_model: str = Field(default="persona", min_length=1, description="MLflow registered model name.")
    currency: str = Field(default="$", min_length=1, max_length=8,
                          description="Written before money figures in reports (persona cards): $, €, EUR, ...")
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="Tracking URI; default: SQLite under home (local) or the MLflow server on mlflow_port (prod).",
    )
    postgres_host: str = Field(default="127.0.0.1", min_length=1)
    postgres_port: int = Field(default=5432, ge=1, le=65535)
    postgres_db: str = Field(default="persona", min_length=1)
    postgres_user: str = Field(default="postgres", min_length=1)
    postgres_password: str = ""
    postgres_sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    redis_host: str = Field(default="127.0.0.1", min_length=1)
    redis_port: int = Field(default=6379, ge=1, le=65535)
    mlflow_port: int = Field(default=5000, ge=1, le=65535)
    mlflow_username: str = Field(
        default="persona", min_length=1, description="Admin user of the prod MLflow server (basic auth)."
    )
    mlflow_password: SecretStr | None = Field(
        default=None, description="Its password (prod: required, at least 12 characters); never written to disk."
    )
    api_key: str | None = Field(default=None, description="API key for the serving endpoints (optional).")
    serving_auth: Literal["auto", "on", "off"] = Field(
        default="auto", description="auto: a key is required in prod; on: always; off: a gateway authenticates.",
    )
    model_poll_seconds: float = Field(
        default=10.0, gt=0, allow_inf_nan=False, description="Seconds between the server's checks for a new champion."
    )
    online_store_timeout_seconds: float = Field(
        default=0.3, gt=0, le=60, allow_inf_nan=False, description="Connect and read timeout of one online-store call."
    )
    max_amount: float = Field(
        default=1e7, gt=0, allow_inf_nan=False,
        description="Largest plausible transaction amount; ingest quarantines larger ones (one typo or "
        "attack must not dominate every sum).",
    )
    max_quantity: float = Field(
        default=1e6, gt=0, allow_inf_nan=False,
        description="Largest plausible transaction quantity; ingest quarantines larger ones.",
    )
    erasure_salt: str | None = Field(
        default=None, min_length=16,
        description="Salt of the erased-id hashes (default: a random one kept 0600 under the home).",
    )
    materialize_batch_rows: int | None = Field(
        default=None, ge=1, description="Entity rows per online-store write (default: the writer's own)."
    )
    model_signing_key: SecretStr | None = Field(
        default=None,
        description="Key that signs registered versions (default: the key file under home, local profile only).",
    )
    allow_unsigned_models: bool = Field(
        default=False, description="Local profile only: load versions registered before signing, with a warning."
    )

    whatif_feature_abs_max: float = Field(
        default=1e12, gt=0, le=1e300, allow_inf_nan=False,
        description="Largest |value| of a what-if feature (predict_features); beyond it: 400 naming the field.",
    )
    whatif_feature_sigma_margin: float = Field(
        default=1000.0, gt=0, allow_inf_nan=False,
        description="What-if values farther than this many training standard deviations from the training "
        "mean (where the model records them) are refused with 400.",
    )
    serving_max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, le=1024 * 1024,
        description="Largest request head (request line and headers) the server reads; beyond it: 431.",
    )
    serving_header_timeout_seconds: float = Field(
        default=10.0, gt=0, le=3600, allow_inf_nan=False,
        description="Time a client has to send its whole request head; then 408 and the connection is closed.",
    )
    serving_body_timeout_seconds: float = Field(
        default=10.0, gt=0, le=3600, allow_inf_nan=False,
        description="Longest wait for the next chunk of a request body; then 408 and the connection is closed.",
    )
    serving_max_connections: int = Field(
        default=1000, ge=1, le=1_000_000,
        description="Open connections the server holds at once; beyond it new requests get 503.",
    )
    prediction_log_fsync: bool = Field(
        default=False,
        description="fsync the prediction log's write-ahead file per request (survives a power loss, slower); "
        "without it a killed server process still loses nothing it answered.",
    )

    engine: Literal["local", "ray"] = Field(
        default="local",
        description="Where the heavy steps run: local (in this process) or ray (partitioned by customer as Ray "
        "tasks; same answers).",
    )
    ray_address: str = Field(
        default="",
        description="The Ray cluster of engine ray: empty starts a local Ray; auto joins the one on this machine; "
        "ray://host:port (Ray client) or host:port (the head's GCS) joins that cluster.",
    )

    feature_repo: Path = Field(
        default=FEATURE_REPO_DIR,
        description="Folder of the user's Feast definitions, parsed together with Persona's packaged ones "
        "(default: the packaged feature_repo/ alone).",
    )

    @field_validator("allow_unsigned_models")
    @classmethod
    def _no_unsigned_in_prod(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("profile") == "prod":
            raise ValueError("is for the local profile only; the prod profile loads signed versions only")
        return value

    @field_validator("home", mode="before")
    @classmethod
    def _home_given(cls, value: object) -> object:
        # Path("") is the current directory: an empty PERSONA_HOME would scatter state there.
        if isinstance(value, str | Path) and not str(value).strip():
            raise ValueError("must not be empty (it would write into the current directory)")
        return value

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("feature_repo", mode="before")
    @classmethod
    def _repo_given(cls, value: object) -> object:
        # Path("") is the current directory: an empty PERSONA_FEATURE_REPO would parse whatever is there.
        if isinstance(value, str | Path) and not str(value).strip():
            raise ValueError("must not be empty (name the folder holding your feature views)")
        return value

    @field_validator("feature_repo")
    @classmethod
    def _absolute_repo(cls, value: Path) -> Path:
        return value.expanduser().resolve()


    @field_validator("engine", mode="before")
    @classmethod
    def _engine_name(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("ray_address")
    @classmethod
    def _ray_address(cls, value: str) -> str:
        value = value.strip()
        if value in ("", "auto"):
            return value
        host, sep, port = value.removeprefix("ray://").rpartition(":")
        if not sep or not host or "/" in host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected empty (start a local Ray), auto, ray://host:port or host:port")
        return value

    @field_validator("api_key", mode="before")
    @classmethod
    def _key_given(cls, value: object) -> object:
        # a key of spaces (a stray newline from a secrets file) is no key: strip, empty -> None
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("serving_auth", mode="before")
    @classmethod
    def _auth_mode(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    # ---- derived locations (pure path arithmetic, nothing is created) ----
    @cached_property
    def raw_dir(self) -> Path:
        """Accepted rows per contract table, deduplicated (``<table>.parquet``)."""
        return self.home / "data" / "raw"

    @cached_property
    def quarantine_dir(self) -> Path:
        """Rejected rows per table with a ``reason`` column."""
        return self.home / "data" / "quarantine"

    @cached_property
    def offline_dir(self) -> Path:
        """Offline feature sources read by Feast (parquet)."""
        return self.home / "offline"

    @cached_property
    def feast_dir(self) -> Path:
        """Feast registry and SQLite online store (local profile)."""
        return self.home / "feast"

    @cached_property
    def embeddings_dir(self) -> Path:
        """Text embedding cache."""
        return self.home / "embeddings"

    @cached_property
    def mlflow_dir(self) -> Path:
        """MLflow SQLite backend and artifacts (local profile)."""
        return self.home / "mlflow"

    @cached_property
    def reports_dir(self) -> Path:
        """HTML/JSON reports (persona cards, drift reports, benchmarks)."""
        return self.home / "reports"

    @cached_property
    def serving_dir(self) -> Path:
        """Prediction log and serving state."""
        return self.home / "serving"

    @property
    def feature_store_yaml(self) -> Path:
        """The Feast config for this profile: the user's folder's own yaml if it has one, else the packaged one."""
        name = "feature_store.yaml" if self.profile == "local" else "feature_store.prod.yaml"
        own = self.feature_repo / name
        return own if own.is_file() else FEATURE_REPO_DIR / name

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI for this profile."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        if self.profile == "prod":
            return f"http://127.0.0.1:{self.mlflow_port}"
        return f"sqlite:///{catalog.mlflow_db(self)}"

    @property
    def artifact_root(self) -> str:
        """Where MLflow stores artifacts in the local profile."""
        return catalog.mlflow_artifacts(self).as_uri()

    def feast_env(self) -> dict[str, str]:
        """Environment variables that ``feature_store*.yaml`` expands."""
        return {
            "PERSONA_HOME": str(self.home),
            "PERSONA_PROJECT": self.project,
            "PERSONA_POSTGRES_HOST": self.postgres_host,
            "PERSONA_POSTGRES_PORT": str(self.postgres_port),
            "PERSONA_POSTGRES_DB": self.postgres_db,
            "PERSONA_POSTGRES_USER": self.postgres_user,
            "PERSONA_POSTGRES_PASSWORD": self.postgres_password,
            "PERSONA_POSTGRES_SSLMODE": self.postgres_sslmode,
            "PERSONA_REDIS_HOST": self.redis_host,
            "PERSONA_REDIS_PORT": str(self.redis_port),
        }


def env_name(field: str) -> str:
    """The environment variable of a settings field (``home`` -> ``PERSONA_HOME``)."""
    return f"{ENV_PREFIX}{field.upper()}"


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """The ``PERSONA_*`` names in ``environ`` that are no settings field (sorted)."""
    known = {env_name(name) for name in Settings.model_fields}
    return sorted(name for name in environ if name.upper().startswith(ENV_PREFIX) and name.upper() not in known)


def _check_environment(environ: Mapping[str, str]) -> None:
    unknown = unknown_variables(environ)
    if not unknown:
        return
    name = unknown[0]
    known = sorted(env_name(field) for field in Settings.model_fields)
    close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"valid names: {', '.join(known)}"
    raise PersonaError(f"unknown setting {name}; {hint}")


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one readable line.

    Raises:
        PersonaError: an unknown ``PERSONA_*`` variable in the environment (naming the closest
            valid one), or naming the offending key (``PERSONA_<KEY>``) and the reason.
    """
    _check_environment(os.environ)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "?"
        raise PersonaError(
            f"bad setting PERSONA_{key.upper()}={first.get('input')!r}: {first['msg'].removeprefix('Value error, ')}"
        ) from None


def check_setting(field: str, value: object) -> object:
    """``value`` validated as settings field ``field`` would be (for a CLI option that overrides it).

    Raises:
        PersonaError: naming the setting and the reason, as :func:`load_settings` does.
    """
    from typing import Annotated

    from pydantic import TypeAdapter

    info = Settings.model_fields[field]
    adapter: TypeAdapter[object] = TypeAdapter(Annotated[info.annotation, info])  # type: ignore[arg-type]
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise PersonaError(f"bad setting {env_name(field)}={value!r}: {message}") from None


@contextlib.contextmanager
def environ_defaults(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables that are unset to ``values`` for the block, then remove them again.

    For libraries that read their knobs only from the process environment (MLflow's HTTP retries).
    A variable the user set is left alone.
    """
    missing = [name for name in values if name not in os.environ]
    os.environ.update({name: values[name] for name in missing})
    try:
        yield
    finally:
        for name in missing:
            os.environ.pop(name, None)

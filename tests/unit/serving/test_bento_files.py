"""The prod compose file, the Bento's build file and its lock: rendered and checked without a daemon."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
import yaml

from core.settings import PROJECT_ROOT, load_settings, unknown_variables
from serving.bento import BENTO_MODEL, BENTO_UPLIFT_MODEL, bento_models, in_bento, packaged_model, packaged_uplift

if TYPE_CHECKING:
    from pathlib import Path

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
REQUIRED = {"PERSONA_POSTGRES_PASSWORD": "pg-secret", "PERSONA_MLFLOW_PASSWORD": "mlflow-secret",
            "PERSONA_API_KEY": "api-key", "PERSONA_MODEL_SIGNING_KEY": "signing-key"}
# Compose's interpolation: $$, ${NAME}, ${NAME:-default}, ${NAME:?message}
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::([-?])([^}]*))?\}")


def render(text: str, env: dict[str, str]) -> str:
    """``text`` interpolated as ``docker compose config`` does (the subset the file uses)."""

    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, kind, arg = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise ValueError(f"{name}: {arg}")
        return arg if kind == "-" else ""

    return _VARIABLE.sub(value, text)


def pins(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    found = (re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line) for line in lines)
    return {m.group(1).lower(): m.group(2) for m in found if m}


def test_compose_renders_with_the_required_variables_into_the_four_prod_services() -> None:
    # when the compose file is rendered with only its required variables
    config = yaml.safe_load(render(COMPOSE.read_text(), REQUIRED))
    # then it holds the prod profile's services, every named volume declared
    services = config["services"]
    assert set(services) == {"redis", "postgres", "mlflow", "persona"}
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if not v.startswith(".")}
    assert used == set(config["volumes"])
    # MLflow runs with authentication; the Bento waits for the stores only (the registry is optional)
    assert services["mlflow"]["command"][2:4] == ["--app-name", "basic-auth"]
    assert set(services["persona"]["depends_on"]) == {"redis", "postgres"}
    for mounted in ("ops/compose/create-mlflow-db.sh", "ops/compose/basic_auth.ini"):
        assert (PROJECT_ROOT / mounted).is_file()


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_compose_refuses_to_render_without_a_required_variable_naming_it(missing: str) -> None:
    env = {name: value for name, value in REQUIRED.items() if name != missing}
    with pytest.raises(ValueError, match=f"{missing}: set {missing}"):
        render(COMPOSE.read_text(), env)


def test_the_bentos_environment_is_valid_prod_settings_pointing_at_the_compose_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given the Bento's environment as compose renders it
    env = yaml.safe_load(render(COMPOSE.read_text(), REQUIRED))["services"]["persona"]["environment"]
    # then every variable is a setting, and together they are valid prod settings at the services' names
    assert unknown_variables(env) == []
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    settings = load_settings()
    assert settings.profile == "prod"
    assert (settings.redis_host, settings.postgres_host) == ("redis", "postgres")
    assert settings.tracking_uri == "http://mlflow:5000"
    assert settings.postgres_password == REQUIRED["PERSONA_POSTGRES_PASSWORD"]


def test_every_variable_the_compose_file_reads_is_documented_in_its_header() -> None:
    text = COMPOSE.read_text()
    header = text[: text.index("name: persona")]
    read = {m.group(1) for m in _VARIABLE.finditer(text) if m.group(1)} - {"POSTGRES_USER", "POSTGRES_DB"}
    assert read, "no variable found: the pattern is wrong"
    assert {name for name in read if name not in header} == set()


def test_the_serving_lock_pins_the_main_locks_versions_without_torch() -> None:
    # given the Bento's lock and the project's
    serving, main = pins(PROJECT_ROOT / "serving" / "requirements.lock"), pins(PROJECT_ROOT / "requirements.lock")
    # then every serving package is pinned at the main lock's version, and the heavy text stack is left out
    assert {name: version for name, version in serving.items() if main.get(name) != version} == {}
    assert {"bentoml", "feast", "mlflow", "xgboost", "redis"} <= set(serving)
    assert not {"torch", "sentence-transformers"} & set(serving)
    # and the compose file's MLflow image installs the lock's versions too
    dockerfile = (PROJECT_ROOT / "ops" / "compose" / "mlflow.Dockerfile").read_text()
    for name in ("mlflow", "psycopg"):
        assert re.search(rf'"{name}(\[\w+\])?=={re.escape(main[name])}"', dockerfile), name


def test_the_bentofile_packages_the_champion_model_and_the_serving_lock() -> None:
    bentofile = yaml.safe_load((PROJECT_ROOT / "serving" / "bentofile.yaml").read_text())
    assert bentofile["models"] == [f"{BENTO_MODEL}:latest"]
    assert bentofile["python"]["requirements_txt"] == "serving/requirements.lock"
    assert "serving/requirements.lock" in bentofile["include"]


def test_the_service_knows_a_built_bento_by_its_manifest(tmp_path: Path) -> None:
    # given a service file inside a Bento's src folder, and one in a checkout
    service = tmp_path / "bento" / "src" / "serving" / "service.py"
    service.parent.mkdir(parents=True)
    service.touch()
    (tmp_path / "bento" / "bento.yaml").write_text("name: persona\n")
    # then only the first runs from a Bento
    assert in_bento(service)
    assert not in_bento(PROJECT_ROOT / "serving" / "service.py")


def test_a_served_bento_loads_the_models_its_manifest_names_not_the_stores_latest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving import bento

    # given a Bento built with one churn champion and no uplift model, in a store holding later imports of both
    service = tmp_path / "bento" / "src" / "serving" / "service.py"
    service.parent.mkdir(parents=True)
    (tmp_path / "bento" / "bento.yaml").write_text(yaml.safe_dump(
        {"name": "persona", "models": [{"tag": f"{BENTO_MODEL}:built", "module": "", "creation_time": ""}]}))
    asked: list[str] = []

    def get(tag: str) -> SimpleNamespace:
        asked.append(tag)
        labels = {"registered_model": "persona", "version": tag.split(":")[1]}
        return SimpleNamespace(path=str(tmp_path), info=SimpleNamespace(labels=labels, metadata={"tags": {}}))

    monkeypatch.setattr(bento, "_stored_model", get)
    # when the service reads what it packaged
    models = bento_models(service)
    churn, uplift = packaged_model(models), packaged_uplift(models)
    # then the churn champion is the one it was built with, and no uplift model is taken from the store
    assert models == {BENTO_MODEL: f"{BENTO_MODEL}:built"}
    assert churn.version == "built"
    assert uplift is None
    assert asked == [f"{BENTO_MODEL}:built"]
    # while a Bento built with the uplift champion gets exactly that one
    with_uplift = {**models, BENTO_UPLIFT_MODEL: f"{BENTO_UPLIFT_MODEL}:packaged"}
    assert packaged_uplift(with_uplift).version == "packaged"  # type: ignore[union-attr]

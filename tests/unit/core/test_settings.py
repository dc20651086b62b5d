"""Settings: every ``PERSONA_*`` variable is a validated field; an unknown one is an error."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from core.errors import PersonaError
from core.settings import Settings, env_name, environ_defaults, load_settings

if TYPE_CHECKING:
    from pathlib import Path


def test_a_misspelt_variable_fails_naming_the_closest_valid_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a typo in the environment
    monkeypatch.setenv("PERSONA_HOEM", "/tmp/elsewhere")

    # when settings load
    # then it is one line naming the closest valid name
    with pytest.raises(PersonaError, match=r"^unknown setting PERSONA_HOEM; did you mean PERSONA_HOME\?$"):
        load_settings()


def test_every_field_is_a_valid_variable(monkeypatch: pytest.MonkeyPatch, persona_home: Path) -> None:
    # given a valid variable for a non-default value
    monkeypatch.setenv("PERSONA_MODEL_POLL_SECONDS", "2.5")
    monkeypatch.setenv("PERSONA_SERVING_AUTH", " Off ")

    # when settings load
    settings = load_settings()

    # then they carry it, and each field has its PERSONA_ name
    assert settings.home == persona_home.resolve()
    assert settings.model_poll_seconds == 2.5
    assert settings.serving_auth == "off"
    assert env_name("model_poll_seconds") == "PERSONA_MODEL_POLL_SECONDS"
    assert all(env_name(name).startswith("PERSONA_") for name in Settings.model_fields)


def test_an_empty_home_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # given PERSONA_HOME set but empty (it would resolve to the current directory)
    monkeypatch.setenv("PERSONA_HOME", "")

    # when settings load
    # then it is refused with the key
    with pytest.raises(PersonaError, match="PERSONA_HOME=''.*must not be empty"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [("PERSONA_MODEL_POLL_SECONDS", "0"), ("PERSONA_MODEL_POLL_SECONDS", "nan"),
     ("PERSONA_MODEL_POLL_SECONDS", "inf"), ("PERSONA_SERVING_AUTH", "maybe"),
     ("PERSONA_ONLINE_STORE_TIMEOUT_SECONDS", "-1")],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    # given a value out of range or not finite
    monkeypatch.setenv(name, value)

    # when settings load
    # then the error names the variable
    with pytest.raises(PersonaError, match=f"bad setting {name}="):
        load_settings()


def test_environ_defaults_fill_only_unset_variables_for_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    # given one variable set by the user and one unset
    monkeypatch.setenv("SETTINGS_TEST_SET", "user")
    monkeypatch.delenv("SETTINGS_TEST_UNSET", raising=False)

    # when defaults apply for a block
    with environ_defaults({"SETTINGS_TEST_SET": "default", "SETTINGS_TEST_UNSET": "default"}):
        inside = (os.environ["SETTINGS_TEST_SET"], os.environ["SETTINGS_TEST_UNSET"])

    # then the user's value wins and the default is gone afterwards
    assert inside == ("user", "default")
    assert "SETTINGS_TEST_UNSET" not in os.environ


@pytest.mark.parametrize(
    ("engine", "address"),
    [("ray", ""), ("RAY", "auto"), ("ray", "ray://head.example:10001"), ("ray", "10.0.0.5:6379"), ("local", "")],
)
def test_engine_and_ray_address_accept_each_documented_form(
    monkeypatch: pytest.MonkeyPatch, engine: str, address: str
) -> None:
    # given an engine and a cluster address in one of the forms the README lists
    monkeypatch.setenv("PERSONA_ENGINE", engine)
    monkeypatch.setenv("PERSONA_RAY_ADDRESS", f" {address} ")

    # when settings load
    settings = load_settings()

    # then they carry them, trimmed
    assert settings.engine == engine.lower()
    assert settings.ray_address == address


@pytest.mark.parametrize(
    ("name", "value"),
    [("PERSONA_ENGINE", "spark"), ("PERSONA_RAY_ADDRESS", "head"), ("PERSONA_RAY_ADDRESS", "ray://head"),
     ("PERSONA_RAY_ADDRESS", "head:0"), ("PERSONA_RAY_ADDRESS", "http://head:8265"),
     ("PERSONA_RAY_ADDRESS", "head:port")],
)
def test_a_bad_engine_or_ray_address_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    # given an unknown engine or a cluster address without a port
    monkeypatch.setenv(name, value)

    # when settings load
    # then the error names the variable
    with pytest.raises(PersonaError, match=f"bad setting {name}="):
        load_settings()

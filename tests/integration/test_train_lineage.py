"""A training run reads well in MLflow: a readable name and its train and holdout sets as inputs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from core.settings import load_settings
from model.registry import configure_mlflow

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


def test_the_champions_run_has_a_readable_name_and_its_datasets_with_digests(champion_home: Path) -> None:
    # given the run that trained champion v1
    settings = load_settings(home=champion_home)
    client = configure_mlflow(settings)
    run = client.get_run(client.get_model_version(settings.registered_model, "1").run_id)
    # then its name says the features, the data's end and the verdict
    assert re.fullmatch(r"\w+ to \d{4}-\d{2}-\d{2} (promoted|challenger)", run.info.run_name), run.info.run_name
    # and it logged the train and holdout sets with their contexts and digests
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "holdout"}
    assert [t.value for t in inputs["train"].tags if t.key == "mlflow.data.context"] == ["training"]
    assert [t.value for t in inputs["holdout"].tags if t.key == "mlflow.data.context"] == ["evaluation"]
    assert all(len(i.dataset.digest) >= 8 for i in inputs.values())
    assert inputs["train"].dataset.digest != inputs["holdout"].dataset.digest

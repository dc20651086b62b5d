"""MLflow models-from-code entry point for the Persona bundle.

MLflow copies this file into the logged model and executes it on load; it is never imported
by Persona itself. The fitted state lives in the ``bundle`` artifact (JSON + XGBoost JSON).
"""

import mlflow.models

from model.bundle import PersonaBundle

mlflow.models.set_model(PersonaBundle())

"""Where the Persona bundle lived before it moved to :mod:`model.bundle`.

Model versions registered before the move carry an entry point that runs
``from training.bundle import PersonaBundle``; this module keeps them loading. New code
imports :mod:`model.bundle`.
"""

from model.bundle import PersonaBundle, PersonaPredictor, load_predictor

__all__ = ["PersonaBundle", "PersonaPredictor", "load_predictor"]

"""Config composition (Hydra), schema (dataclasses) and validation. No TensorFlow here."""
from dlrun.config.compose import compose, conf_dir, normalize_overrides
from dlrun.config.validation import validate

__all__ = ["compose", "conf_dir", "normalize_overrides", "validate"]

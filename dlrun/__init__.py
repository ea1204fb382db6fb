"""dlrun: a config-driven deep-learning experiment runner (Hydra YAML in, Keras models out)."""
__version__ = "0.1.0"

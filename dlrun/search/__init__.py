"""Hyperparameter search with keras-tuner: spaces, the hypermodel, tuners, the runner."""

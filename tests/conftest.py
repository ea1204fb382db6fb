"""Fixtures shared by every test (helpers live in tests/helpers.py)."""
from __future__ import annotations

import os
import random

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)


@pytest.fixture(autouse=True, scope="session")
def _fake_mnist_cache(tmp_path_factory) -> None:
    """A tiny MNIST-shaped file where keras.datasets caches MNIST, so that no test
    ever downloads it (data=mnist reads $KERAS_HOME/datasets/mnist.npz)."""
    home = tmp_path_factory.mktemp("keras_home")
    (home / "datasets").mkdir()
    rng = np.random.default_rng(0)
    np.savez(home / "datasets" / "mnist.npz",
             x_train=rng.integers(0, 256, (300, 28, 28), dtype="uint8"), y_train=np.arange(300) % 10,
             x_test=rng.integers(0, 256, (60, 28, 28), dtype="uint8"), y_test=np.arange(60) % 10)
    os.environ["KERAS_HOME"] = str(home)


@pytest.fixture(autouse=True, scope="session")
def _registry_home(tmp_path_factory) -> None:
    """Runs register themselves in $DLRUN_HOME/.registry: keep the tests' runs out of
    the checkout's experiments/ (a test that reads the registry sets its own)."""
    os.environ["DLRUN_HOME"] = str(tmp_path_factory.mktemp("dlrun_home"))

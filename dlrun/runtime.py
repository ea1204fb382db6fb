"""Importing TensorFlow quietly, and only when a run really needs it."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ start-up lines (CUDA
    probing, oneDNN notices) are printed before its log level is read."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> Any:
    """Import TensorFlow and Keras once, without start-up noise on the terminal
    (set DLRUN_TF_LOGS=1 to see it)."""
    if "keras" in sys.modules and "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ.get("DLRUN_TF_LOGS") == "1":
        import keras  # noqa: F401
        import tensorflow as tf
        return tf
    with _stderr_silenced():
        import keras  # noqa: F401
        import tensorflow as tf
        tf.config.list_physical_devices()  # the CUDA probe logs here
    tf.get_logger().setLevel("ERROR")  # e.g. retracing notices when a search builds many models
    return tf

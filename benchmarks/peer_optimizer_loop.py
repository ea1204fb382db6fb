"""Peer for bench_compare.py: the optimizer comparison written by hand, the way a
lesson's notebook does it: for each of the 10 optimizers and 3 seeds, build the same
MLP (Dense 256 relu, softmax) and `model.fit(numpy)` for EPOCHS epochs at batch size 32
(full batch for GD) on digits (70/10/20 split, standardised), then print the test
accuracy. It writes nothing and aggregates nothing: the lower bound of a loop.

    python benchmarks/peer_optimizer_loop.py [EPOCHS]
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
start = time.perf_counter()
import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
X, y = load_digits(return_X_y=True)
Xrest, Xte, yrest, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
Xtr, Xva, ytr, yva = train_test_split(Xrest, yrest, test_size=0.125, random_state=0, stratify=yrest)
scaler = StandardScaler().fit(Xtr)
Xtr, Xva, Xte = (scaler.transform(a).astype("float32") for a in (Xtr, Xva, Xte))
O = keras.optimizers
OPTIMIZERS = {"gd": lambda: O.SGD(0.01), "sgd": lambda: O.SGD(0.01), "momentum": lambda: O.SGD(0.01, momentum=0.9),
              "nesterov": lambda: O.SGD(0.01, momentum=0.9, nesterov=True), "adagrad": lambda: O.Adagrad(0.01),
              "adadelta": lambda: O.Adadelta(1.0), "rmsprop": lambda: O.RMSprop(0.001), "adam": lambda: O.Adam(0.001),
              "adamw": lambda: O.AdamW(0.001, weight_decay=0.004), "nadam": lambda: O.Nadam(0.001)}
for seed in range(3):
    for name, make in OPTIMIZERS.items():
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer=make(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(Xtr, ytr, validation_data=(Xva, yva), epochs=EPOCHS, verbose=0,
                  batch_size=len(Xtr) if name == "gd" else 32)
        print(f"{name} seed {seed} test_acc {model.evaluate(Xte, yte, verbose=0)[1]:.4f}", flush=True)
        keras.backend.clear_session()
print(f"total {time.perf_counter() - start:.1f}s")

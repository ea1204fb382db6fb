"""(Copied from ../shared/peers/handwritten_tune.py.; only this note added.) Peer baseline: a hand-written keras-tuner random search, the way the
keras-tuner tutorial does it, on scikit-learn's digits. Prints wall time
and best val accuracy. Used to measure dlrun's overhead side by side."""
import os, sys, time, tempfile
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
t0 = time.perf_counter()
import numpy as np, keras, keras_tuner as kt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

trials = int(sys.argv[1]) if len(sys.argv) > 1 else 5
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
keras.utils.set_random_seed(0)
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)

def build(hp):
    m = keras.Sequential([keras.Input((64,)),
        keras.layers.Dense(hp.Int("units", 32, 256, step=32), activation="relu"),
        keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5, step=0.1)),
        keras.layers.Dense(10, activation="softmax")])
    m.compile(keras.optimizers.Adam(hp.Float("lr", 1e-4, 1e-2, sampling="log")),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m

d = tempfile.mkdtemp()
tuner = kt.RandomSearch(build, objective="val_accuracy", max_trials=trials, seed=0,
                        directory=d, project_name="p", overwrite=True)
t1 = time.perf_counter()
tuner.search(Xtr, ytr, epochs=epochs, validation_data=(Xva, yva), verbose=0, batch_size=32)
t2 = time.perf_counter()
best = tuner.oracle.get_best_trials(1)[0]
print(f"import+setup {t1-t0:.2f}s search {t2-t1:.2f}s per-trial {(t2-t1)/trials:.2f}s best_val_acc {best.score:.4f}")

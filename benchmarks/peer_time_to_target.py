"""(Copied from ../shared/peers/time_to_target.py.; only this note added.) Time to reach a target validation accuracy on digits: Keras fit with
default settings vs with the levers a runner can pull (big steps_per_execution,
tf.data cache/prefetch). Peer: scikit-learn MLPClassifier (sklearn_peer.py)."""
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, keras, tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
X, y = load_digits(return_X_y=True); X = (X / 16.0).astype("float32")
Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
TARGET = float(sys.argv[1]) if len(sys.argv) > 1 else 0.97

class Stop(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if logs["val_accuracy"] >= TARGET:
            self.model.stop_training = True; self.epoch = epoch + 1

def run(spe, use_ds, bs=32, epochs=200):
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"], steps_per_execution=spe)
    cb = Stop(); cb.epoch = None
    t = time.perf_counter()
    if use_ds:
        tr = tf.data.Dataset.from_tensor_slices((Xtr, ytr)).cache().shuffle(2048, seed=0).batch(bs).prefetch(tf.data.AUTOTUNE)
        va = tf.data.Dataset.from_tensor_slices((Xva, yva)).batch(1024).cache().prefetch(tf.data.AUTOTUNE)
        m.fit(tr, validation_data=va, epochs=epochs, verbose=0, callbacks=[cb])
    else:
        m.fit(Xtr, ytr, validation_data=(Xva, yva), epochs=epochs, batch_size=bs, verbose=0, callbacks=[cb])
    return time.perf_counter() - t, cb.epoch
for spe, ds in ((1, False), (1, True), (45, True)):
    dt, ep = run(spe, ds)
    print(f"steps_per_execution={spe:3} tf.data={ds!s:5} reached {TARGET} at epoch {ep} in {dt:.2f}s")

"""Evidence for one held-out case, measured without dlrun's diagnostics (which are off).

    .venv/bin/python benchmarks/diagnostics_cases/heldout/verify.py NAME            # reads heldout/NAME.yaml
    .venv/bin/python benchmarks/diagnostics_cases/heldout/verify.py NAME o1 o2 ...  # try overrides

Trains with `dlrun train OVERRIDES diagnostics.enabled=false trainer.verbose=0 hydra.run.dir=/tmp/heldout/NAME`,
then prints from history.csv (loss curve), metrics.json (status, test, baseline; never the
verdict/findings keys) and, when model.keras was saved, measurements on 256 training rows:
per Activation layer the fraction of units dead (ReLU: 0 for every row) or saturated (sigmoid
<0.01/>0.99, tanh |a|>0.99 for every row), and per kernel the gradient norm of the training loss,
both for the final model and for the same model rebuilt at initialisation (same seed).
"""
from __future__ import annotations

import json
import shutil
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def overrides_of(name: str, extra: list[str]) -> list[str]:
    if extra:
        return extra
    return [str(o) for o in yaml.safe_load((HERE / f"{name}.yaml").read_text())["overrides"]]


def fmt(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


def curve(run_dir: Path) -> None:
    h = pd.read_csv(run_dir / "history.csv")
    loss = h["loss"].astype(float).to_numpy()
    finite = np.isfinite(loss)
    if not finite.any():
        print(f"epochs {len(h)}  loss non-finite from epoch 1: {list(loss[:5])}")
        return
    print(f"epochs {len(h)}  loss first {fmt(loss[0])}  min {fmt(np.nanmin(loss))} (ep {int(np.nanargmin(loss)) + 1})"
          f"  max {fmt(np.nanmax(loss))} (ep {int(np.nanargmax(loss)) + 1})  last {fmt(loss[-1])}"
          f"  non-finite epochs {int((~finite).sum())}"
          + (f" (first ep {int(np.argmax(~finite)) + 1})" if (~finite).any() else ""))
    f = loss[finite]
    if len(f) > 2:
        d = np.diff(f)
        rises = d > 0.05 * np.abs(f[:-1])
        print(f"  epoch-to-epoch loss rises >5%: {int(rises.sum())}/{len(d)} ({rises.mean():.0%});"
              f"  loss at 25/50/75/100%: " + ", ".join(fmt(f[min(len(f) - 1, int(q * len(f)))]) for q in (.25, .5, .75, 1)))
    if "val_loss" in h:
        v = h["val_loss"].astype(float).to_numpy()
        if np.isfinite(v).any():
            b = int(np.nanargmin(v))
            print(f"  val_loss first {fmt(v[0])}  best {fmt(v[b])} (ep {b + 1})  last {fmt(v[-1])}"
                  f"  last/best {fmt(v[-1] / v[b]) if v[b] else 'inf'};  train loss at best-val ep {fmt(loss[b])} -> last {fmt(loss[-1])}")
    other = [c for c in h.columns if c not in ("epoch", "loss", "val_loss", "learning_rate", "epoch_time_s")]
    if other:
        print("  last row: " + ", ".join(f"{c}={fmt(float(h[c].iloc[-1]))}" for c in other))


def summary(run_dir: Path) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    keep = {k: m.get(k) for k in ("status", "failure_reason", "epochs_run", "best_epoch", "fit_time_s", "train",
                                    "val", "test", "baseline")}
    print("metrics:", json.dumps(keep, default=str))
    return m


def measure(run_dir: Path, overrides: list[str]) -> None:
    import keras
    import tensorflow as tf

    from dlrun.config import compose, validate
    from dlrun.losses import build_loss, resolved_name
    from dlrun.preflight import checked
    from dlrun.training import compile_model, setup_runtime, targets

    run = validate(compose("train", overrides))
    bundle = checked(run)[0]
    meta = bundle.meta
    x = bundle.x_train[:256].astype("float32")
    y = targets(bundle.y_train[:256], meta, resolved_name(run, meta))
    loss_fn = build_loss(run, meta)
    setup_runtime(run.trainer)
    n_train = len(bundle.x_train)
    batch = n_train if run.trainer.batch_size == "full" else int(run.trainer.batch_size)
    init = compile_model(run, meta, math.ceil(n_train / batch))
    final = keras.models.load_model(run_dir / "model.keras", compile=False) if (run_dir / "model.keras").exists() \
        else None
    for label, model in (("init", init), ("final", final)):
        if model is None:
            print(f"[{label}] no model.keras (run not completed)")
            continue
        acts = [l for l in model.layers if l.name.endswith("_act")]
        sub = keras.Model(model.inputs, [l.output for l in acts])
        outs = sub(x, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        parts = []
        for layer, a in zip(acts, outs):
            a = np.asarray(a).reshape(len(x), -1)
            kind = layer.get_config()["activation"]
            kind = kind if isinstance(kind, str) else str(kind)
            if kind in ("relu", "elu", "leaky_relu", "selu", "gelu", "swish"):
                dead = np.mean(np.all(a <= 0, axis=0)) if kind != "relu" else np.mean(np.all(a == 0, axis=0))
                parts.append(f"{layer.name}({kind}) dead(<=0 all rows) {dead:.0%} zero-acts {np.mean(a <= 0):.0%}")
            elif kind == "sigmoid":
                sat = (a < 0.01) | (a > 0.99)
                parts.append(f"{layer.name}(sigmoid) sat-units {np.mean(np.all(sat, axis=0)):.0%}"
                             f" (>=95% rows {np.mean(sat.mean(axis=0) >= 0.95):.0%}) sat-acts {sat.mean():.0%}")
            elif kind == "tanh":
                sat = np.abs(a) > 0.99
                parts.append(f"{layer.name}(tanh) sat-units {np.mean(np.all(sat, axis=0)):.0%}"
                             f" (>=95% rows {np.mean(sat.mean(axis=0) >= 0.95):.0%}) sat-acts {sat.mean():.0%}")
            else:
                parts.append(f"{layer.name}({kind})")
        print(f"[{label}] activations: " + "; ".join(parts))
        with tf.GradientTape() as tape:
            lv = loss_fn(y, model(x, training=False))  # dlrun's own loss object (regression: target units in, standardised inside)
        kernels = [w for w in model.trainable_weights if "kernel" in w.path]
        grads = tape.gradient(lv, kernels)
        gn = [float(tf.norm(g)) if g is not None else float("nan") for g in grads]
        wn = [float(tf.norm(w)) for w in kernels]
        print(f"[{label}] loss on 256 rows {float(lv):.4g}; kernel grad norms: "
              + ", ".join(f"{w.path.split('/')[0]}={g:.2e}" for w, g in zip(kernels, gn))
              + (f"; first/last ratio {gn[0] / gn[-1]:.2e}" if gn[-1] else "; last grad 0"))
        print(f"[{label}] kernel norms: " + ", ".join(f"{w.path.split('/')[0]}={n:.3g}" for w, n in zip(kernels, wn)))
        if label == "final":
            start = {w.path: np.asarray(w) for w in init.trainable_weights if "kernel" in w.path}
            moved = [np.linalg.norm(np.asarray(w) - start[w.path]) / (np.linalg.norm(start[w.path]) or 1)
                     for w in kernels if w.path in start and start[w.path].shape == tuple(w.shape)]
            print("[final] relative kernel change |W-W0|/|W0| (W0 rebuilt with the run's seed): "
                  + ", ".join(f"{w.path.split('/')[0]}={m:.2e}" for w, m in zip(kernels, moved)))


def main() -> None:
    name, extra = sys.argv[1], sys.argv[2:]
    overrides = overrides_of(name, extra)
    run_dir = Path("/tmp/heldout") / name
    cmd = [str(REPO / ".venv/bin/dlrun"), "train", *overrides, "diagnostics.enabled=false", "trainer.verbose=0",
           f"hydra.run.dir={run_dir}"]
    shutil.rmtree(run_dir, ignore_errors=True)  # no model.keras left over from an earlier try
    t = time.time()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    print(f"== {name}: {' '.join(overrides)}  (rc {p.returncode}, {time.time() - t:.1f}s wall)")
    if not (run_dir / "history.csv").exists():
        print(p.stdout[-2000:], p.stderr[-2000:])
        return
    curve(run_dir)
    summary(run_dir)
    measure(run_dir, overrides)


if __name__ == "__main__":
    main()

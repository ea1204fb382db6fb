"""Which runs can be trained as one graph, and how many at once: pure rules shared by
fused search trials (`search.fuse`) and fused study runs (`study.fuse`)."""
from __future__ import annotations

import math
from typing import Any, Optional, Tuple

from dlrun.config.schema import RunConfig

AUTO_MAX = 8              # fuse=auto: at most this many (benchmarks/bench_fused.py: the knee on 2 cores)
AUTO_MEMORY_SHARE = 0.25  # ... and as many as fit in this share of the free memory


def fusion_key(run: RunConfig, loss_name: str, epochs: int, initial_epoch: int = 0) -> Optional[Tuple]:
    """What runs trained as one graph must share: the batches (batch size, target format,
    shuffle seed, class weights), the epochs (with Hyperband, its budget and start) and
    how steps are run. None: this run cannot be fused (a second, fine-tuning phase
    recompiles its model; a distribution strategy places each model itself)."""
    from dlrun.finetune import two_phases
    from dlrun.training import pipeline_key

    t = run.trainer
    if two_phases(run) or t.strategy != "none":
        return None
    return (*pipeline_key(run, loss_name), int(epochs), int(initial_epoch), str(t.steps_per_execution),
            t.mixed_precision)


def auto_fuse(branch_bytes: float, free_bytes: float, trials_left: Optional[int]) -> int:
    """fuse=auto: as many branches as fit AUTO_MEMORY_SHARE of the free memory, at most
    AUTO_MAX and no more than the trials left; at least 1."""
    fit = int(AUTO_MEMORY_SHARE * free_bytes // max(branch_bytes, 1.0))
    k = max(1, min(AUTO_MAX, fit))
    return max(1, min(k, trials_left)) if trials_left else k


def branch_bytes(model: Any, batch_size: int) -> float:
    """A branch's training memory, roughly: weights, gradients and two optimizer slots
    (4 copies of the parameters) plus each layer's output for a batch, kept for the
    backward pass (3 copies), in float32."""
    params = model.count_params()
    activations = 0
    for layer in model.layers:
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        activations += math.prod(int(d) for d in shape[1:] if d is not None)
    return 4.0 * (4 * params + 3 * batch_size * activations)


def free_memory() -> float:
    """Bytes of memory available now (MemAvailable; the total where it cannot be read)."""
    import os

    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))

"""Run every benchmark and rewrite benchmarks/RESULTS.md (`make bench`)."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys

from common import HERE, PYTHON, machine

SCRIPTS = ["bench_startup.py", "bench_time_to_target.py", "bench_search.py", "bench_hyperband.py", "bench_memory.py",
           "bench_parallel.py", "bench_tabular.py", "bench_compare.py", "bench_diagnostics.py", "bench_explain.py",
           "bench_images.py", "bench_attention.py", "bench_fused.py"]


def main() -> None:
    sections = []
    for script in SCRIPTS:
        print(f"running {script} ...", file=sys.stderr, flush=True)
        out = subprocess.run([PYTHON, str(HERE / script)], capture_output=True, text=True, cwd=HERE)
        sections.append(out.stdout if out.returncode == 0 else f"### {script} failed\n\n```\n{out.stderr[-3000:]}\n```\n")
    text = (f"# Benchmark results\n\nRewritten by `make bench` on {dt.date.today()}: {machine()}.\n"
            "Every number comes from the scripts in this folder, run side by side in one session; "
            "ratios matter more than absolute times.\n\n" + "\n".join(sections))
    (HERE / "RESULTS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

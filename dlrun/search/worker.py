"""A local worker of a distributed search, started by the chief (`search.workers=N`):

    python -m dlrun.search.worker RUN_DIR/workers/search.pkl THREADS

The chief hands over its validated search and prepared data in that file, so a worker
skips composing, validating and loading (half of its start-up) and cannot drift from
the chief's config if a YAML file changes mid-search. It then runs the same trial loop
as a worker on another machine (`dlrun tune` with keras-tuner's environment variables,
dlrun.search.runner.work)."""
from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m dlrun.search.worker STATE_FILE THREADS (started by dlrun tune search.workers=N)",
              file=sys.stderr)
        return 2
    state, threads = Path(args[0]), int(args[1])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from dlrun.display import error
    from dlrun.errors import DlrunError
    from dlrun.search.runner import work

    with open(state, "rb") as fh:
        tune, bundle = pickle.load(fh)
    tune.run.trainer.threads = threads  # this worker's share of the cores
    try:
        result = work(tune, state.parent.parent, bundle)
    except DlrunError as err:
        error(str(err))
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    print(result.message)
    return 0


if __name__ == "__main__":
    sys.exit(main())

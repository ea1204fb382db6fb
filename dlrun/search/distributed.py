"""Parallel trials on keras-tuner's own distributed mode: one chief oracle that
picks values and N worker processes that train them, talking gRPC.

keras-tuner decides a process's role from its environment (`KERASTUNER_TUNER_ID`,
`KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`): `chief` serves the oracle, any
other id is a worker that asks it for trials. dlrun keeps that contract, so a
worker on another machine is the same `dlrun tune` command with those variables
set. What dlrun adds around it:

- `search.workers=N` starts N local workers (`python -m dlrun.search.worker`, handed
  the chief's validated search and prepared data), splits the CPU threads between
  them and shuts every one down on success, failure or Ctrl-C;
- the chief serves keras-tuner's own `OracleServicer` but owns the server's
  lifetime (keras-tuner's `start_server` polls for the end every 20 s, and a
  failure limit reached inside the servicer would kill the worker that reported it);
- a worker whose chief is gone (killed, crashed) exits instead of waiting an hour
  for it (keras-tuner's client timeout);
- the reason a trial failed travels in a file beside the trial (keras-tuner's
  protocol carries the status but not the message).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from dlrun.search.fused import slot_owner

ENV_ID, ENV_IP, ENV_PORT = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"
ENV_CHIEF_PID = "DLRUN_CHIEF_PID"  # set on local workers: they exit when this process is gone
FAILURE_FILE = "failure.txt"       # beside keras-tuner's trial.json: why the trial failed
WORKER_DIR = "workers"             # in the run folder: the local workers' logs and the state they start from
WORKER_STATE = "search.pkl"        # the chief's TuneConfig and DataBundle, pickled for its local workers
STOP_GRACE_S = 20.0                # how long finished workers get to exit before they are terminated


def role() -> str:
    """'chief', 'worker' (keras-tuner's environment variables say so) or 'local'."""
    if not os.environ.get(ENV_IP):
        return "local"
    return "chief" if "chief" in os.environ.get(ENV_ID, "") else "worker"


def check_environment() -> None:
    """keras-tuner needs all three variables once KERASTUNER_ORACLE_IP is set."""
    from dlrun.errors import ConfigError

    if os.environ.get(ENV_IP):
        for name in (ENV_PORT, ENV_ID):
            if not os.environ.get(name):
                raise ConfigError(name, None, f"must be set with {ENV_IP} (keras-tuner's distributed mode: "
                                  f"{ENV_ID}=chief on the chief, tuner0, tuner1, ... on the workers)")
        port = os.environ[ENV_PORT]
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(ENV_PORT, port, "must be a port number in [1, 65535]")


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host if host != "0.0.0.0" else "", 0))
        return int(sock.getsockname()[1])


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: Optional[int] = None) -> int:
    """Split the cores between the workers (at least one thread each)."""
    return max(1, (cores or cpu_count()) // max(1, workers))


def failure_path(trial_dir: Path) -> Path:
    return Path(trial_dir) / FAILURE_FILE


def read_failure(trial_dir: Path) -> Optional[str]:
    with contextlib.suppress(OSError):
        return failure_path(trial_dir).read_text().strip() or None
    return None


# ----------------------------------------------------------------- the chief
@dataclass
class Worker:
    tuner_id: str
    process: subprocess.Popen
    log: Path

    def exit_code(self) -> Optional[int]:
        return self.process.poll()


@dataclass
class Chief:
    """keras-tuner's OracleServicer on a gRPC server whose lifetime dlrun owns, and the
    local workers (started first: they wait for the server while they import TensorFlow)."""
    host: str
    port: int
    oracle: Any = None
    server: Any = None
    servicer: Any = None
    workers: List[Worker] = field(default_factory=list)
    state: Optional[Path] = None  # the pickled search the local workers start from

    def start(self, oracle: Any) -> "Chief":
        import grpc
        from concurrent import futures

        from keras_tuner.src import protos
        from keras_tuner.src.distribute.oracle_chief import OracleServicer

        # One thread, as keras-tuner's own server: the oracle is not built for concurrent calls.
        self.oracle = oracle
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        self.servicer = OracleServicer(self.oracle)
        protos.get_service_grpc().add_OracleServicer_to_server(self.servicer, self.server)
        bound = self.server.add_insecure_port(f"{self.host}:{self.port}")
        if not bound:
            from dlrun.errors import DlrunError
            raise DlrunError(f"cannot listen on {self.host}:{self.port} for the chief oracle (port in use?); "
                             "choose another with search.port=PORT (0: a free one)")
        self.server.start()
        return self

    @property
    def finished(self) -> bool:
        """The oracle has handed out its last trial and every trial has ended."""
        return bool(self.servicer and self.servicer.stop_triggered) and not self.oracle.ongoing_trials

    def spawn(self, count: int, state: Path, threads: int) -> None:
        """Start `count` local workers on the search pickled in `state`, with keras-tuner's
        worker environment; each logs to tunerK.log beside `state`."""
        log_dir, self.state = state.parent, state
        connect = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        for i in range(count):
            tuner_id = f"tuner{len(self.workers)}"
            env = {**os.environ, ENV_ID: tuner_id, ENV_IP: connect, ENV_PORT: str(self.port),
                   ENV_CHIEF_PID: str(os.getpid()), "TF_CPP_MIN_LOG_LEVEL": "3",
                   "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
            log = log_dir / f"{tuner_id}.log"
            with open(log, "ab") as fh:
                # A session of its own: Ctrl-C reaches the chief only, which then stops the workers in order.
                process = subprocess.Popen([sys.executable, "-m", "dlrun.search.worker", str(state), str(threads)], env=env,
                                           stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                           start_new_session=True)
            self.workers.append(Worker(tuner_id, process, log))

    def fail_dead_workers_trials(self) -> List[str]:
        """A worker that died mid-trial leaves its trial running forever: end it as failed."""
        from keras_tuner.src.engine import trial as trial_module

        ended = []
        for worker in self.workers:
            code = worker.exit_code()
            if code is None:
                continue
            # a fused worker runs several trials at once, each under a slot id of its own
            mine = [t for tuner_id, t in list(self.oracle.ongoing_trials.items())
                    if slot_owner(tuner_id) == worker.tuner_id]
            for trial in mine:
                trial.status = trial_module.TrialStatus.FAILED
                trial.message = (f"worker {worker.tuner_id} exited with code {code} during the trial "
                                 f"(see {worker.log})")
                self.oracle.end_trial(trial)
                ended.append(trial.trial_id)
        return ended

    def all_workers_gone(self) -> bool:
        return bool(self.workers) and all(w.exit_code() is not None for w in self.workers)

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Let finished workers exit, terminate the rest, then stop the server."""
        deadline = time.monotonic() + grace
        for worker in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        self.terminate_workers()
        if self.state is not None:  # a copy of the data: not worth keeping once no worker needs it
            self.state.unlink(missing_ok=True)
        if self.server is not None:
            self.server.stop(grace=1).wait(2)
            self.server = None

    def terminate_workers(self) -> None:
        for worker in self.workers:
            if worker.exit_code() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.process.pid, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait()


# ---------------------------------------------------------------- a worker
def watch_chief() -> None:
    """On a local worker: exit at once when the chief process is gone."""
    pid = os.environ.get(ENV_CHIEF_PID)
    if not pid or not pid.isdigit():
        return

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                os._exit(3)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="dlrun-chief-watch", daemon=True).start()


def describe(workers: int, host: str, port: int) -> str:
    where = f"{host}:{port}"
    local = f"{workers} local worker{'s' if workers != 1 else ''}" if workers else "no local workers"
    return (f"chief oracle on {where}, {local}; more workers: {ENV_ID}=tunerN {ENV_IP}=<this host> "
            f"{ENV_PORT}={port} dlrun tune <same overrides>")

"""Processes the lab starts that must not outlive it: a notebook's papermill on a Dask worker, and the Dask
scheduler and workers it starts on this machine (`mnist-lab bench --cluster`, tests/integration/test_cluster.py).

Each is started through `die_with_parent`: a short Python preamble asks Linux to SIGKILL it when the process
that started it ends (prctl PR_SET_PDEATHSIG), then execs the real command. An exec wrapper rather than
Popen's `preexec_fn`, which is unsafe in a process with threads (a Dask client's, a worker's). The signal
fires when the starting *thread* ends, so start such a process from a thread that outlives it (the main
thread, or the one that waits for it). Workers also get `--death-timeout`: one that loses its scheduler
after registering exits at once, but one that never reached it would otherwise retry for ever.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

DEATH_TIMEOUT = 300  # seconds a worker waits for a scheduler it cannot reach before it exits (a loaded machine
# can take a minute to start one)

# Run as `python -c _PREAMBLE PARENT_PID CMD...`. prctl(PR_SET_PDEATHSIG=1, SIGKILL=9) survives the exec. The
# parent may have died before prctl ran: then we were already handed to another parent, and nothing would
# ever kill us, so give up instead of running the command orphaned.
_PREAMBLE = ("import ctypes, os, sys\n"
             "try:\n    ctypes.CDLL(None).prctl(1, 9)\nexcept (OSError, AttributeError):\n    pass\n"
             "if os.getppid() != int(sys.argv[1]):\n    sys.exit(1)\n"
             "os.execvp(sys.argv[2], sys.argv[2:])\n")


def die_with_parent(cmd: list) -> list[str]:
    """`cmd`, wrapped so that it is killed when this process ends (unchanged off Linux, where there is no prctl)."""
    cmd = [str(c) for c in cmd]
    if not sys.platform.startswith("linux"):
        return cmd
    return [sys.executable, "-c", _PREAMBLE, str(os.getpid()), *cmd]


def dask_command(role: str, *args) -> list[str]:
    """`dask scheduler|worker ARGS` of this environment, dying with this process; a worker also gives up on a
    scheduler it cannot reach (the scheduler needs no timeout: it waits for nobody)."""
    dask = Path(sys.executable).parent / "dask"
    bound = ["--death-timeout", str(DEATH_TIMEOUT)] if role == "worker" else []
    return die_with_parent([dask, role, *args, *bound])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_cluster(folder: Path, workers=("a", "b"), env=None, timeout: float = 120):
    """A Dask scheduler and one-thread workers (no nanny: a killed worker stays dead) on 127.0.0.1, started
    as the README starts them but dying with this process, their logs in `folder`; yields (address, {name:
    worker process}). `env`: their environment variables beside this process's (None: without that variable)."""
    import psutil  # Dask's own dependency: only with a cluster
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {k: v for k, v in dict(os.environ, **(env or {})).items() if v is not None}  # None: unset it
    logs = [open(folder / f"{n}.log", "w") for n in ("scheduler", *workers)]
    procs = [subprocess.Popen(dask_command("scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"),
                              stdout=logs[0], stderr=subprocess.STDOUT, env=env)]
    started = {}
    try:
        for name, log in zip(workers, logs[1:]):
            started[name] = subprocess.Popen(dask_command("worker", address, "--nthreads", "1", "--no-nanny", "--name",
                                                          name, "--host", "127.0.0.1", "--no-dashboard"),
                                             stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)
            procs.append(started[name])
        with Client(address, timeout=timeout) as client:
            client.wait_for_workers(len(workers), timeout=timeout)
        yield address, started
    finally:
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in psutil.Process(p.pid).children(recursive=True):
                    child.kill()
            p.kill()
            p.wait()
        for log in logs:
            log.close()

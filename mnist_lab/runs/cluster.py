"""The series' jobs on a Dask cluster: `mnist-lab run --cluster tcp://host:8786`.

A worker needs mnist_lab installed (a checkout and `make setup`) and its own MNIST, but no file
system shared with the client: the client sends each job's notebook and parameters; the worker runs
it with papermill in a temporary folder, exactly as `mnist-lab run` does locally, and sends back the
executed notebook, the result file and the checkpoint, which the client writes atomically into the
output folder. So the folder's lock, resuming and the report work as they do locally.

A notebook that fails on a worker is retried by Dask (`--retries`), and a job whose worker is lost
(killed, out of memory) is rescheduled by Dask on another one; a job that keeps failing ends as a
failure of the run, with its executed notebook, as locally. Jobs on CUDA ask for a worker resource
`GPU=1` (`dask worker ... --resources GPU=1`); CPU jobs run on any worker, one per worker thread.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import torch

from .. import fetch, paths
from ..config import SMOKE_ENV, STAGE_ENV
from ..errors import LabError
from ..io import atomic_write_bytes
from ..paths import portable
from ..results import code_version, read_result
from . import nbfiles
from .execute import job_vars, papermill_command, process_env, tail_of
from .local_cluster import die_with_parent

CONNECT_SECONDS = 10
START_HINT = ("start one with `dask scheduler --host HOST` and workers with `dask worker tcp://HOST:8786 --nthreads 1` "
              "on machines with mnist_lab set up (see docs/clusters.md)")


class JobFailed(Exception):
    """A notebook that failed on a worker, with its executed notebook (bytes, or None) to show why.
    Raised there, so Dask retries it; the last one reaches the client."""

    def __init__(self, why: str, notebook: bytes | None = None):
        super().__init__(why, notebook)
        self.why, self.notebook = why, notebook

    def __str__(self):
        return self.why


def facts() -> dict:
    """What a worker's runs depend on (run on each worker when the client connects)."""
    return {"cpu": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__, "code": code_version()}


# ---- on a worker ----

_data_lock = threading.Lock()
_data_ready: dict[str, str] = {}


def _worker_data(wanted: str) -> str:
    """The MNIST folder for this worker's runs, as a notebook parameter: the client's (when this machine
    has it at the same place), else this machine's default; fetched and verified once per process."""
    with _data_lock:
        if wanted not in _data_ready:
            root = paths.data_root(wanted) if wanted else fetch.default_root()
            if fetch.problems(root):
                root = fetch.default_root()
            fetch.ensure(root, log=lambda *_: None)
            _data_ready[wanted] = paths.portable(root)
        return _data_ready[wanted]


def _cancelled(worker, key) -> bool:
    """Whether the scheduler has let this worker's task go (its client cancelled it or went away)."""
    ts = worker.state.tasks.get(key)
    return ts is None or ts.state in ("cancelled", "released", "forgotten")


def run_job(job: dict) -> dict:
    """Run one job on this worker (see `payload`); its files come back as bytes. Raises JobFailed."""
    from distributed import get_worker  # Dask: only with --cluster
    from distributed.worker import thread_state

    worker, key = get_worker(), getattr(thread_state, "key", None)
    planned, here = job["cpu"], torch.backends.cpu.get_cpu_capability()
    if planned and planned != here:  # a worker that joined after the client planned, with other instructions
        raise JobFailed(f"worker {worker.name} has CPU vector instructions {here}, the run was planned for {planned} "
                        "(part of its identity): start every worker with the same ATEN_CPU_CAPABILITY")
    params = dict(job["params"], data_dir=_worker_data(job["params"].get("data_dir", "")))
    with tempfile.TemporaryDirectory(prefix="mnist-lab-job-") as tmp:
        tmp = Path(tmp)
        notebook = tmp / job["notebook_path"]
        notebook.parent.mkdir(parents=True, exist_ok=True)
        notebook.write_bytes(job["notebook"])
        output = tmp / "executed.ipynb"
        stage = tmp / "results"
        cmd = papermill_command(job["notebook_path"], output.name, str(notebook.parent.relative_to(tmp)), params)
        # papermill dies with the worker (the kernel it starts exits by itself when its parent is gone); without
        # that, a killed worker would leave its notebook running. This thread waits for it, so outlives it.
        cmd = die_with_parent(cmd)
        env = process_env(**job["env"], **{STAGE_ENV: str(stage)})
        started = time.perf_counter()
        with open(tmp / "stderr.txt", "w+") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp, env=env, start_new_session=True)
            while proc.poll() is None:
                try:
                    proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    if key is not None and _cancelled(worker, key):  # nobody waits for it: stop the notebook
                        os.killpg(proc.pid, 9)
                        proc.wait()
                        raise JobFailed("cancelled") from None
            err.seek(0)
            stderr = err.read()
        seconds = time.perf_counter() - started
        executed = output.read_bytes() if output.exists() else None
        result, checkpoint = stage / f"{job['stem']}.json", stage / f"{job['stem']}.pt"
        if proc.returncode or not result.is_file() or not checkpoint.is_file():
            raise JobFailed(tail_of(stderr) if proc.returncode else "it wrote no result file", executed)
        return {"notebook": executed, "result": result.read_bytes(), "checkpoint": checkpoint.read_bytes(),
                "seconds": seconds, "worker": worker.name}


# ---- on the client ----

def payload(job) -> dict:
    """What a worker needs to run `job`, the notebook itself included."""
    shown = portable(job.notebook)  # as the executed notebook records it, when inside the repository
    relative = shown if not os.path.isabs(shown) else f"notebooks/{job.series}/{job.notebook.name}"
    # The job's own variables (and smoke mode, as a local run inherits it); the rest is the worker's.
    env = dict(job_vars(job), **{k: os.environ[k] for k in (SMOKE_ENV,) if k in os.environ})
    return {"notebook": job.notebook.read_bytes(), "notebook_path": relative, "params": job.params,
            "stem": job.result.stem, "env": env, "cpu": job.recipe.get("cpu", "")}


class Cluster:
    """The client of a running Dask scheduler, and how the series' jobs run on its workers."""

    def __init__(self, address: str, retries: int = 2):
        from distributed import Client  # Dask: only with --cluster

        self.address, self.retries = address, retries
        try:
            self.client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise LabError(f"no Dask scheduler answers at {address} ({type(exc).__name__}: {exc}); {START_HINT}") from None
        try:
            self.client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except (TimeoutError, OSError):
            self.close()
            raise LabError(f"the Dask scheduler at {address} has no workers; {START_HINT}") from None
        try:
            self.workers = self.client.run(facts)
        except Exception as exc:  # a worker without mnist_lab cannot even unpickle the probe
            self.close()
            raise LabError(f"a worker of {address} could not run mnist_lab ({type(exc).__name__}: {exc}); "
                           "set up mnist_lab on every worker machine (a checkout and `make setup`)") from None

    def close(self):
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def gpus(self) -> int:
        """Worker slots for CUDA jobs: the workers' GPU resources."""
        info = self.client.scheduler_info(n_workers=-1)["workers"].values()
        return int(sum(w.get("resources", {}).get("GPU", 0) for w in info))

    def threads(self) -> int:
        return sum(w.get("nthreads", 1) for w in self.client.scheduler_info(n_workers=-1)["workers"].values())

    def cpu(self, strict: bool = True) -> str:
        """The workers' vector instructions, part of a CPU run's identity: they must all agree (`strict`,
        for CPU runs; CUDA runs do not depend on them)."""
        found = {f["cpu"] for f in self.workers.values()}
        if len(found) > 1 and strict:
            by = ", ".join(f"{a}: {f['cpu']}" for a, f in sorted(self.workers.items()))
            raise LabError(f"the workers' CPUs differ in vector instructions ({by}), which changes CPU results; "
                           "start every worker with the same ATEN_CPU_CAPABILITY (e.g. avx2) in its environment")
        return sorted(found)[0]

    def describe(self) -> str:
        return f"{len(self.workers)} Dask worker(s) at {self.address}, {self.threads()} thread(s) in all"

    def run(self, todo):
        """(job, ok, why, seconds, worker) as each job finishes; its files are written here, atomically."""
        from distributed import as_completed  # Dask: only with --cluster

        futures = {}
        for rank, job in enumerate(todo):  # in the planned order (longest first)
            futures[self.client.submit(run_job, payload(job), key=f"{job.label.replace(' ', '-')}-{uuid.uuid4().hex[:8]}",
                                       retries=self.retries, priority=len(todo) - rank, pure=False,
                                       resources={"GPU": 1} if job.recipe.get("device") == "cuda" else None)] = job
        try:
            for fut in as_completed(futures, loop=self.client.loop):
                job = futures.pop(fut)  # its files are written below; the worker may then let them go
                yield self._outcome(job, fut)
        finally:  # interrupted: what came back is written, and nothing more runs (the workers stop their notebooks)
            for fut, job in list(futures.items()):
                if fut.status == "finished":
                    self._outcome(job, fut)
            if futures:
                self.client.cancel(list(futures))

    def _outcome(self, job, fut):
        """(job, ok, why, seconds, worker) of a future that is done; a finished job's files written here."""
        try:
            out = fut.result()
        except JobFailed as exc:
            _notebook(job, exc.notebook)
            return job, False, f"{exc.why} (on every one of {self.retries + 1} tries)", 0.0, ""
        except Exception as exc:  # KilledWorker, CancelledError (the scheduler went away), ...
            name = type(exc).__name__
            why = {"KilledWorker": "its worker died on every try (killed, or out of memory?)",
                   "CancelledError": "cancelled: the connection to the scheduler was lost?"}.get(name, f"{name}: {exc}")
            return job, False, why, 0.0, ""
        ok, why = _write(job, out)
        return job, ok, why, out["seconds"], out["worker"]


def _write(job, out: dict) -> tuple[bool, str]:
    """The files of a finished job, into the output folder: checkpoint, result file, executed notebook."""
    atomic_write_bytes(job.result.with_suffix(".pt"), out["checkpoint"])  # first: a result never lacks it
    atomic_write_bytes(job.result, out["result"])
    _notebook(job, out["notebook"])
    r, bad = read_result(job.result)
    if bad or r.get("run_id") != job.result.stem:
        job.result.unlink(missing_ok=True)
        return False, f"its result file came back unusable ({bad or 'another run identity'})"
    return True, ""


def _notebook(job, data: bytes | None):
    """A returned executed notebook, kept as a local run keeps it (as it is when it was cut short)."""
    if data:
        try:
            nbfiles.compact_text(data.decode("utf-8"), job.executed, portable(job.executed))
        except ValueError:
            atomic_write_bytes(job.executed, data)

"""`mnist-lab bench --series`: the whole series' training time, the study's way and the lab's, side by side.

For each of the seven networks, in every round: (a) the study's pipeline as the study ran it, one
notebook at a time: PIL transforms in a 2-worker DataLoader, torch's default threads (or
`reference_threads`), held-out
evaluation through the study's test loader; then (b) the lab's series set-up: `workers` processes
training at once with `threads` threads each, as `mnist-lab run --workers W --threads T` runs them.
Each side's training and evaluation speed for a network becomes seconds per epoch; times the recipe's
epochs, that is each side's series time. The lab's seven notebooks are packed onto the workers in the
runner's order (longest expected time first). Alternating (a) and (b) network by network puts a shared
machine's drift on both sides. Notebook start-up (papermill, kernel, data loading, figures) is left
out on both sides; the wall time of a real `mnist-lab run` shows what it adds.
"""
from __future__ import annotations

import contextlib
import heapq
import io
import multiprocessing as mp
import os
import statistics
import time

import torch

from . import fetch
from .bench import epoch_seconds, reference_batches, reference_eval, reference_round
from .config import Config
from .data import MNISTData
from .errors import LabError
from .frameworks.pytorch import adam, evaluate, pick_device, place, train_one_epoch
from .iterations import BLOCKS, EPOCHS, LR
from .net import Net


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _lab_worker(conn, threads, root, device, batches, seed):
    """A lab worker process: per network it is sent, warm up, report ready, wait for go, train, evaluate.

    Pipes only (no shared semaphores): every worker starts its timed part when all are ready, so
    the measured speed is the speed of `workers` notebooks sharing the machine.
    """
    import traceback


    try:
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        dev = torch.device(device)
        data = MNISTData.load(root, dev, batch_size=64, seed=seed, max_batches=batches)
        cfg = Config(device=device, data_dir=str(root))
        while (iteration := conn.recv()) is not None:
            model = place(Net(BLOCKS[iteration]), cfg, dev)
            opt = adam(model, LR[iteration])
            with contextlib.redirect_stderr(io.StringIO()):  # no progress bars from the workers
                data.train.max_batches = 5
                train_one_epoch(model, data.train, opt, cfg)  # warm-up: kernels chosen, memory allocated
                data.train.max_batches = batches
                conn.send("ready")
                conn.recv()  # go
                t = time.perf_counter()
                seen = train_one_epoch(model, data.train, opt, cfg)["seen"]
                _sync(dev)
                train_s = time.perf_counter() - t
                t = time.perf_counter()
                total = evaluate(model, data.test, cfg)["total"]
                _sync(dev)
            conn.send((seen / train_s, total / (time.perf_counter() - t)))
    except Exception:  # reported by the parent, which raises it as a clear error
        conn.send(("error", traceback.format_exc()))


class _LabWorkers:
    def __init__(self, workers, threads, root, device, batches):
        ctx = mp.get_context("spawn")  # a clean interpreter per worker, as papermill's kernels are
        self.conns, self.procs = [], []
        for _ in range(workers):
            here, there = ctx.Pipe()
            proc = ctx.Process(target=_lab_worker, args=(there, threads, root, device, batches, 0), daemon=True)
            proc.start()
            self.conns.append(here)
            self.procs.append(proc)

    def _recv_all(self):
        out = []
        for conn in self.conns:
            try:
                msg = conn.recv()
            except EOFError:
                raise LabError("a benchmark worker process died; run again with --workers 1 to see why") from None
            if isinstance(msg, tuple) and msg[0] == "error":
                raise LabError(f"a benchmark worker failed:\n{msg[1]}")
            out.append(msg)
        return out

    def measure(self, iteration: int) -> tuple[float, float]:
        """Mean per-worker (training img/s, evaluation img/s), all workers running at once."""
        for conn in self.conns:
            conn.send(iteration)
        self._recv_all()  # all warmed up and ready
        for conn in self.conns:
            conn.send("go")
        return tuple(statistics.mean(v) for v in zip(*self._recv_all()))

    def close(self):
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()


def _reference(iteration, loader_iter, batches, root, dev, threads) -> tuple[float, float]:
    """(training img/s, evaluation img/s) of the study's pipeline on one network."""
    model = Net(BLOCKS[iteration]).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=LR[iteration])
    reference_round(model, opt, loader_iter, 5, dev, threads)  # warm-up, as the lab side
    return (reference_round(model, opt, loader_iter, batches, dev, threads),
            reference_eval(model, root, dev, threads))


def makespan(durations: dict[int, float], workers: int) -> float:
    """Wall time of these notebooks on `workers` workers, longest first, as the runner orders them."""
    order = sorted(durations, key=lambda k: -durations[k])
    free = [0.0] * max(1, workers)
    for k in order:
        heapq.heappush(free, heapq.heappop(free) + durations[k])
    return max(free)


def estimates(ref: dict, lab: dict, workers: int) -> tuple[float, float]:
    """(study's series seconds, lab's series seconds) from per-network (train, eval) img/s."""
    ref_s = sum(EPOCHS[k] * epoch_seconds(*ref[k]) for k in ref)
    lab_s = makespan({k: EPOCHS[k] * epoch_seconds(*lab[k]) for k in lab}, workers)
    return ref_s, lab_s


def run(device="auto", rounds=3, batches=100, workers=None, threads=None, data_dir=None, reference_threads=0,
        log=print) -> dict:

    dev = pick_device(device)
    root = fetch.ensure(data_dir).parent.parent
    # Defaults: what `make reproduce` runs, one single-thread notebook per core (at most seven).
    workers = workers or min(os.cpu_count() or 1, len(BLOCKS))
    threads = threads or 1
    ref_threads = reference_threads or torch.get_num_threads()
    torch.manual_seed(0)
    ref_iter = reference_batches(root, dev)
    warm = Net(BLOCKS[1]).to(dev)  # start the loader's worker processes before anything is timed
    reference_round(warm, torch.optim.Adam(warm.parameters()), ref_iter, 20, dev, ref_threads)
    ref_rounds, lab_rounds = [], []
    lab_workers = _LabWorkers(workers, threads, str(root), str(dev), batches)
    try:
        for r in range(rounds):
            ref_r, lab_r = {}, {}
            for k in BLOCKS:
                ref_r[k] = _reference(k, ref_iter, batches, root, dev, ref_threads)
                lab_r[k] = lab_workers.measure(k)
                log(f"round {r + 1}/{rounds}, iteration {k}: reference {ref_r[k][0]:,.0f} img/s, "
                    f"lab {lab_r[k][0]:,.0f} img/s per worker x {workers}")
            ref_rounds.append(ref_r)
            lab_rounds.append(lab_r)
    finally:
        lab_workers.close()

    def median(per_round, k):
        return tuple(statistics.median(r[k][i] for r in per_round) for i in range(2))

    ref = {k: median(ref_rounds, k) for k in BLOCKS}
    lab = {k: median(lab_rounds, k) for k in BLOCKS}
    ref_s, lab_s = estimates(ref, lab, workers)
    round_ratios = [a / b for a, b in (estimates(rr, lr, workers) for rr, lr in zip(ref_rounds, lab_rounds))]
    return {
        "device": str(dev),
        "torch": torch.__version__,
        "rounds": rounds,
        "batches_per_round": batches,
        "reference_threads": ref_threads,
        "workers": workers,
        "threads": threads,
        "per_iteration": [{
            "iteration": k, "epochs": EPOCHS[k],
            "reference_img_s": round(ref[k][0], 1), "reference_eval_img_s": round(ref[k][1], 1),
            "lab_img_s": round(lab[k][0], 1), "lab_eval_img_s": round(lab[k][1], 1),
            "reference_epoch_s": round(epoch_seconds(*ref[k]), 2), "lab_epoch_s": round(epoch_seconds(*lab[k]), 2),
        } for k in BLOCKS],
        "reference_series_min": round(ref_s / 60, 1),
        "lab_series_min": round(lab_s / 60, 1),
        "ratio": round(ref_s / lab_s, 2),
        "round_ratios": [round(x, 2) for x in round_ratios],
    }

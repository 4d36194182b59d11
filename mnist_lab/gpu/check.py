"""The GPU check (run by check.sh, which puts the kit's wheels and MNIST in place first): what a short window on
a GPU machine should measure, in order, within a time budget, each figure written as soon as it exists.

Steps: the device (nvidia-smi and torch's view of it); the CUDA-marked tests; one study notebook at full length
through papermill (seconds per epoch, held-out accuracy); the whole study series for one seed with several
notebooks at once on the GPU, then with one (wall time of each). `gpu_check.json` in the output folder is
rewritten atomically after every step, so a window that closes early still leaves what was measured. A step
that would not fit in the time left is skipped, saying so; a run cut at the deadline is stopped as Ctrl-C
stops it (finished runs are kept) and counted.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..io import atomic_write_text
from ..machine import cpu_name

NOTEBOOK = 5  # the study's iteration 5: its recipe at full length, 20 epochs
STUDY_RUNS = 7  # the study series, one seed
GRACE = 20  # seconds a cut run gets to write what finished, after Ctrl-C


class Check:
    def __init__(self, out: Path, budget: float, device: str, smoke: bool, workers: int):
        self.out, self.device, self.smoke, self.workers = out, device, smoke, workers
        self.deadline = time.monotonic() + budget
        self.scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))
        self.report = {"command": " ".join(shlex.quote(a) for a in sys.argv),
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "host": platform.node(), "python": platform.python_version(), "budget_s": budget,
                       "device_asked": device, "smoke": smoke, "steps": {}}
        self.save()  # from the start: a window that closes at once still leaves what was asked

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self):
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "gpu_check.json", json.dumps(self.report, indent=1) + "\n")

    def step(self, name: str, needs: float, fn):
        """Run one step if about `needs` seconds are left; record its figures, or why it has none."""
        if self.left() < needs:
            got = {"skipped": f"{self.left():.0f} s left of the budget; it needs about {needs:.0f} s"}
        else:
            started = time.monotonic()
            try:
                got = fn()
            except Exception as exc:  # one step's failure is a figure too; the next steps still run
                got = {"failed": f"{type(exc).__name__}: {exc}"}
            got["step_seconds"] = round(time.monotonic() - started, 1)
        self.report["steps"][name] = got
        self.save()
        print(f"gpu-check: {name}: {json.dumps(got)[:300]}", flush=True)

    # ---- the commands, each stopped cleanly at the deadline ----------------------------------------------
    def command(self, args: list[str], log: Path) -> tuple[int | None, float]:
        """Run `args` until it ends or the deadline comes (then Ctrl-C, as a user would, and after GRACE
        seconds SIGKILL to its whole group). Returns (exit status or None when cut, seconds)."""
        started = time.monotonic()
        with open(log, "w") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                return proc.wait(timeout=max(self.left() - GRACE, 1)), time.monotonic() - started
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=GRACE)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                return None, time.monotonic() - started

    def lab_run(self, name: str, *args) -> dict:
        """`mnist-lab run` of the study on this check's device into a fresh folder; its runs' figures."""
        folder = self.scratch / name
        cmd = [sys.executable, "-m", "mnist_lab", "run", "--series", "study", "--seeds", "0", "--out", str(folder),
               "--no-report", "--set", f"device={self.device}", *args, *(["--smoke"] if self.smoke else [])]
        status, seconds = self.command(cmd, self.out / f"{name}.log")
        runs = []
        for path in sorted((folder / "study" / "results").glob("*.json")):
            r = json.loads(path.read_text())
            epochs = [h["seconds"] for h in r["history"]]
            runs.append({"notebook": r["iteration"], "epochs": len(epochs), "held_out_acc": r["final_test_acc"],
                         "seconds_per_epoch": round(sum(epochs) / len(epochs), 2),
                         "first_epoch_seconds": round(epochs[0], 2), "wall_seconds": round(r["wall_seconds"], 1),
                         "device": r["device"], "device_name": r.get("device_name")})
        return {"command": " ".join(shlex.quote(a) for a in cmd), "exit_status": status,
                "cut_at_deadline": status is None, "wall_seconds": round(seconds, 1), "runs_finished": len(runs),
                "runs": runs, "log": f"{name}.log"}

    # ---- the steps -----------------------------------------------------------------------------------------
    def device_info(self) -> dict:
        import torch

        got = {"torch": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
        smi = shutil.which("nvidia-smi")
        if smi:
            text = subprocess.run([smi], capture_output=True, text=True, timeout=60).stdout
            atomic_write_text(self.out / "nvidia-smi.txt", text)
            got["nvidia_smi"] = subprocess.run(
                [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=60).stdout.strip()
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            got.update(name=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                       multiprocessors=p.multi_processor_count, cudnn=torch.backends.cudnn.version())
        else:
            got["name"] = f"CPU: {cpu_name()} (no CUDA device)"
        self.report["device"] = got.get("name")
        self.report["torch"] = torch.__version__
        return got

    def cuda_tests(self) -> dict:
        xml = self.out / "cuda_tests.xml"
        cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "tests", "-q", "-p", "no:cacheprovider",
               f"--junitxml={xml}"]
        status, seconds = self.command(cmd, self.out / "cuda_tests.log")
        counts = {}
        if xml.is_file():
            import xml.etree.ElementTree as ET

            suite = ET.parse(xml).getroot()
            suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
            counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        return {"exit_status": status, "wall_seconds": round(seconds, 1), **counts, "log": "cuda_tests.log"}

    def run(self) -> dict:
        self.step("device", 10, self.device_info)
        self.step("cuda_tests", 60, self.cuda_tests)
        self.step("one_notebook", 60, lambda: self.lab_run("one_notebook", "--iterations", str(NOTEBOOK), "--workers", "1"))
        self.step("study_several_at_once", 90,
                  lambda: self.lab_run(f"study_{self.workers}_at_once", "--workers", str(self.workers)))
        self.step("study_one_at_a_time", 90, lambda: self.lab_run("study_1_at_a_time", "--workers", "1"))
        shutil.rmtree(self.scratch, ignore_errors=True)
        return self.report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mnist_lab.gpu.check", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for gpu_check.json and the logs")
    p.add_argument("--budget", type=float, default=480, help="seconds for every step together (default 480)")
    p.add_argument("--device", default="cuda", help="cuda (default), or cpu to try the check without a GPU")
    p.add_argument("--smoke", action="store_true", help="smoke runs: the same steps in seconds")
    p.add_argument("--workers", type=int, default=4, help="notebooks at once in the parallel series (default 4)")
    args = p.parse_args(argv)
    report = Check(Path(args.out), args.budget, args.device, args.smoke, args.workers).run()
    failed = [name for name, got in report["steps"].items() if "failed" in got or got.get("exit_status") not in (0, None)]
    print(f"gpu-check: {Path(args.out) / 'gpu_check.json'} written" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

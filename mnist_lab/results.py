"""Result files: one self-describing JSON per run, and a checkpoint that rebuilds the network alone."""
from __future__ import annotations

import io
import json
import platform
from pathlib import Path

import torch

from .blocks import Net
from .errors import LabError
from .io import atomic_write_bytes, atomic_write_json
from .trainer import predict

SCHEMA = 1


def code_version() -> str:
    """The git commit of the code that made a result ("+dirty" with uncommitted changes), if known."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty=+dirty", "--abbrev=12"], cwd=here,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def result_path(cfg) -> Path:
    return Path(cfg.results_dir) / f"{cfg.run_id}.json"


def record(cfg, model: Net, fit_result, data, device) -> Path:
    """Write `<results_dir>/<run_id>.json` and `.pt` atomically; return the JSON's path."""
    path = result_path(cfg)
    h = fit_result.history
    # Final-model predictions on the held-out set, so the report can draw a confusion matrix and
    # the mistakes from result files alone.
    pred, _ = predict(model, data.test, cfg)
    truth = data.test.labels.cpu()
    confusion = torch.zeros(10, 10, dtype=torch.long)
    confusion.index_put_((truth, pred), torch.ones_like(truth), accumulate=True)
    wrong = (pred != truth).nonzero().squeeze(1).tolist()
    final = h[-1] if h else {}
    result = {
        "schema": SCHEMA,
        "iteration": cfg.iteration,
        "name": cfg.name,
        "params": model.num_params(),
        "seed": cfg.seed,
        "epochs": len(h),
        "epochs_planned": cfg.run_epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "code": code_version(),
        "dataset": "MNIST",
        "train_size": len(data.train.images),
        "test_size": len(data.test.images),
        "smoke": cfg.smoke,
        "blocks": model.blocks,
        "config": cfg.to_dict(),
        "history": h,
        "final_test_acc": final.get("test_acc"),
        "final_train_acc": final.get("train_acc"),
        "confusion": confusion.tolist(),  # rows: true digit, columns: predicted
        "mistakes": [[i, int(pred[i]), int(truth[i])] for i in wrong],  # [test index, predicted, true]
        "best_val_epoch": fit_result.best_epoch,
        "stopped_early": fit_result.stopped_early,
        "wall_seconds": fit_result.wall_seconds,
        "checkpoint": path.with_suffix(".pt").name,
    }
    # Checkpoint first: a result file never points at a missing checkpoint.
    state = fit_result.best_state or model.state_dict()  # best by validation loss, when there is one
    buf = io.BytesIO()
    torch.save({"blocks": model.blocks, "input_shape": list(model.input_shape),
                "state_dict": {k: v.detach().cpu().contiguous() for k, v in state.items()},
                "iteration": cfg.iteration, "seed": cfg.seed, "smoke": cfg.smoke,
                "final_test_acc": result["final_test_acc"]}, buf)
    atomic_write_bytes(path.with_suffix(".pt"), buf.getvalue())
    atomic_write_json(path, result)
    return path


def load_model(checkpoint) -> Net:
    """Rebuild a network from its checkpoint, in eval mode, on the CPU."""
    path = Path(checkpoint)
    if not path.is_file():
        raise LabError(f"checkpoint {path} not found; train one with `mnist-lab run` or pass --checkpoint PATH")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        model = Net(ck["blocks"], tuple(ck["input_shape"]))
        model.load_state_dict(ck["state_dict"])
    except Exception as exc:
        raise LabError(f"{path} is not a mnist_lab checkpoint ({type(exc).__name__}: {exc})") from None
    return model.eval()


def load_results(folder) -> list[dict]:
    """Every result file in `folder`, sorted by (iteration, seed, smoke). Unreadable files are an error."""
    out = []
    for p in sorted(Path(folder).glob("*.json")):
        try:
            r = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise LabError(f"result file {p} is unreadable ({exc}); delete it and re-run that notebook") from None
        if not isinstance(r, dict) or "history" not in r:
            continue  # not a result file (e.g. a summary written beside them)
        r["_path"] = str(p)
        out.append(r)
    return sorted(out, key=lambda r: (r["iteration"], r["seed"], r["smoke"]))

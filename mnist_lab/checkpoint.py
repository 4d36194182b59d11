"""A run's files at its end (the result file and the checkpoint, written atomically), and a checkpoint
loaded back as a network."""
from __future__ import annotations

import io
import json
import os
import platform
from pathlib import Path

import torch

from . import datasets, frameworks
from .config import EXPECT_ENV, PLACE_ENV, run_id
from .errors import LabError
from .frameworks.pytorch import predict
from .io import atomic_write_bytes, atomic_write_json
from .paths import portable
from .machine import cpu_name
from .net import Net
from .results import SCHEMA, code_version, damage, digest
from .series import place_of


def record(cfg, model: Net, fit_result, data, device) -> Path:
    """Write `<results_dir>/<run_id>.json` and `.pt` atomically; return the JSON's path.

    The name carries a hash of the run's full recipe, so a run never replaces the result of a
    different recipe (a 1-epoch try never overwrites a 20-epoch result)."""
    if not fit_result.history:
        raise LabError("nothing to record: the run trained no epoch")
    recipe = cfg.recipe(model.blocks, device)
    path = cfg.write_path / f"{run_id(cfg.iteration, cfg.seed, cfg.smoke, recipe)}.json"
    expected = os.environ.get(EXPECT_ENV)
    if expected and expected != path.stem:
        raise LabError(f"this run's identity is {path.stem}, but the runner planned {expected}: the notebook "
                       "builds its Config or network from something other than its parameters")
    h = fit_result.history
    # Final-model predictions on the held-out set, so the report can draw a confusion matrix and
    # the mistakes from result files alone.
    pred, _ = predict(model, data.test, cfg)
    truth = data.test.labels.cpu()
    confusion = torch.zeros(10, 10, dtype=torch.long)
    confusion.index_put_((truth, pred), torch.ones_like(truth), accumulate=True)
    wrong = (pred != truth).nonzero().squeeze(1).tolist()
    final = fit_result.final  # the last epoch, or the restored best one: the weights the model ends with
    result = {
        "schema": SCHEMA,
        "run_id": path.stem,
        "iteration": cfg.iteration,
        "name": cfg.name,
        "series": cfg.series,
        "framework": cfg.framework,
        "versions": frameworks.versions(cfg),
        "params": model.num_params(),
        "seed": cfg.seed,
        "epochs": len(h),
        "epochs_planned": cfg.run_epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "code": code_version(),
        "dataset": data.dataset.name,
        "train_size": len(data.train.images),
        "test_size": len(data.test.images),
        "smoke": cfg.smoke,
        "blocks": model.blocks,
        "config": cfg.portable_dict(),
        "recipe": recipe,
        "history": h,
        "final_test_acc": final.get("test_acc"),
        "final_train_acc": final.get("train_acc"),
        "confusion": confusion.tolist(),  # rows: true digit, columns: predicted
        "mistakes": [[i, int(pred[i]), int(truth[i])] for i in wrong],  # [test index, predicted, true]
        "best_val_epoch": fit_result.best_epoch,
        "restored_best": fit_result.restored,
        "stopped_early": fit_result.stopped_early,
        "wall_seconds": fit_result.wall_seconds,
        "checkpoint": path.with_suffix(".pt").name,
        # where the run belongs, as the runner planned it (else as its notebook says): the report places it
        # by these alone
        **(json.loads(os.environ[PLACE_ENV]) if os.environ.get(PLACE_ENV) else place_of(cfg)),
    }
    # Checkpoint first: a result file never points at a missing checkpoint.
    state = model.state_dict()  # the weights evaluated above: the final or the restored best ones
    buf = io.BytesIO()
    torch.save({"blocks": model.blocks, "input_shape": list(model.input_shape), "dataset": data.dataset.key,
                "state_dict": {k: v.detach().cpu().contiguous() for k, v in state.items()},
                "iteration": cfg.iteration, "seed": cfg.seed, "smoke": cfg.smoke,
                "final_test_acc": result["final_test_acc"]}, buf)
    atomic_write_bytes(path.with_suffix(".pt"), buf.getvalue())
    atomic_write_json(path, dict(result, **digest(buf.getvalue())))
    return path


def load_model(checkpoint, default: bool = False) -> Net:
    """Rebuild a network from its checkpoint, in eval mode, on the CPU. `default`: it is the repository's
    own default model (the study's best), which a damaged copy names so."""
    path = Path(checkpoint)
    if path.is_dir():
        raise LabError(f"checkpoint {path} is a folder; pass the .pt file next to a result file, e.g. "
                       f"{path}/it5_seed0_<recipe>.pt")
    if not path.is_file():
        raise LabError(f"checkpoint {path} not found; train one with `mnist-lab run` or pass --checkpoint PATH")
    fix = (f"it is the repository's own default model: restore it with `git checkout -- {portable(path)}`"
           if default else "remake it with `mnist-lab run`, or pass another --checkpoint")
    record = result_of(path)
    problem = damage(path, record)
    if problem and record is None and not _looks_like_archive(path):
        raise LabError(f"checkpoint {path} is not a mnist_lab checkpoint (not a PyTorch archive at all); use a .pt "
                       "written by `mnist-lab run` or by a notebook's record cell, next to its result file")
    if problem:
        raise LabError(f"checkpoint {path} is damaged ({problem}); {fix}")
    try:
        # weights_only: a checkpoint is tensors and plain data; nothing in it may run code.
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's own advice (weights_only=False) would be unsafe here
        unsafe = "weights_only" in str(exc)
        raise LabError(f"checkpoint {path} is " + (
            "not a mnist_lab checkpoint: it holds objects other than tensors and plain data, which are not loaded"
            if unsafe else f"damaged (torch cannot read it: {type(exc).__name__}); {fix}")) from None
    try:
        model = Net(ck["blocks"], tuple(ck["input_shape"]))
        model.load_state_dict(ck["state_dict"])
        # what it was trained on (checkpoints from before the setting: MNIST): predict normalises with its constants
        model.dataset = datasets.get(ck.get("dataset", "mnist"))
    except Exception as exc:
        raise LabError(f"checkpoint {path} is not a mnist_lab checkpoint ({type(exc).__name__}: {exc}); use a .pt "
                       "written by `mnist-lab run` or by a notebook's record cell, next to its result file") from None
    return model.eval()


def _looks_like_archive(path: Path) -> bool:
    """Whether the file begins as torch.save's zip does: one that does but is not complete was cut short or
    overwritten (damaged); one that does not was never a checkpoint."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def result_of(path: Path) -> dict | None:
    """The result file beside checkpoint `path` that names it, or None."""
    try:
        r = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    return r if isinstance(r, dict) and r.get("checkpoint") == path.name else None

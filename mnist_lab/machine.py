"""The machine a run was made on, as its result file records it, and whether this one can remake it bit for bit.

A seeded run gives the same numbers twice on one machine, but float sums depend on more than the recipe's
method: the CPU model (oneDNN and MKL pick their kernels per model), the vector instructions torch uses,
the thread count, and the versions of torch and of the framework that trained it. A result file records
each of them; `remake_blockers` compares them with this machine, so every check that expects the same
bits asks one place and says what differs."""
from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

# The recipe's fields that name where a run is made rather than how: two recipes equal apart from these
# are the same method, made on other machines.
MACHINE_FIELDS = ("device", "threads", "cpu")
# What `platform.machine()` names: files made before CPU models were recorded hold one of these instead.
ARCHITECTURES = {None, "", "x86_64", "AMD64", "aarch64", "arm64", "i386", "i686"}


def cpu_name() -> str:
    """The CPU's model name. Two CPUs with the same vector instructions can still run different float
    kernels (oneDNN and MKL pick theirs per model), so a run is remade bit for bit only on its model."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def method(recipe: dict) -> dict:
    """The recipe without its machine fields: what two machines can share."""
    return {k: v for k, v in recipe.items() if k not in MACHINE_FIELDS}


def same_run(result: dict) -> tuple:
    """What a run on another machine shares with `result` when it is the same run: its series, notebook
    number, seed, kind (full or smoke) and method. Two files with the same key are one run made twice."""
    return (result.get("series") or "", result["iteration"], result["seed"], bool(result["smoke"]),
            json.dumps(method(result["recipe"]), sort_keys=True))


def described(result: dict) -> str:
    """The machine of `result` in words: CPU model (or architecture) and vector instructions, or the GPU."""
    rec = result["recipe"]
    if rec.get("device") == "cpu":
        return f"{result.get('device_name') or '?'}, {rec.get('cpu') or '?'}"
    return str(result.get("device_name") or rec.get("device"))


def recorded(result: dict) -> dict:
    """What the sums of `result` depended on beyond its recipe's method, as its file records it. The CPU
    model is None where the file names only the architecture (files made before models were recorded)."""
    rec = result["recipe"]
    name = result.get("device_name")
    out = {"device": rec["device"], "model": None if name in ARCHITECTURES else name,
           "torch": result.get("torch")}
    if rec["device"] == "cpu":
        out.update(cpu=rec.get("cpu"), threads=rec.get("threads"))
    out["versions"] = {k: v for k, v in (result.get("versions") or {}).items() if k != "keras_backend"}
    return out


def _installed(module: str) -> str | None:
    """The installed version of what provides `module` (tensorflow comes as tensorflow-cpu, say), without
    importing it."""
    for dist in metadata.packages_distributions().get(module, [module]):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return None


def remake_blockers(result: dict, threads: int | None = None) -> list[str]:
    """Why this machine cannot remake `result` bit for bit, one phrase per difference ([] when it can).
    `threads`: the CPU threads the remake will use (default: the recorded ones, as the runner sets them)."""
    import torch  # only to compare: reading what a file records needs none

    was = recorded(result)
    why = []
    if was["device"] == "cuda":
        here = torch.cuda.get_device_name() if torch.cuda.is_available() else None
        if here != result.get("device_name"):
            why.append(f"GPU {result.get('device_name')!r} there, {here or 'no GPU'!r} here")
    else:
        if was["model"] is None:
            why.append(f"the file records no CPU model (only {result.get('device_name')!r}), and CPU models "
                       "differ in their float kernels")
        elif was["model"] != cpu_name():
            why.append(f"CPU model {was['model']!r} there, {cpu_name()!r} here")
        here = torch.backends.cpu.get_cpu_capability()
        if was["cpu"] != here:
            why.append(f"vector instructions {was['cpu']} there, {here} here")
        if threads is not None and threads != was["threads"]:
            why.append(f"{was['threads']} CPU thread(s) there, {threads} here")
    if was["torch"] != torch.__version__:
        why.append(f"torch {was['torch']} there, {torch.__version__} here")
    for package, version in sorted(was["versions"].items()):
        here = _installed(package)
        if here != version:
            why.append(f"{package} {version} there, {here or 'not installed'} here")
    return why


def remake_reason(result: dict, threads: int | None = None) -> str:
    """One line for a skipped bit-for-bit check: which run, and everything that differs."""
    why = remake_blockers(result, threads)
    return f"{result['run_id']} cannot be remade bit for bit here: {'; '.join(why)}" if why else ""

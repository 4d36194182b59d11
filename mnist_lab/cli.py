"""The `mnist-lab` command line: it parses arguments and prints; the work is done by the package. Expected
mistakes print a message and exit 2, never a traceback. Each command imports what it needs when it runs,
so that `mnist-lab data` and `mnist-lab report` never pay for torch."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import textwrap
import time
from pathlib import Path

from . import paths
from .datasets import DATASETS
from .errors import LabError


def cmd_data(a):
    from . import fetch

    for key in (list(DATASETS) if a.dataset == "all" else [a.dataset]):
        t = time.perf_counter()
        raw = fetch.ensure(a.root, repair=a.repair, log=print, dataset=key)
        print(f"{DATASETS[key].name} ready in {paths.shown(raw)} ({time.perf_counter() - t:.2f} s)")


def _out(a) -> Path:
    """--out as given (from the working directory), else the repository's runs/."""
    return Path(a.out).resolve() if a.out else paths.runs_dir()


def _series(a):
    from . import series

    root = Path(a.notebooks) if getattr(a, "notebooks", None) else paths.base() / "notebooks"
    return series.pick(series.find(root), a.series)


def cmd_run(a):
    from . import fetch
    from .runs import args as run_args
    from .series import notebook_parameters

    if (a.workers is not None and a.workers < 1) or a.threads < 0 or a.retries < 0:
        raise LabError("--workers must be at least 1, --threads and --retries at least 0 (--threads 0: cores / workers)")
    if a.cluster and a.workers is not None:
        raise LabError("--workers is for runs on this machine; on a cluster each worker runs as many notebooks at "
                       "once as it has threads (`dask worker ADDRESS --nthreads N`)")
    if a.seeds and a.series_seeds:
        raise LabError("give --seeds or --series-seeds, not both")
    if any(s < 0 for s in a.seeds or []):
        raise LabError(f"seeds must be 0 or more, got {[s for s in a.seeds if s < 0]}")
    seeds = None if a.series_seeds else list(dict.fromkeys(a.seeds or [0]))  # None: each series' own
    out = _out(a)
    chosen = _series(a)
    if a.iterations and len(chosen) > 1:
        raise LabError(f"--iterations picks notebooks of one series; add --series NAME (one of: "
                       f"{', '.join(s.name for s in chosen)})")
    iterations = run_args.check_iterations(chosen[0].notebooks, a.iterations) if a.iterations else []
    known = {}
    for s in chosen:  # a parameter any of the chosen notebooks takes
        for nb in (s.notebooks[i] for i in iterations or sorted(s.notebooks)):
            known.update(notebook_parameters(nb))
    overrides = run_args.parse_overrides(a.set or [], known)
    grid = run_args.parse_grid(a.grid, known) if a.grid else None
    both = sorted(set(grid[0]) & set(overrides)) if grid else []
    if both:
        raise LabError(f"{', '.join(both)} given in both --set and --grid; keep one")
    data_dir = Path(a.data).resolve() if a.data else fetch.default_root()
    # Every run's settings, checked before torch is imported: a mistyped command costs no wait.
    for _ in run_args.configs(chosen, iterations, seeds, out, overrides, a.smoke, a.threads or 1, data_dir, grid):
        pass
    _run(a, chosen, iterations, seeds, out, overrides, grid, data_dir)


def _run(a, chosen, iterations, seeds, out, overrides, grid, data_dir):
    from . import fetch
    from .runs import execute, plan
    from .runs.lock import FolderLock

    with contextlib.ExitStack() as stack:
        if a.cluster:
            from .runs.cluster import Cluster

            cluster = stack.enter_context(Cluster(a.cluster, a.retries))
            jobs, workers, threads = plan.on_cluster(cluster, a.cluster, chosen, iterations, seeds, out, overrides,
                                                     a.smoke, data_dir, grid, a.threads)
        else:
            cluster = None
            jobs, workers, threads = plan.local(chosen, iterations, seeds, out, overrides, a.smoke, data_dir, grid,
                                                a.workers, a.threads)
        _refuse_doubling(jobs, out)
        lock = stack.enter_context(FolderLock(out))
        if cluster is None:
            fetch.ensure(data_dir)  # once, before any notebook starts: no two runs race to fetch it
        names = ", ".join(s.name + (f" {iterations}" if iterations else "") for s in chosen)
        shown = seeds if seeds is not None else "; ".join(f"{s.name} {s.seeds or [0]}" for s in chosen)
        where = cluster.describe() if cluster else f"{workers} worker(s)"
        print(f"{len(jobs)} run(s): series {names}, seeds {shown}{f', grid of {len(grid)}' if grid else ''}, {where}, "
              f"{threads or 'default'} thread(s) each{', smoke runs' if a.smoke else ''} -> {paths.shown(out)}")
        skipped = set() if a.force else {j.result for j in jobs if plan.finished(j)[0]}
        todo = [j for j in jobs if j.result not in skipped]
        for line in _before(todo, workers, out, chosen, a.smoke, cluster is not None):
            print(line)
        started = time.perf_counter()
        failures = execute.run_series(jobs, workers, a.force, keep_fds=(lock.fd,), cluster=cluster)
        if not a.smoke:  # smoke runs are not results: the record of how the results were made stays
            execute.log_run(out, chosen, jobs, failures, skipped, time.perf_counter() - started, workers, threads)
        if not a.no_report:
            _reports(out, {s.name: s for s in chosen}, data_dir,
                     others=_repository_series(paths.base() / "notebooks", explicit=False))
    if failures:
        print(f"\n{len(failures)} notebook(s) failed:")
        for job, why in failures:
            print(f"  {job.label}: {why}" + (f"\n    see {paths.shown(job.executed)}" if job.executed.exists() else ""))
        sys.exit(1)


def _as_result(job) -> dict:
    """What a result file of `job` will say of its identity."""
    return {"series": job.series, "iteration": job.iteration, "seed": job.seed, "smoke": job.params["smoke"],
            "recipe": job.recipe}


def _committed(folder: Path, names=None) -> dict:
    """{machine.same_run key: result} of the result files under `folder`/<series>/results (those of `names`)."""
    from .machine import same_run
    from .results import load_results

    out = {}
    for d in sorted(folder.iterdir()) if folder.is_dir() else []:
        if (d / "results").is_dir() and (names is None or d.name in names):
            for r in load_results(d / "results", warn=lambda _: None):
                r = dict(r, series=r.get("series") or d.name)
                out[same_run(r)] = r
    return out


def _refuse_doubling(jobs, out: Path):
    """Into the committed folder, a run of the same method made on another machine would sit beside the
    committed one under another name, and every table would show both."""
    from .machine import same_run

    if Path(os.path.abspath(out)) != paths.reports_dir():
        return
    committed = _committed(out)
    clash = [(j, committed[k]) for j in jobs if (k := same_run(_as_result(j))) in committed
             and committed[k]["run_id"] != j.result.stem]
    if clash:
        job, old = clash[0]
        raise LabError(f"{len(clash)} of these runs would sit beside committed runs of the same method made on "
                       f"another machine (e.g. {job.result.stem} beside {old['run_id']}), and the reports would "
                       "show both: run into runs/ (the default, what `make reproduce` does) to compare with the "
                       "committed results, or replace them with `mnist-lab publish` (docs/results.md)")


def _before(todo, workers, out, chosen, smoke, on_cluster) -> list[str]:
    """What a user should know before a long job starts: its estimated wall time, and what a CPU other than
    the committed results' means for the comparison."""
    from .machine import cpu_name, described, same_run
    from .runs.plan import estimate

    lines = []
    if todo and not smoke:
        secs = estimate(todo, workers, out, chosen)
        if secs is not None:
            lines.append(f"{len(todo)} run(s) to do, about {_duration(secs)} of training with {workers} at once "
                         "(from earlier runs' seconds per epoch; notebook start-up not counted). Ctrl-C stops; "
                         "the same command resumes.")
    committed = _committed(paths.reports_dir(), {s.name for s in chosen})
    theirs = sorted({described(committed[k]) for j in todo if (k := same_run(_as_result(j))) in committed})
    mine = sorted({f"{cpu_name()}, {j.recipe['cpu']}" for j in todo if j.recipe.get("device") == "cpu"})
    if theirs and mine and not on_cluster and theirs != mine:
        lines.append(f"note: the committed results were made on {'; '.join(theirs)}, this machine is "
                     f"{'; '.join(mine)}: expect the same accuracy within seed noise, not the same bits (the "
                     "report's reproduction section compares each run with its committed one)")
    return lines


def _duration(secs: float) -> str:
    return f"{secs / 3600:.1f} h" if secs >= 5400 else f"{secs / 60:.0f} min" if secs >= 90 else f"{secs:.0f} s"


def _repository_series(root: Path, explicit: bool) -> dict:
    """{name: Series} of a notebooks folder, for the reports' titles and questions; {} where the default
    folder holds no series (an installed copy run elsewhere)."""
    from .series import find, is_series

    if not explicit and not (root.is_dir() and any(is_series(d) for d in root.iterdir() if d.is_dir())):
        return {}
    return find(root)


def _reports(out: Path, specs: dict, data_dir, strict=False, others=None):
    """Each series' report (`specs`: {name: the Series its runs were made from}), then the index of the
    output folder, with the titles of the other series it lists (`others`)."""
    from . import reports

    for name, spec in specs.items():
        try:
            print(f"report: {paths.shown(reports.build(out / name, spec, data_dir))}")
        except LabError as exc:
            if strict:
                raise
            print(f"report for {name} not written: {exc}")
    index = reports.index(out, {**(others or {}), **specs})
    if index:
        print(f"index: {paths.shown(index)}")


def cmd_report(a):
    from .reports import bare

    out = _out(a)
    have = sorted(d.name for d in out.iterdir() if (d / "results").is_dir()) if out.is_dir() else []
    names = a.series or have
    missing = [n for n in names if n not in have]
    if missing or not names:
        old = (out / "results").is_dir()  # the layout before series: <out>/results/
        hint = f"; its results/ folder is the layout before series: move it to {paths.shown(out / 'study' / 'results')}" \
            if old else "; run `mnist-lab run` first"
        raise LabError(f"no results for series {', '.join(missing) or '(any)'} in {paths.shown(out)} "
                       f"(it has: {', '.join(have) or 'none'}){hint}")
    # each series' series.json from the notebooks folder; a results folder of another name is a plain one
    root = Path(a.notebooks) if a.notebooks else paths.base() / "notebooks"
    known = _repository_series(root, explicit=bool(a.notebooks))
    _reports(out, {n: known.get(n) or bare(n) for n in names}, a.data, strict=True, others=known)


def cmd_publish(a):
    from .runs.publish import publish

    source = Path(a.source).resolve()
    names = a.series or sorted(d.name for d in source.iterdir() if (d / "results").is_dir()) if source.is_dir() else []
    if not names:
        raise LabError(f"no results in {paths.shown(source)}; run `make reproduce` first")
    target = paths.reports_dir()
    publish(source, target, names)
    known = _repository_series(paths.base() / "notebooks", explicit=False)
    from .reports import bare

    _reports(target, {n: known.get(n) or bare(n) for n in names}, a.data, strict=True, others=known)


def cmd_bench(a):
    from . import bench

    log = (lambda *_: None) if a.json else print
    if (a.rounds is not None and a.rounds < 1) or (a.batches is not None and a.batches < 1):
        raise LabError("--rounds and --batches must be at least 1")
    if a.workers < 0 or a.threads < 0 or a.reference_threads < 0:
        raise LabError("--workers, --threads and --reference-threads must be at least 0 (0: the default)")
    if a.series and a.cluster:
        raise LabError("give --series or --cluster, not both")
    if a.series:
        return _bench_series(a, log)
    if a.cluster:
        return _bench_cluster(a, log)
    rounds, batches = (3, 150) if a.quick else (a.rounds or 5, a.batches or 400)
    res = bench.run(a.device, rounds, batches, a.data, a.reference_threads, log=log)
    if a.json:
        print(json.dumps(res))
        return
    print(f"device {res['device']} ({res['threads']} threads; reference {res['reference_threads']}), "
          f"torch {res['torch']}, iteration 5's network, batch 64")
    print(f"  reference (PIL + DataLoader, 2 workers): {res['reference_img_s']:>9,.0f} img/s  "
          f"~{res['reference_epoch_s']:.1f} s/epoch")
    print(f"  mnist_lab (device tensors, batched aug):  {res['lab_img_s']:>9,.0f} img/s  ~{res['lab_epoch_s']:.1f} s/epoch")
    print(f"  ratio lab / reference: {res['ratio']:.2f}x (per round: {res['round_ratios']})")
    print(f"  held-out evaluation: {res['eval_img_s']:,.0f} img/s, all 10,000 test images in {res['eval_10k_s']:.3f} s "
          f"(reference: {res['reference_eval_img_s']:,.0f} img/s)")
    print(f"  the study's pipeline would need ~{res['reference_series_min']:.0f} min for the 106-epoch series "
          "with held-out evaluation every epoch")


def _bench_cluster(a, log):
    from . import benchcluster

    res = benchcluster.run(a.rounds or 1, a.data, log=log)
    if a.json:
        print(json.dumps(res))
        return
    print(f"a small sweep of {res['runs']} runs ({res['command']}), {res['cores']} cores, {res['rounds']} round(s):")
    for name, secs in res["seconds"].items():
        print(f"  {name:<20} {res['median'][name]:>6.1f} s wall (median; rounds: {secs})")
    base = res["median"]["local, 1 worker"]
    print("  speed-up over 1 local worker: " + ", ".join(f"{k} {base / v:.2f}x" for k, v in res["median"].items()
                                                          if k != "local, 1 worker"))


def _bench_series(a, log):
    from . import benchseries

    rounds, batches = (1, 60) if a.quick else (a.rounds or 3, a.batches or 100)
    res = benchseries.run(a.device, rounds, batches, a.workers, a.threads, a.data, a.reference_threads, log=log)
    if a.json:
        print(json.dumps(res))
        return
    print(f"device {res['device']}, torch {res['torch']}; the study's pipeline one notebook at a time "
          f"({res['reference_threads']} threads, DataLoader with 2 workers) vs mnist_lab with "
          f"{res['workers']} notebooks at once, {res['threads']} thread(s) each")
    print(f"  {'iteration':>9} {'epochs':>6} {'reference s/epoch':>18} {'lab s/epoch':>12}")
    for row in res["per_iteration"]:
        print(f"  {row['iteration']:>9} {row['epochs']:>6} {row['reference_epoch_s']:>18.1f} {row['lab_epoch_s']:>12.1f}")
    print(f"  series (training + held-out evaluation, {sum(r['epochs'] for r in res['per_iteration'])} epochs): "
          f"reference ~{res['reference_series_min']:.1f} min, lab ~{res['lab_series_min']:.1f} min")
    print(f"  ratio reference / lab: {res['ratio']:.2f}x (per round: {res['round_ratios']}); notebook start-up "
          "is not included on either side")


def _model(checkpoint):
    from .checkpoint import load_model
    from .reports import best_checkpoint

    path = Path(checkpoint) if checkpoint else best_checkpoint()
    return load_model(path, default=not checkpoint), path


def cmd_predict(a):
    from .digitize import classify, image_files, load_image

    model, path = _model(a.checkpoint)
    if not a.json:
        print(f"model: {paths.shown(path)}")
    rows, failed = [], 0
    for name in image_files(a.images):
        try:
            digit, conf, probs = classify(model, load_image(name))
        except LabError as exc:
            failed += 1
            print(f"{name}: {exc}", file=sys.stderr)
            continue
        rows.append({"path": name, "digit": digit, "confidence": round(conf, 6), "probabilities": probs})
        if not a.json:
            print(f"{name}: {digit} ({100 * conf:.1f}%)")
    if a.json:
        print(json.dumps(rows, indent=1))
    if failed:
        sys.exit(1)


def cmd_draw(a):
    from .draw import run_app

    model, path = _model(a.checkpoint)
    run_app(model, title=f"mnist_lab: draw a digit ({path.name})")


class _Parser(argparse.ArgumentParser):
    """A parser whose help may end with text read only when help is asked for (`late_epilog`)."""
    late_epilog = None

    def format_help(self):
        if self.late_epilog:
            self.epilog = self.late_epilog()
        return super().format_help()


def _run_epilog() -> str:
    """The series and the keys --set and --grid take, read from the notebooks."""
    from .config import PER_RUN
    from .series import notebook_parameters

    try:
        found = _repository_series(paths.base() / "notebooks", explicit=False)
    except (LabError, ValueError, OSError) as exc:
        return f"(the series could not be read: {exc})"
    keys: dict[str, str] = {}
    lines = ["series (--series):"]
    for name, s in found.items():
        lines.append(f"  {name:<11} {len(s.notebooks)} notebooks, seeds {s.seeds or [0]}: {s.title}")
        for nb in s.notebooks.values():
            keys.update({k: t for k, t in notebook_parameters(nb).items() if k not in PER_RUN})
    lines += ["", "keys for --set KEY=VALUE and --grid KEY=V1,V2 (what the notebooks take):",
              # "\0" holds each key to its type while textwrap wraps, so that no line ends inside "epochs (int)"
              textwrap.fill(", ".join(f"{k}\0({t})" for k, t in sorted(keys.items())), 100,
                            initial_indent="  ", subsequent_indent="  ").replace("\0", " ")]
    return "\n".join(lines)


def _version() -> str:
    from importlib import metadata

    from .results import code_version

    try:
        v = metadata.version("mnist_lab")
    except metadata.PackageNotFoundError:
        v = "(not installed)"
    return f"mnist-lab {v}, code {code_version()}"


class _Version(argparse.Action):
    def __init__(self, option_strings, dest, **kw):
        super().__init__(option_strings, dest, nargs=0, help="print the version and the code's commit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(_version())
        parser.exit()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mnist-lab", description="Small CNNs on MNIST: data, series runs, reports.")
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("data", help="fetch and verify the genuine MNIST (or Fashion-MNIST)")
    d.add_argument("--root", default=None, help="data folder (default $MNIST_LAB_DATA, else the repository's data/)")
    d.add_argument("--dataset", default="mnist", choices=[*DATASETS, "all"],
                   help="which data set (mnist_lab/datasets.py; default mnist)")
    d.add_argument("--repair", action="store_true", help="replace corrupted or truncated files")
    d.set_defaults(fn=cmd_data)

    r = sub.add_parser("run", help="execute the notebook series with papermill (into runs/ unless --out)")
    r.add_argument("--series", nargs="+", help="which series, by folder name under notebooks/ (default: all)")
    r.add_argument("--iterations", type=int, nargs="+",
                   help="which notebooks of one series, by number (default: all); needs a single --series")
    r.add_argument("--seeds", type=int, nargs="+", help="one run per seed (default: 0)")
    r.add_argument("--series-seeds", action="store_true",
                   help="each series with the seeds of its committed results (series.json \"seeds\"; what "
                        "`make reproduce` runs)")
    r.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="notebook parameter overrides, e.g. epochs=2 device=cpu")
    r.add_argument("--smoke", "--tiny", action="store_true",
                   help="smoke runs: a quick check of the whole path (20 batches, at most 2 epochs, 1,000 test "
                        "images), not results")
    r.add_argument("--force", action="store_true", help="redo runs that already have result files")
    r.add_argument("--grid", nargs="+", metavar="KEY=V1,V2",
                   help="a sweep: every notebook chosen at every combination of these values (times each seed), "
                        "e.g. lr=0.001,0.002 batch_size=64,128; replaces the series' own runs and sweeps")
    r.add_argument("--workers", type=int, default=None, help="notebooks run at once on this machine (default: one per core, at most one per run)")
    r.add_argument("--cluster", metavar="ADDRESS",
                   help="run the notebooks on the workers of a Dask scheduler, e.g. tcp://host:8786 (see docs/clusters.md)")
    r.add_argument("--retries", type=int, default=2,
                   help="with --cluster: how often Dask runs a failed notebook again (default 2; a lost worker's "
                        "jobs are rescheduled by Dask up to its allowed-failures, default 3)")
    r.add_argument("--threads", type=int, default=0,
                   help="CPU threads per notebook (default: cores / workers; 1 on a cluster). Part of the recipe: float sums "
                        "on the CPU depend on it, so equal threads give equal numbers")
    r.add_argument("--out", default=None,
                   help="output folder (default: the repository's runs/; `--out reports` writes into the committed results, "
                        "where `mnist-lab publish` is the maintainers' way)")
    r.add_argument("--notebooks", default=None,
                   help="folder of series folders, or one series folder (default: the repository's notebooks/)")
    r.add_argument("--data", default=None, help="MNIST folder (default $MNIST_LAB_DATA, else the repository's data/)")
    r.add_argument("--no-report", action="store_true", help="do not regenerate the report at the end")
    r.set_defaults(fn=cmd_run)
    r.formatter_class = argparse.RawDescriptionHelpFormatter
    r.late_epilog = _run_epilog

    rep = sub.add_parser("report", help="write <out>/<series>/README.md and plots from the result files, and <out>/README.md")
    rep.add_argument("--out", default=None, help="folder holding <series>/results/ (default: the repository's runs/; "
                     "`--out reports` for the committed results)")
    rep.add_argument("--series", nargs="+", help="which series (default: every one with results in --out)")
    rep.add_argument("--data", default=None, help="MNIST folder, for the gallery of mistakes")
    rep.add_argument("--notebooks", default=None,
                     help="where each series' series.json is (default: the repository's notebooks/)")
    rep.set_defaults(fn=cmd_report)

    pub = sub.add_parser("publish", help="for maintainers: replace the committed results in reports/ with the runs "
                         "of runs/ (each replaces the committed run it remakes), then write their reports")
    pub.add_argument("--series", nargs="+", help="which series (default: every one with results in --from)")
    pub.add_argument("--from", dest="source", default=str(paths.runs_dir()),
                     help="the output folder of the runs (default: the repository's runs/)")
    pub.add_argument("--data", default=None, help="MNIST folder, for the gallery of mistakes")
    pub.set_defaults(fn=cmd_publish)

    b = sub.add_parser("bench", help="training throughput: the study's pipeline vs mnist_lab's, side by side")
    b.add_argument("--quick", action="store_true", help="3 short rounds (under a minute on a 2-core CPU)")
    b.add_argument("--series", action="store_true",
                   help="the whole series instead: all seven networks, the study's way (one notebook at a time) "
                        "vs `mnist-lab run --workers W --threads T`, and the estimated series times")
    b.add_argument("--cluster", action="store_true",
                   help="a small sweep (8 runs) run here with 1 and 2 workers and on a Dask scheduler with 2 workers "
                        "started on this machine (loopback): the wall time of each")
    b.add_argument("--rounds", type=int, default=None, help="rounds (default 5; with --series 3; with --cluster 1)")
    b.add_argument("--batches", type=int, default=None,
                   help="batches per round and pipeline (default 400; with --series 100)")
    b.add_argument("--workers", type=int, default=0, help="with --series: notebooks at once (default: cores, <= 7)")
    b.add_argument("--threads", type=int, default=0, help="with --series: threads per notebook (default 1)")
    b.add_argument("--reference-threads", type=int, default=0,
                   help="torch threads of the study's pipeline's main process (default: torch's default, as the "
                        "study ran it; 1 avoids contention with its 2 loader workers)")
    b.add_argument("--device", default="auto")
    b.add_argument("--data", default=None)
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.set_defaults(fn=cmd_bench)

    pr = sub.add_parser("predict", help="recognise the digit in PNG/JPEG files")
    pr.add_argument("images", nargs="+", help="image files, one digit each, or folders of them")
    pr.add_argument("--checkpoint", help="model checkpoint (default: the report's best model)")
    pr.add_argument("--json", action="store_true", help="print a JSON list of {path, digit, confidence, probabilities}")
    pr.set_defaults(fn=cmd_predict)

    dr = sub.add_parser("draw", help="a window to draw a digit in and see it recognised")
    dr.add_argument("--checkpoint", help="model checkpoint (default: the report's best model)")
    dr.set_defaults(fn=cmd_draw)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        args.fn(args)
    except LabError as exc:
        print(f"mnist-lab {args.command}: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)

"""What `make reproduce` and resuming promise a user: runs go to runs/ and are compared with the committed
ones, never doubled beside them; a run counts as done only with its three files sound (a damaged checkpoint
or a missing executed notebook is redone, saying why); --set beats a series' sweep; the command line says
what a long job costs and answers a typo before torch is imported."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_lab import cli, paths, series
from mnist_lab.errors import LabError
from mnist_lab.runs import execute, plan
from conftest import ROOT

STUDY = series.find(ROOT / "notebooks")["study"]
COMMITTED = ROOT / "reports" / "study"


def committed_job(out: Path, cpu="AVX512"):
    """Study notebook 1, seed 0, planned as the committed run was made (one thread, `cpu`), into `out`."""
    jobs = plan.plan([STUDY], [1], [0], out, {"device": "cpu"}, False, 1, ROOT / "data", worker_cpu=cpu)
    assert len(jobs) == 1
    return jobs[0]


def copy_committed(job, out: Path):
    """The committed files of `job` (same name) copied into `out`'s series folder."""
    src = COMMITTED / "results" / job.result.name
    assert src.is_file(), f"the committed plan no longer names {src.name}"
    job.result.parent.mkdir(parents=True)
    job.executed.parent.mkdir(parents=True)
    for suffix in (".json", ".pt"):
        shutil.copy(src.with_suffix(suffix), job.result.with_suffix(suffix))
    shutil.copy(COMMITTED / "notebooks" / job.executed.name, job.executed)


# ---- 1. reproduce: an output folder of one's own, compared with the committed results ----------------
def test_reproduce_writes_to_runs_not_reports():
    made = subprocess.run(["make", "-n", "reproduce"], cwd=ROOT, capture_output=True, text=True).stdout
    line = next(x for x in made.splitlines() if "mnist-lab run" in x)
    assert "--out" not in line and "--force" not in line, line
    assert cli._out(cli.parser().parse_args(["run"])) == paths.runs_dir()


def test_runs_of_another_machine_are_not_doubled_into_reports():
    job = committed_job(paths.reports_dir(), cpu="DEFAULT")  # the same run, as another CPU would plan it
    with pytest.raises(LabError, match="would sit beside committed runs of the same method.*mnist-lab publish"):
        cli._refuse_doubling([job], paths.reports_dir())
    cli._refuse_doubling([committed_job(paths.reports_dir())], paths.reports_dir())  # the same name: replaced, fine
    cli._refuse_doubling([job], paths.runs_dir())  # anywhere else: compared, not doubled


def _remade(tmp_path, changes: dict) -> Path:
    """A runs/-like folder holding the committed study runs of notebook 1, each 'remade' on an AVX2 machine:
    the same numbers, except where `changes` ({seed: new accuracy}) says."""
    out = tmp_path / "study" / "results"
    out.mkdir(parents=True)
    for src in sorted((COMMITTED / "results").glob("it1_seed*.json")):
        r = json.loads(src.read_text())
        r["recipe"]["cpu"], r["device_name"] = "AVX2", "AMD EPYC"
        name = src.stem.rsplit("_", 1)[0] + "_0000aaaa"
        r["run_id"], r["checkpoint"] = name, f"{name}.pt"
        if r["seed"] in changes:
            r["final_test_acc"] = r["history"][-1]["test_acc"] = changes[r["seed"]]
        (out / f"{name}.json").write_text(json.dumps(r))
        shutil.copy(src.with_suffix(".pt"), out / f"{name}.pt")
    return tmp_path / "study"


@pytest.mark.slow  # the report of a runs/ folder beside every committed series
def test_the_report_of_remade_runs_puts_each_beside_its_committed_one(tmp_path):
    from mnist_lab.reports import build

    committed = {r["seed"]: r["final_test_acc"] for r in map(json.loads, map(Path.read_text, sorted(
        (COMMITTED / "results").glob("it1_seed*.json"))))}
    page = build(_remade(tmp_path, {0: committed[0] + 1.5, 2: committed[2] + 1.5}), STUDY).read_text()
    shifted = build(_remade(tmp_path / "shifted", {s: a + 1.5 for s, a in committed.items()}), STUDY).read_text()
    assert "0 of them bit for bit" in shifted
    assert "committed: +1.50 points" in shifted and "outside seed noise: not reproduced" in shifted
    section = page.split("## Reproduction", 1)[1].split("\n## ", 1)[0]
    assert "3 run(s) here remake a committed run" in section and "1 of them bit for bit" in section
    assert "x86_64, AVX512" in section and "AMD EPYC, AVX2" in section
    for seed, acc in committed.items():
        remade = acc if seed == 1 else acc + 1.5
        row = f"| 1 | {seed} | {acc:.2f} | {remade:.2f} | {remade - acc:+.2f} | {'yes' if seed == 1 else 'no'} |"
        assert row in section, (row, section)
    same = build(_remade(tmp_path / "again", {}), STUDY).read_text()
    assert "3 of them bit for bit" in same and "within seed noise" in same
    assert "## Reproduction" not in (COMMITTED / "README.md").read_text()  # the committed page compares nothing


def test_a_long_job_says_its_time_and_what_another_cpu_means(tmp_path):
    jobs = plan.plan([STUDY], [], [0, 1, 2], tmp_path, {"device": "cpu"}, False, 1, ROOT / "data",
                     worker_cpu="DEFAULT")
    lines = cli._before(jobs, 2, tmp_path, [STUDY], smoke=False, on_cluster=False)
    assert lines[0].startswith("21 run(s) to do, about ") and " with 2 at once" in lines[0]
    hours = sum(r["wall_seconds"] for r in map(json.loads, map(Path.read_text, (COMMITTED / "results").glob("*.json"))))
    shown = lines[0].split("about ", 1)[1].split(" of training")[0]
    value, unit = float(shown.split()[0]), shown.split()[1]
    secs = value * {"h": 3600, "min": 60, "s": 1}[unit]
    assert 0.3 * hours / 2 < secs < 1.5 * hours / 2, (shown, hours)  # two at once: about half the summed time
    assert "the committed results were made on x86_64, AVX512" in lines[1] and "DEFAULT" in lines[1]
    assert "not the same bits" in lines[1]


def test_publish_replaces_the_committed_run_it_remakes(tmp_path, monkeypatch):
    from mnist_lab.runs.publish import publish

    target = tmp_path / "reports"
    shutil.copytree(COMMITTED, target / "study")
    source = tmp_path / "runs"
    remade = _remade(source, {})
    (remade / "notebooks").mkdir()
    for r in sorted((remade / "results").glob("*.json")):
        tail = r.stem.split("_", 1)[1]
        (remade / "notebooks" / f"01_baseline_{tail}.ipynb").write_text("{}")
    before = len(list((target / "study" / "results").glob("*.json")))
    publish(source, target, ["study"], log=lambda _: None)
    names = sorted(p.name for p in (target / "study" / "results").glob("it1_*.json"))
    assert names == sorted(p.name for p in (remade / "results").glob("*.json"))  # the old it1 files are gone
    assert len(list((target / "study" / "results").glob("*.json"))) == before
    assert not list((target / "study" / "notebooks").glob("01_baseline_seed0_e71e20b5*"))
    (remade / "results" / names[0]).with_suffix(".pt").write_bytes(b"cut")
    with pytest.raises(LabError, match="damaged"):
        publish(source, target, ["study"], log=lambda _: None)


# ---- 2. a damaged checkpoint is never taken for a run -------------------------------------------------
def test_resume_redoes_a_run_whose_checkpoint_is_damaged(tmp_path, monkeypatch):
    job = committed_job(tmp_path)
    copy_committed(job, tmp_path)
    assert plan.finished(job) == (True, None)
    pt = job.result.with_suffix(".pt")
    with open(pt, "r+b") as f:  # `truncate -s 1000`
        f.truncate(1000)
    done, why = plan.finished(job)
    assert not done and "damaged" in why and "1,000 bytes" in why
    shutil.copy(COMMITTED / "results" / pt.name, pt)
    data = bytearray(pt.read_bytes())
    data[5000] ^= 1  # same size, one bit flipped
    pt.write_bytes(bytes(data))
    assert "SHA-256" in plan.finished(job)[1]

    picked, said = [], []
    monkeypatch.setattr(execute, "_local", lambda todo, workers, fds: picked.extend(todo) or iter(()))
    execute.run_series([job], 1, force=False, log=said.append)
    assert picked == [job] and any("redoing" in x and "damaged" in x for x in said), said


def test_load_model_says_damaged_naming_the_file_and_the_default(tmp_path):
    from mnist_lab.checkpoint import load_model

    job = committed_job(tmp_path)
    copy_committed(job, tmp_path)
    pt = job.result.with_suffix(".pt")
    with open(pt, "r+b") as f:
        f.truncate(1000)
    with pytest.raises(LabError) as own:
        load_model(pt)
    assert f"{pt} is damaged (1,000 bytes, its result file records" in str(own.value)
    with pytest.raises(LabError) as default:
        load_model(pt, default=True)
    assert "the repository's own default model" in str(default.value) and "git checkout --" in str(default.value)
    lone = tmp_path / "lone.pt"  # no result file beside it: judged by its bytes alone
    lone.write_bytes(pt.read_bytes())
    with pytest.raises(LabError, match=r"lone.pt is damaged \(cut short or overwritten: not a complete archive\); "
                                       r"remake it with `mnist-lab run`, or pass another --checkpoint$"):
        load_model(lone)


def test_predict_names_the_default_model_when_it_is_damaged(tmp_path, monkeypatch, capsys):
    import mnist_lab.reports as reports

    pt = tmp_path / "study" / "results" / "it6_seed0_x.pt"
    pt.parent.mkdir(parents=True)
    pt.write_bytes(b"PK\x03\x04 not really")
    monkeypatch.setattr(reports, "best_checkpoint", lambda: pt)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["predict", str(ROOT / "README.md")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "is damaged" in err and "own default model" in err, err
    assert "Traceback" not in err and "not a mnist_lab checkpoint" not in err


def test_result_files_record_their_checkpoints_digest():
    for folder in sorted((ROOT / "reports").glob("*/results")):
        for path in sorted(folder.glob("*.json")):
            r = json.loads(path.read_text())
            from mnist_lab.results import checkpoint_problem

            assert len(r["checkpoint_sha256"]) == 64 and r["checkpoint_bytes"] > 0, path
            assert checkpoint_problem(path, r) is None, path


# ---- 3. a run counts as done only with all three files -------------------------------------------------
def test_a_run_without_its_executed_notebook_is_not_done(tmp_path):
    job = committed_job(tmp_path)
    copy_committed(job, tmp_path)
    job.executed.unlink()
    done, why = plan.finished(job)
    assert not done and "executed notebook is missing" in why
    job.result.unlink()
    assert plan.finished(job) == (False, None)


STALL = '''import os, time
import mnist_lab.checkpoint as _ck
_stall, _parent = os.environ.get("STALL_AT"), os.getppid()


def _wait():  # until the runner is killed (papermill, our parent, dies with it); then die too, writing nothing
    while os.getppid() == _parent:
        time.sleep(0.2)
    os._exit(1)


if _stall == "start":
    _wait()
if _stall == "result":  # the checkpoint is written, the result file is not
    _ck.atomic_write_json = lambda *a, **k: _wait()
'''


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["start", "result", "notebook"])
def test_a_run_killed_at_each_step_is_redone_and_ends_with_its_three_files(tmp_path, stage, mnist_root):
    """The runner is killed (SIGKILL to its process group) while a notebook stalls: before anything is written,
    after the checkpoint but before the result file, after both but before papermill writes the executed
    notebook. Each time the same command afterwards ends with the run's three files, sound."""
    folder = tmp_path / "nb" / "study"
    folder.mkdir(parents=True)
    nb = json.loads((ROOT / "notebooks" / "study" / "01_baseline.ipynb").read_text())
    record = next(i for i, c in enumerate(nb["cells"]) if "record(cfg" in "".join(c["source"]))
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": STALL}
    last = dict(cell, source='if _stall == "notebook":\n    _wait()\n')
    nb["cells"][record:record] = [cell]
    nb["cells"].append(last)
    (folder / "01_baseline.ipynb").write_text(json.dumps(nb))
    (folder / "series.json").write_text(json.dumps({"title": "killed", "report": "study"}))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mnist_lab", "run", "--notebooks", str(folder), "--out", str(out), "--smoke",
           "--no-report", "--data", str(mnist_root)]
    runner = subprocess.Popen(cmd, env=dict(os.environ, STALL_AT=stage), start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = out / "study" / "results"
    sign = {"start": lambda: any((out / "study" / "notebooks").glob(".*.running")),
            "result": lambda: any(results.glob("*.pt")),
            "notebook": lambda: any(results.glob("*.json"))}[stage]
    deadline = time.time() + 240
    while not sign() and time.time() < deadline and runner.poll() is None:
        time.sleep(0.2)
    assert sign(), runner.communicate()[0] if runner.poll() is not None else "the stall was not reached"
    time.sleep(2 if stage == "start" else 0.5)
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait()
    assert not list((out / "study" / "notebooks").glob("*.ipynb")), "the executed notebook was written after all"
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "skipping" not in again.stdout, again.stdout
    if stage == "notebook":
        assert "its executed notebook is missing" in again.stdout, again.stdout
    jobs = plan.plan([series.load(folder)], [], [0], out, {}, True, 2, mnist_root)
    assert [plan.finished(j) for j in jobs] == [(True, None)]


# ---- 4. --set beats a series' sweep ----------------------------------------------------------------------
def test_set_replaces_that_keys_sweep(tmp_path):
    frameworks = series.find(ROOT / "notebooks")["frameworks"]
    jobs = plan.plan([frameworks], [1], [0], tmp_path, {"framework": "keras"}, True, 1, ROOT / "data")
    assert [j.recipe["framework"] for j in jobs] == ["keras"]
    assert jobs[0].label == "frameworks 1 framework=keras seed 0" and jobs[0].variant == {"framework": "keras"}
    plain = plan.plan([frameworks], [1], [0], tmp_path, {"epochs": 2}, True, 1, ROOT / "data")
    assert sorted(j.recipe.get("framework", "pytorch") for j in plain) == ["keras", "lightning", "numpy", "pytorch"]
    assert all("epochs=2" in j.label for j in plain)  # every setting that differs from the notebook's own


# ---- 6. obvious commands -------------------------------------------------------------------------------
def test_local_runs_default_to_one_worker_per_core(tmp_path):
    _, workers, threads = plan.local([STUDY], [], [0], tmp_path, {"device": "cpu"}, False, ROOT / "data", None,
                                     None, 0, log=lambda _: None)
    assert workers == min(os.cpu_count(), 7) and threads == max(1, os.cpu_count() // workers)


def test_version_and_run_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("mnist-lab ")
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = capsys.readouterr().out
    for name in ("study", "baselines", "frameworks", "under8k", "study_fashion", "under8k_fashion"):
        assert f"  {name} " in text
    # every key whole on one line, whatever the order of keys puts at a line's end
    for key in ("epochs (int)", "lr (float)", "framework (str)", "dataset (str)"):
        assert key in text
    assert cli.parser().parse_args(["run", "--tiny"]).smoke  # the other name, accepted


@pytest.mark.parametrize("args", [["run", "--set", "epoch=2"], ["run", "--series", "study", "--set", "epochs=0"],
                                  ["run", "--series", "nope"], ["run", "--series", "study", "--iterations", "9"]])
def test_argument_errors_come_before_torch_is_imported(args):
    code = ("import sys\nfrom mnist_lab.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    print('exit', e.code, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "exit 2 False", done.stdout + done.stderr
    assert done.stderr.startswith("mnist-lab run: ") and "Traceback" not in done.stderr

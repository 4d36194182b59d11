"""The run explorer and the drawing pad in the kernel, without a browser: their callbacks, driven as a frontend
would drive them (a button's click, a trait the page sets), checked against the result files and `predict`."""
import base64
import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

from mnist_lab import LabError, cli, explore, fetch, load_model, pad  # noqa: E402
from mnist_lab.augment import normalize, to_float  # noqa: E402
from mnist_lab.config import BATCH_ENV  # noqa: E402
from mnist_lab.reports.stats import stats, verdict  # noqa: E402
from mnist_lab.widgets.catalog import MEAN, Catalog  # noqa: E402
from conftest import ROOT

STUDY = ROOT / "reports" / "study" / "results"


@pytest.fixture(scope="module", autouse=True)
def interactive():
    """Driven as a Jupyter frontend drives them: not in batch mode, whatever the shell has set."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(BATCH_ENV, raising=False)
        yield


def study_run(iteration=5, seed=1) -> Path:
    """A committed full run of the study (its own recipe: the one with most seeds)."""
    ex = explore(STUDY)
    ex.picker.notebook.value = next(n for n in ex.picker.notebook.options if n.startswith(f"{iteration:02d} "))
    run = next(r for r in ex.picker.runset.runs if r["seed"] == seed)
    return Path(run["_path"])


@pytest.fixture(scope="module")
def run_file():
    return study_run()


def test_opening_on_a_result_file_shows_that_runs_numbers(run_file, mnist_root):
    r = json.loads(run_file.read_text())
    ex = explore(run_file, data_dir=mnist_root)
    assert ex.picker.runset.notebook == f"{r['iteration']:02d} {r['name']}" and ex.picker.chosen_seed == r["seed"]
    assert f"<b>{r['final_test_acc']:.2f} %</b>" in ex.summary.value and f"{r['params']:,} parameters" in ex.summary.value
    shown = [[float(ex.cells[t][p].description) for p in range(10)] for t in range(10)]
    assert shown == r["confusion"]


def test_every_choice_is_shown_and_the_recipe_only_where_there_are_several(run_file, mnist_root):
    ex = explore(run_file, data_dir=mnist_root)
    pk = ex.picker
    assert [w.layout.display for w in (pk.folder, pk.notebook, pk.framework, pk.seed)] == [None] * 4
    assert pk.recipe.layout.display == ("none" if len(pk.recipe.options) == 1 else None)
    pk.folder.value = "reports/frameworks"  # five notebooks in four frameworks
    assert len(pk.framework.options) > 1 and pk.runset.folder == "reports/frameworks"


def test_choosing_the_mean_over_seeds_shows_the_mean_and_its_spread(run_file, mnist_root):
    ex = explore(run_file, data_dir=mnist_root)
    ex.picker.seed.value = -1  # "mean over n seeds", as the dropdown sets it
    runs = ex.picker.runset.runs
    m, s, n = stats([r["final_test_acc"] for r in runs])
    assert n == 3 and f"{m:.2f} ± {s:.2f} % (n=3)" in ex.summary.value
    mean_4_9 = sum(r["confusion"][4][9] for r in runs) / n
    assert float(ex.cells[4][9].description) == pytest.approx(mean_4_9, abs=0.05)


def test_clicking_cell_4_9_lists_exactly_the_files_digits_with_true_4_and_predicted_9(run_file, mnist_root):
    r = json.loads(run_file.read_text())
    ex = explore(run_file, data_dir=mnist_root)
    ex.cells[4][9].click()  # what a click in the page does: the button's handlers run in the kernel
    want = sorted(i for i, p, t in r["mistakes"] if t == 4 and p == 9)
    assert len(want) == r["confusion"][4][9] > 0
    assert sorted(it["index"] for it in ex.shown) == want
    assert ex.digits.value.count('class="mnist-digit"') == len(want)
    assert f"True 4, predicted 9: {len(want)} held-out digit(s)" in ex.digits_title.value
    # each with the model's probabilities: its checkpoint's, on those very test images
    images, _ = fetch.load_arrays("test", mnist_root)
    model = load_model(run_file.with_name(r["checkpoint"]))
    with torch.inference_mode():
        probs = model(normalize(to_float(torch.from_numpy(images[[it["index"] for it in ex.shown]])))).exp()
    assert np.allclose([it["probs"] for it in ex.shown], probs.double().numpy(), atol=1e-6)
    assert all(int(np.argmax(it["probs"])) == 9 for it in ex.shown)


def test_a_diagonal_cell_holds_every_digit_of_its_class_the_run_got_right(run_file, mnist_root):
    r = json.loads(run_file.read_text())
    ex = explore(run_file, data_dir=mnist_root)
    _, labels = fetch.load_arrays("test", mnist_root)
    found = ex.picker.runset.cell(7, 7, labels, r["seed"])
    assert len(found) == r["confusion"][7][7] and all(labels[i] == 7 for i, _ in found)
    ex.cells[7][7].click()
    assert len(ex.shown) == 40 and f"{r['confusion'][7][7]} held-out digit(s), showing 40" in ex.digits_title.value


def test_over_the_seeds_a_cell_lists_each_digit_with_the_number_of_runs_that_made_that_mistake(run_file, mnist_root):
    ex = explore(run_file, data_dir=mnist_root)
    ex.picker.seed.value = -1
    ex.cells[4][9].click()
    runs = ex.picker.runset.runs
    want = {}
    for r in runs:
        for i, p, t in r["mistakes"]:
            if (t, p) == (4, 9):
                want[i] = want.get(i, 0) + 1
    assert {it["index"]: it["in_runs"] for it in ex.shown} == want
    assert f"in any of the {len(runs)} runs" in ex.digits_title.value


def test_the_compare_tab_judges_the_difference_as_the_reports_do(run_file, mnist_root):
    ex = explore(run_file, data_dir=mnist_root)
    ex.picker.seed.value = -1
    ex.other.folder.value = "reports/study"
    ex.other.notebook.value = next(n for n in ex.other.notebook.options if n.startswith("07 "))
    a, b = ex.picker.runset.accuracy(MEAN), ex.other.runset.accuracy(MEAN)
    assert verdict(b, a, "points") in ex.verdict.value
    png = Image.open(io.BytesIO(ex.compare_plot.value))
    assert png.format == "PNG" and png.width > 300


def test_your_run_is_compared_by_default_with_the_committed_runs_of_its_notebook(tmp_path, run_file, mnist_root):
    mine = tmp_path / "results"
    mine.mkdir()
    for suffix in (".json", ".pt"):
        (mine / run_file.with_suffix(suffix).name).write_bytes(run_file.with_suffix(suffix).read_bytes())
    ex = explore(mine / run_file.name, data_dir=mnist_root)
    assert ex.picker.runset.folder != "reports/study" and ex.other.runset.folder == "reports/study"
    assert ex.other.runset.notebook == ex.picker.runset.notebook and ex.other.chosen_seed is MEAN


def test_where_no_frontend_renders_widgets_a_figure_and_a_line_stand_in(run_file, mnist_root):
    bundle = explore(run_file, data_dir=mnist_root)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert Image.open(io.BytesIO(base64.b64decode(bundle["image/png"]))).format == "PNG"
    r = json.loads(run_file.read_text())
    assert f"held-out test accuracy {r['final_test_acc']:.2f} %" in bundle["text/plain"]


def test_explore_says_what_it_takes(tmp_path):
    with pytest.raises(LabError, match="takes a result file"):
        explore(tmp_path / "nothing.txt")
    with pytest.raises(LabError, match="no results folder"):
        Catalog.load(tmp_path / "missing")


def test_a_damaged_result_file_is_skipped_with_a_line_not_a_traceback(tmp_path, run_file, mnist_root):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / run_file.name).write_bytes(run_file.read_bytes())
    (mine / run_file.with_suffix(".pt").name).write_bytes(run_file.with_suffix(".pt").read_bytes())
    (mine / "it9_seed0_broken.json").write_text("{not json")
    ex = explore(mine, data_dir=mnist_root)
    assert len(ex.catalog.skipped) == 1 and "it9_seed0_broken.json" in ex.catalog.skipped[0]


# -- the drawing pad

STROKES = [[(150, 50), (150, 120), (148, 200), (146, 235)], [(120, 60), (150, 50)]]  # a "1" with a flag


def predicted_by_the_command_line(checkpoint, image: Image.Image, tmp_path) -> list[float]:
    png = tmp_path / "drawn.png"
    image.save(png)
    out = io.StringIO()
    with redirect_stdout(out):
        cli.main(["predict", "--json", "--checkpoint", str(checkpoint), str(png)])
    return json.loads(out.getvalue())[0]["probabilities"]


def test_a_stroke_fed_to_the_pad_gives_the_probabilities_predict_gives_for_the_same_image(tmp_path, run_file):
    box = pad(run_file)
    p = box.pad
    assert p.guess.startswith("Draw") and p.probs == [0.0] * 10
    for s in STROKES:
        p.stroke(s)  # what the page sends when the mouse button is released
    want = predicted_by_the_command_line(run_file.with_suffix(".pt"), p.image, tmp_path)
    assert p.probs == want
    digit = int(np.argmax(want))
    assert p.guess.startswith(f"Prediction: {digit} ")
    # the image the kernel inked holds the strokes: ink where they run, paper far from them
    pixels = np.asarray(p.image)
    assert pixels[120, 150] == 0 and pixels[120, 40] == 255


def test_the_pad_updates_after_each_stroke_and_clears(run_file):
    p = pad(run_file).pad
    p.stroke(STROKES[0])
    first = list(p.probs)
    p.stroke([(100, 230), (200, 230)])  # a base under the "1"
    assert p.probs != first and len(p.strokes) == 2
    p.clear()
    assert p.strokes == [] and p.probs == [0.0] * 10 and p.guess.startswith("Draw")


def test_what_a_page_sends_that_is_not_a_stroke_is_dropped(run_file):
    p = pad(run_file).pad
    p.strokes = [[["a", 2]], "nonsense", [], [[140, 40], [140, 240]]]
    assert p.strokes == [[[140.0, 40.0], [140.0, 240.0]]] and p.guess.startswith("Prediction")


def test_the_pad_opens_on_the_studys_best_model_and_offers_every_checkpoint(tmp_path, run_file):
    from mnist_lab.reports import best_checkpoint

    box = pad()
    assert box.choice.value == str(best_checkpoint().resolve()) and "the study's best" in box.pad.model_name
    other = str(run_file.with_suffix(".pt").resolve())
    assert other in [v for _, v in box.choice.options]
    box.pad.stroke(STROKES[0])
    box.choice.value = other  # the user picks another model: the same drawing, that model's answer
    assert box.pad.model_name.startswith("reports/study 05") and box.pad.probs == \
        predicted_by_the_command_line(other, box.pad.image, tmp_path)


def test_the_pad_names_a_missing_checkpoint(tmp_path):
    with pytest.raises(LabError, match="no checkpoint"):
        pad(tmp_path / "gone.pt")


def test_a_notebook_the_lab_keeps_shows_the_explorers_figure_where_no_kernel_backs_its_widgets(tmp_path, run_file):
    """papermill stores each widget's view and state; the executed notebook the runner keeps (nbfiles) holds the
    explorer's figure and the pad's line instead, which JupyterLab, nbconvert and a notebook viewer all show."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    from mnist_lab.runs.nbfiles import compact

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(f"from mnist_lab import explore, pad\npad({str(run_file)!r})"),
                nbformat.v4.new_code_cell(f"explore({str(run_file)!r})")]
    nbformat.write(nb, tmp_path / "in.ipynb")
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               progress_bar=False, cwd=str(ROOT))
    raw = nbformat.read(tmp_path / "out.ipynb", 4)
    assert "widgets" in raw.metadata and "application/vnd.jupyter.widget-view+json" in raw.cells[1].outputs[0].data
    compact(tmp_path / "out.ipynb", tmp_path / "kept.ipynb", "kept.ipynb")
    kept = nbformat.read(tmp_path / "kept.ipynb", 4)
    assert "widgets" not in kept.metadata
    pad_out, explore_out = kept.cells[0].outputs[0].data, kept.cells[1].outputs[0].data
    assert set(pad_out) == {"text/plain"} and "drawing pad" in pad_out["text/plain"]
    assert set(explore_out) == {"image/png", "text/plain"}
    html, _ = HTMLExporter().from_notebook_node(kept)
    assert explore_out["image/png"][:100] in html.replace("\n", "")


def test_the_compare_tab_follows_a_change_of_the_run_chosen_above(run_file, mnist_root):
    ex = explore(run_file, data_dir=mnist_root)
    ex.other.notebook.value = next(n for n in ex.other.notebook.options if n.startswith("01 "))
    ex.picker.notebook.value = next(n for n in ex.picker.notebook.options if n.startswith("07 "))  # A after B
    assert "<b>A</b> reports/study 07 dropout_everywhere" in ex.verdict.value


def test_one_run_against_several_is_judged_with_the_several_runs_spread(run_file, mnist_root):
    from mnist_lab.widgets.explorer import judge

    ex = explore(run_file, data_dir=mnist_root)
    ex.other.folder.value = "reports/study"
    ex.other.notebook.value = ex.picker.runset.notebook
    ex.other.seed.value = -1
    one, several = ex.picker.runset.accuracy(1), ex.other.runset.accuracy(MEAN)
    assert judge(several, one) in ex.verdict.value and "no spread to judge by" not in ex.verdict.value
    se = (several[1] ** 2 / 1 + several[1] ** 2 / 3) ** 0.5
    assert f"standard error {se:.2f}" in ex.verdict.value


def test_a_smoke_run_is_explored_on_its_own_test_images_and_named_so_beside_full_runs(tmp_path, mnist_root):
    from mnist_lab import Config, MNISTData, Net, conv, fit, head, pool, record, setup

    cfg = Config(iteration=1, name="tiny", seed=0, epochs=1, smoke=True, smoke_batches=3, device="cpu",
                 data_dir=str(mnist_root), results_dir=str(tmp_path / "results"))
    device = setup(cfg)
    model = Net([conv(1, 4), pool(), conv(4, 8), pool(), head()])
    data = MNISTData.for_config(cfg, device)
    path = record(cfg, model, fit(model, data, cfg), data, device)
    r = json.loads(path.read_text())
    ex = explore(path, data_dir=mnist_root)
    assert r["test_size"] == 1000 and "smoke run, 1,000 test images" in ex.summary.value
    _, labels = fetch.load_arrays("test", mnist_root)
    for t in range(10):  # every cell of a row holds that class's first-1,000 digits, no more, no fewer
        found = sum(len(ex.picker.runset.cell(t, p, labels, 0)) for p in range(10))
        assert found == int((labels[:1000] == t).sum()) == sum(r["confusion"][t])
    ex.other.folder.value = "reports/study"  # beside the committed full runs, the verdict says what it is worth
    assert "A is scored on 1,000 test images (a smoke run), B on 10,000" in ex.verdict.value


def test_a_keras_runs_digits_carry_its_own_checkpoints_probabilities(mnist_root):
    ex = explore(ROOT / "reports" / "frameworks" / "results", data_dir=mnist_root)
    pk = ex.picker
    pk.notebook.value = next(n for n in pk.notebook.options if n.startswith("02 "))
    pk.framework.value = "keras"
    pk.seed.value = pk.runset.seeds[0]
    r = pk.runset.first
    t, p = next((t, p) for t in range(10) for p in range(10) if t != p and r["confusion"][t][p])
    ex.cells[t][p].click()
    assert len(ex.shown) == r["confusion"][t][p] and "no probabilities" not in ex.digits_title.value
    assert all(int(np.argmax(it["probs"])) == p for it in ex.shown)


def test_a_damaged_checkpoint_is_named_beside_the_digits_not_hidden(tmp_path, run_file, mnist_root):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / run_file.name).write_bytes(run_file.read_bytes())
    (mine / run_file.with_suffix(".pt").name).write_bytes(b"PK\x03\x04 cut short")
    ex = explore(mine / run_file.name, data_dir=mnist_root)
    ex.cells[4][9].click()
    assert "no probabilities" in ex.digits_title.value and "damaged" in ex.digits_title.value
    assert sorted(it["index"] for it in ex.shown) == sorted(
        i for i, p, t in json.loads(run_file.read_text())["mistakes"] if (t, p) == (4, 9))


def test_an_empty_or_unusable_folder_is_a_message_not_a_traceback(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabError, match="no usable result files"):
        explore(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "it1_seed0_x.json").write_text("[]")
    with pytest.raises(LabError, match="not a result file"):
        explore(tmp_path / "bad")


def test_a_model_that_cannot_be_loaded_leaves_the_pad_on_the_one_it_had(tmp_path, run_file):
    box = pad(run_file)
    start = box.choice.value
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    box.choice.options = [*box.choice.options, ("broken", str(broken))]  # ipywidgets picks the first option anew
    box.choice.value = start
    box.pad.stroke(STROKES[0])
    before, name = list(box.pad.probs), box.pad.model_name
    box.choice.value = str(broken)
    assert box.choice.value == str(run_file.with_suffix(".pt").resolve()) and box.pad.model_name == name
    assert box.pad.guess.startswith("not switched:") and "not a mnist_lab checkpoint" in box.pad.guess
    box.pad.stroke(STROKES[1])
    assert box.pad.guess.startswith("Prediction")  # still the model it had, answering
    assert before != box.pad.probs


def test_pad_says_what_a_folder_is_not(tmp_path):
    with pytest.raises(LabError, match="is a folder"):
        pad(tmp_path)


# -- batch mode: a papermill or nbval kernel, where only the static display is ever shown

@pytest.fixture
def folders_read(monkeypatch):
    """The results folders the explorer's catalogue reads from now on, resolved, in order."""
    from mnist_lab.widgets import catalog

    read, load = [], catalog.load_results
    monkeypatch.setattr(catalog, "load_results", lambda folder, **kw: read.append(Path(folder).resolve()) or
                        load(folder, **kw))
    return read


def test_in_batch_mode_explore_shows_the_explorers_static_display_read_from_the_runs_folder_alone(
        run_file, folders_read, monkeypatch):
    from mnist_lab.widgets import Explorer

    full = explore(run_file)._repr_mimebundle_()
    assert len(set(folders_read)) > 1  # the explorer reads every committed series, to compare with
    folders_read.clear()
    monkeypatch.setenv(BATCH_ENV, "1")
    shown = explore(run_file)
    bundle = shown._repr_mimebundle_()
    assert not isinstance(shown, Explorer) and folders_read == [run_file.parent.resolve()]
    assert set(bundle) == {"image/png", "text/plain"}  # what a kept notebook holds of the explorer (nbfiles)
    assert bundle["text/plain"] == full["text/plain"] and "05 bn_below_20k (pytorch, seed 1)" in bundle["text/plain"]
    assert bundle["image/png"] == full["image/png"]  # the same figure, drawn alike to the byte


@pytest.mark.parametrize("target, first", [(None, STUDY), (ROOT / "reports" / "frameworks",
                                                            ROOT / "reports" / "frameworks" / "results")])
def test_in_batch_mode_explore_of_a_folder_or_of_nothing_shows_the_run_set_the_explorer_opens_on(
        target, first, folders_read, monkeypatch):
    full = explore(target)._repr_mimebundle_()
    folders_read.clear()
    monkeypatch.setenv(BATCH_ENV, "1")
    bundle = explore(target)._repr_mimebundle_()
    assert folders_read == [first.resolve()]
    assert bundle["text/plain"] == full["text/plain"] and "mean over seeds" in bundle["text/plain"]
    assert bundle["image/png"] == full["image/png"]


@pytest.mark.parametrize("which", ["committed", "elsewhere", "default"])
def test_in_batch_mode_pad_shows_the_pads_line_without_listing_every_checkpoint(
        which, tmp_path, run_file, folders_read, monkeypatch):
    target = {"committed": run_file, "default": None}.get(which, tmp_path / "results" / run_file.name)
    if which == "elsewhere":  # a notebook's own run, outside reports/ and runs/
        target.parent.mkdir()
        for suffix in (".json", ".pt"):
            target.with_suffix(suffix).write_bytes(run_file.with_suffix(suffix).read_bytes())
    full = pad(target)._repr_mimebundle_()["text/plain"]
    named = {"committed": "(reports/study 05 bn_below_20k, pytorch, seed 1: ", "elsewhere": "(this run: 05 ",
             "default": " (the study's best)): "}[which]
    assert named in full
    folders_read.clear()
    monkeypatch.setenv(BATCH_ENV, "1")
    assert pad(target)._repr_mimebundle_() == {"text/plain": full}
    assert folders_read == ([] if which == "elsewhere" else [STUDY.resolve()])


def test_a_bad_target_is_refused_in_the_same_words_in_batch_mode(tmp_path, run_file, monkeypatch):
    for name in ("empty", "bad", "damaged", "broken"):
        (tmp_path / name).mkdir()
    (tmp_path / "bad" / "it1_seed0_x.json").write_text("[]")
    damaged = tmp_path / "damaged" / run_file.name  # alone in its folder: nothing there to show
    damaged.write_text("{not json")
    broken = tmp_path / "broken" / run_file.name
    broken.write_bytes(run_file.read_bytes())
    broken.with_suffix(".pt").write_bytes(b"not a checkpoint")
    for fn, target, words in [(explore, tmp_path / "nothing.txt", "takes a result file"),
                              (explore, tmp_path / "empty", "no usable result files"),
                              (explore, tmp_path / "bad", "not a result file"),
                              (explore, damaged, "is not a usable result file"),
                              (pad, tmp_path / "gone.pt", "no checkpoint"), (pad, tmp_path, "is a folder"),
                              (pad, damaged, "not a readable result file"), (pad, broken, "damaged")]:
        said = []
        for batch in (False, True):
            if batch:
                monkeypatch.setenv(BATCH_ENV, "1")
            else:
                monkeypatch.delenv(BATCH_ENV, raising=False)
            with pytest.raises(LabError, match=words) as exc:
                fn(target)
            said.append(str(exc.value))
        assert said[0] == said[1], (fn.__name__, target)

"""Ensembles across recipes: weights fitted out of fold, refusals in one line, resumable, and one set of
numbers whichever way the ensemble is used (predict, evaluate --data, serve, export)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import QUIET, make_zindi, tiny_config

import signvision as sv
from signvision.cli.commands import main
from signvision.errors import RunError
from signvision.models.probs import merge_probs
from signvision.runs.crossval import fit_folds
from signvision.runs.ensemble import greedy_weights, objective


@pytest.fixture(scope="module")
def two_recipes(tmp_path_factory):
    """Two 2-fold runs of different recipes (LeNet widths and image sizes) on the same data, folds and seed."""
    root = tmp_path_factory.mktemp("ensemble")
    data = make_zindi(root / "zindi", n_per_class=12)
    fit_folds(tiny_config(data, root / "a", folds=2, epochs=1, lr=1e-3, image_size=16))
    fit_folds(tiny_config(data, root / "b", folds=2, epochs=1, lr=1e-3, image_size=24, lenet_width=2))
    return data, root


def test_blend_and_greedy_weights_drop_a_run_that_does_not_help():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    good = np.full((200, 3), 0.1)
    good[np.arange(200), y] = 0.8
    noise = rng.dirichlet(np.ones(3), 200)
    score = lambda p: objective(y, p, "log_loss", ["a", "b", "c"])  # noqa: E731
    weights = greedy_weights([noise, good, noise.copy()], y, "mean", score)
    assert weights.tolist() == [0.0, 1.0, 0.0]
    # the geometric mean renormalises; one temperature on top keeps the ranking
    g = merge_probs([good, noise], [0.5, 0.5], "geometric", 2.0)
    assert np.allclose(g.sum(1), 1) and (g.argmax(1) == merge_probs([good, noise], [1, 1], "geometric").argmax(1)).all()
    binary = merge_probs([np.array([0.9, 0.2]), np.array([0.7, 0.4])], [1, 1], "geometric")
    assert binary.shape == (2,) and 0.7 < binary[0] < 0.9


@pytest.mark.slow
def test_ensemble_of_two_recipes_is_a_run(two_recipes, tmp_path):
    data, root = two_recipes
    said = []
    run = sv.ensemble([root / "a", root / "b"], out=tmp_path / "e", log=said.append)
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    e = summary["ensemble"]
    weights = [r["weight"] for r in e["runs"]]
    assert sum(weights) == pytest.approx(1) and min(weights) >= 0 and e["merge"] in ("mean", "geometric")
    assert summary["val_log_loss"] <= min(r["log_loss"] for r in e["runs"]) + 1e-9  # fitted on these images
    assert summary["val_log_loss_ci"][0] <= summary["val_log_loss"] <= summary["val_log_loss_ci"][1]
    assert "gain_over_best_run" in e and any("paired over" in line for line in said)
    oof = pd.read_csv(tmp_path / "e" / "oof.csv")
    assert len(oof) == summary["oof_images"] == 36

    # its own out-of-fold images scored again by its models give the figures the fit stored
    figures = run.evaluate(device="cpu", **QUIET)
    assert figures["without_tta"]["log_loss"] == pytest.approx(summary["val_log_loss"], abs=2e-4)
    page = (tmp_path / "e" / "report.html").read_text()
    metrics_table = page[
        page.index("<th class=l>metric</th>") : page.index("</table>", page.index("<th class=l>metric"))
    ]
    assert all(f"<td class=l>{k}</td>" in metrics_table for k in ("roc_auc", "log_loss", "accuracy", "ece"))
    assert page.index("</table>") < page.index("<h2>Ensemble</h2>")  # whole tables, the ensemble's after

    # predict, evaluate --data, the exported graph and serve: the same probabilities. Both runs weighed
    # (whatever the fit chose on this tiny data) and merged geometrically, so that every path blends two runs
    # of two image sizes.
    summary["ensemble"]["runs"][0]["weight"], summary["ensemble"]["runs"][1]["weight"] = 0.6, 0.4
    summary["ensemble"]["merge"] = "geometric"
    (tmp_path / "e" / "summary.json").write_text(json.dumps(summary))
    run = sv.load_run(tmp_path / "e")
    assert len(run.members) == 4 and run.members.weights == [0.6, 0.4]
    table = pd.read_csv(data / "Train.csv")
    labelled = table.groupby("Label").head(3)
    csv = data / "labelled.csv"  # beside Images/, where a CSV's images are looked for
    labelled.to_csv(csv, index=False)
    paths = [str(data / "Images" / f"{i}.jpg") for i in labelled["img_IDS"]]
    predicted = run.predict(pd.DataFrame({"img_IDS": labelled["img_IDS"], "path": paths}), device="cpu")
    probs = predicted.frame[run.classes].to_numpy()
    y = np.array([run.classes.index(v) for v in labelled["Label"]])
    evaluated = run.evaluate(csv, device="cpu", **QUIET)
    assert evaluated["log_loss"] == pytest.approx(sv.compute_metrics(y, probs, run.classes)["log_loss"], abs=1e-6)
    ort = pytest.importorskip("onnxruntime")
    from signvision.data.images import load_resized
    from signvision.inference.export import export_onnx

    path = export_onnx(tmp_path / "e", tmp_path / "e.onnx")
    images = np.stack([load_resized(p, 24) for p in paths]).transpose(0, 3, 1, 2)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"images": images})[0], probs, atol=1e-4)

    # compare shows every model; serve answers with the same numbers
    table = sv.compare_runs([root / "a", tmp_path / "e"])
    assert table["model"].iloc[1] == summary["model"] and "lenet" in summary["model"]
    assert summary["model"] in repr(run) and summary["model"] in run._repr_html_()  # not the heaviest run's alone
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from signvision.inference.serve import create_app

    client = TestClient(create_app(tmp_path / "e", device="cpu"), base_url="http://127.0.0.1")
    first = paths[0]
    reply = client.post("/predict", files=[("images", ("x.jpg", open(first, "rb").read(), "image/jpeg"))])
    got = [reply.json()["results"][0]["probabilities"][c] for c in run.classes]
    np.testing.assert_allclose(got, probs[0], atol=2e-6)


@pytest.mark.slow
def test_ensemble_refuses_other_folds_classes_and_single_runs(two_recipes, tmp_path, capsys):
    data, root = two_recipes
    other_seed = tmp_path / "c"
    fit_folds(tiny_config(data, other_seed, folds=2, epochs=1, image_size=16, seed=1))
    single = tmp_path / "single"
    sv.train(config=tiny_config(data, single, epochs=1), log=QUIET["log"])
    other_data = make_zindi(tmp_path / "other", n_per_class=12, classes=["x", "y", "z"])
    other_classes = tmp_path / "d"
    fit_folds(tiny_config(other_data, other_classes, folds=2, epochs=1, image_size=16))
    for runs, words in (
        ([root / "a", other_seed], "other folds"),
        ([root / "a", other_classes], "other classes"),
        ([root / "a", single], "is not a --folds run"),
        ([root / "a"], "two or more runs"),
    ):
        code = main(["ensemble", *map(str, runs), "--out", str(tmp_path / "e")])
        err = capsys.readouterr().err
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "e").exists()


def test_an_interrupted_ensemble_is_finished_by_the_same_command(two_recipes, tmp_path, monkeypatch):
    import signvision.runs.ensemble as ensemble_module

    data, root = two_recipes
    real = ensemble_module.ensemble_summary

    def killed(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(ensemble_module, "ensemble_summary", killed)
    with pytest.raises(KeyboardInterrupt):
        sv.ensemble([root / "a", root / "b"], out=tmp_path / "e", **QUIET)
    with pytest.raises(RunError, match="ensemble not finished"):
        sv.load_run(tmp_path / "e")  # no half-written ensemble is used
    monkeypatch.setattr(ensemble_module, "ensemble_summary", real)
    assert main(["ensemble", str(root / "a"), str(root / "b"), "--out", str(tmp_path / "e")]) == 0
    assert sv.load_run(tmp_path / "e").summary["status"] == "finished"


def test_tta_is_chosen_on_out_of_fold_images_and_auto_uses_it(two_recipes, tmp_path, capsys):
    data, root = two_recipes
    run = root / "a"
    code = main(["predict", "--run", str(run), "--data", str(data), "--out", str(tmp_path / "s.csv"), "--tta", "auto"])
    err = capsys.readouterr().err
    assert code == 2 and "--tta choose" in err and len(err.strip().splitlines()) == 1
    assert main(["evaluate", "--run", str(run), "--tta", "choose", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "TTA capture against none, paired over" in out and "TTA hflip against none" in out
    choice = json.loads((run / "evaluations" / "tta-choice.json").read_text())
    assert set(choice["gains"]) == {"hflip", "capture"}
    paying = [m for m, g in choice["gains"].items() if g["log_loss_ci"][1] < 0]
    assert choice["chosen"] == (min(paying, key=lambda m: choice["gains"][m]["log_loss"]) if paying else "none")
    assert (run / "evaluations" / "run-validation-tta-capture" / "evaluation.json").is_file()
    assert (
        main(["predict", "--run", str(run), "--data", str(data), "--out", str(tmp_path / "s.csv"), "--tta", "auto"])
        == 0
    )


def damaged(run, tmp_path, name: str, edit) -> str:
    """A copy of `run` whose oof.csv (or folds.csv) `edit` changed (a function of the text's lines)."""
    import shutil

    copy = tmp_path / name
    shutil.copytree(run, copy)
    path = copy / "oof.csv"
    lines = path.read_text().splitlines()
    changed = edit(lines)
    if changed is None:
        path.unlink()
    else:
        path.write_text("\n".join(changed) + "\n")
    return str(copy)


def set_cell(lines: list[str], row: int, column: str, value: str) -> list[str]:
    header = lines[0].split(",")
    cells = lines[row - 1].split(",")
    cells[header.index(column)] = value
    return [*lines[: row - 1], ",".join(cells), *lines[row:]]


@pytest.mark.slow
def test_the_fourth_adversarial_round_damaged_run_files_are_one_line(two_recipes, tmp_path, capsys):
    """G3, G4, G15: an ensemble checks each run's oof.csv against its folds.csv and classes before fitting."""
    data, root = two_recipes
    a = str(root / "a")
    header = (root / "b" / "oof.csv").read_text().splitlines()[0].split(",")
    drop = header.index("Me voy")
    cases = {
        "short": (lambda lines: lines[:21], "20 rows, but folds.csv validates 36 images"),
        "missing": (lambda lines: None, "oof.csv: file not found"),
        "empty cell": (lambda lines: set_cell(lines, 5, "Me voy", ""), "row 5: column 'Me voy' is empty"),
        "nan": (lambda lines: set_cell(lines, 7, "Ñandú", "nan"), "row 7: column 'Ñandú' 'nan' is not a probability"),
        "twice": (lambda lines: lines + lines[1:5], "row 38: "),
        "no column": (
            lambda lines: [",".join(c for k, c in enumerate(x.split(",")) if k != drop) for x in lines],
            "no column 'Me voy'",
        ),
        "label": (
            lambda lines: set_cell(lines, 2, "Label", "Ñandú" if "Ñandú" not in lines[1] else "Me voy"),
            "row 2: Label",
        ),
        "zeros": (
            lambda lines: [lines[0], *[",".join(x.split(",")[:3] + ["0"] * 3) for x in lines[1:]]],
            "add up to 0.0000",
        ),
    }
    for name, (edit, words) in cases.items():
        b = damaged(root / "b", tmp_path, name.replace(" ", "_"), edit)
        for runs in ([b, a], [a, b]):  # the damaged run first (its rows were the base) and second
            code = main(["ensemble", *runs, "--out", str(tmp_path / "e")])
            err = capsys.readouterr().err
            assert code == 2 and words in err and len(err.strip().splitlines()) == 1, f"{name}: {err}"
            assert f"{b}/oof.csv" in err and "--run" not in err and "Traceback" not in err, err
            assert not (tmp_path / "e").exists()
    b = damaged(root / "b", tmp_path, "no_config", lambda lines: lines)  # found in session 23: a traceback, and
    (Path(b) / "config.json").unlink()  # a half-made ensemble folder left behind
    code = main(["ensemble", a, b, "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code == 2 and f"{b}/config.json: file not found" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "e").exists()


@pytest.mark.slow
def test_the_fourth_adversarial_round_members_are_recorded_and_named(two_recipes, tmp_path, capsys):
    """G5, G6, G14: an ensemble stores its runs relative to itself (a moved project works), refuses a run that
    changed after the fit, and its messages name the runs as given, never a --runs or --run option."""
    import shutil

    data, root = two_recipes
    project = tmp_path / "project"
    for name in ("a", "b"):
        shutil.copytree(root / name, project / "runs" / name)
    run = sv.ensemble([project / "runs" / "a", project / "runs" / "b"], out=project / "ens", **QUIET)
    stored = json.loads((project / "ens" / "summary.json").read_text())["ensemble"]["runs"]
    assert [r["run"] for r in stored] == [str(Path("..") / "runs" / "a"), str(Path("..") / "runs" / "b")]
    page = (project / "ens" / "report.html").read_text()
    assert "<th>uncalibrated</th><th>calibrated</th>" in page
    before = run.predict(data, device="cpu").frame

    moved = tmp_path / "moved"
    project.rename(moved)  # the project copied elsewhere (a GPU box -> a laptop)
    after = sv.load_run(moved / "ens").predict(data, device="cpu").frame
    pd.testing.assert_frame_equal(before, after)

    for runs, words in (
        ([str(root / "a"), str(moved / "ens")], "is an ensemble; give its runs"),
        ([str(root / "a"), str(tmp_path / "nowhere")], f"{tmp_path / 'nowhere'}: folder not found"),
    ):
        code = main(["ensemble", *runs, "--out", str(tmp_path / "e2")])
        err = capsys.readouterr().err
        assert code == 2 and words in err and "--runs" not in err and "--run " not in err, err

    shutil.rmtree(moved / "runs" / "b")
    shutil.copytree(moved / "runs" / "a", moved / "runs" / "b")  # another model under the same name
    code = main(["predict", "--run", str(moved / "ens"), "--data", str(data), "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "changed since the ensemble was fitted" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "p.csv").exists()


def test_an_ensemble_s_report_undoes_its_temperature_for_the_uncalibrated_column():
    rng = np.random.default_rng(0)
    merged = rng.dirichlet(np.ones(4), 50)
    calibrated = merge_probs([merged], [1.0], "mean", 1.7)
    np.testing.assert_allclose(merge_probs([calibrated], [1.0], "geometric", 1 / 1.7), merged, atol=1e-9)


@pytest.mark.slow
def test_the_tta_choice_is_tied_to_the_checkpoints_it_was_measured_on(tiny_zindi, tmp_path, capsys):
    """G16, G17: `--tta auto` refuses a choice made on an earlier best.pt, and a choice file without 'chosen'."""
    import shutil

    run, other = tmp_path / "r", tmp_path / "other"
    sv.train(config=tiny_config(tiny_zindi, run, epochs=2), **QUIET)
    sv.train(config=tiny_config(tiny_zindi, other, epochs=2, seed=1), **QUIET)
    sv.load_run(run).choose_tta(device="cpu", **QUIET)
    predict = ["predict", "--run", str(run), "--data", str(tiny_zindi), "--tta", "auto", "--device", "cpu"]
    assert main([*predict, "--out", str(tmp_path / "p1.csv")]) == 0
    choice = run / "evaluations" / "tta-choice.json"
    kept = choice.read_text()

    shutil.copy(other / "best.pt", run / "best.pt")  # what `train --resume` does when a later epoch is better
    assert main([*predict, "--out", str(tmp_path / "p2.csv")]) == 2
    err = capsys.readouterr().err
    assert "made on other checkpoints" in err and "--tta choose" in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(sv.OptionError, match="other checkpoints"):
        sv.load_run(run).predict(tiny_zindi, tta="auto")

    choice.write_text("{}")
    assert main([*predict, "--out", str(tmp_path / "p3.csv")]) == 2
    err = capsys.readouterr().err
    assert "no TTA mode under 'chosen'" in err and "Traceback" not in err, err
    choice.write_text(kept)
    assert not (tmp_path / "p2.csv").exists() and not (tmp_path / "p3.csv").exists()

"""Training from Python, as in a notebook: a run in memory with its history and figures, predictions from any
kind of images, saving it as a run folder the command line takes, Ctrl-C and continuing, and two trainings in
one process that give the same figures and leave the process's state as it was."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import QUIET, tiny_config

import signvision as sv
import signvision.training.runtime as runtime_module
import signvision.training.trainer as engine_module
from signvision.cli.commands import main

TINY = dict(model="lenet", lenet_width=1, epochs=2, image_size=16, batch_size=8, lr=5e-3, device="cpu", augment="none")


@pytest.mark.slow
def test_a_run_in_memory_shows_itself_predicts_and_saves(tiny_zindi, tmp_path, capsys):
    run = sv.train(tiny_zindi, **TINY, **QUIET)
    assert run.folder is None and isinstance(run.model, torch.nn.Module)
    assert list(run.history["epoch"]) == [1, 2] and {"val_log_loss", "train_loss"} <= set(run.history.columns)
    assert run.summary["status"] == "finished" and run.summary["val_accuracy_ci"] is not None
    html = run._repr_html_()
    assert "validation accuracy" in html and "<img" in html  # its figures and learning curves
    evaluation = run.evaluate(**QUIET)
    assert evaluation["without_tta"]["accuracy"] == pytest.approx(run.summary["val_accuracy"])
    test = pd.read_csv(tiny_zindi / "Test.csv")
    paths = [str(tiny_zindi / "Images" / f"{i}.jpg") for i in test["img_IDS"]]
    by_folder = run.predict(tiny_zindi)  # the Zindi folder's Test.csv
    by_files = run.predict(paths)
    by_frame = run.predict(pd.DataFrame({"path": paths, "img_IDS": test["img_IDS"]}))
    arrays = [cv2.imread(p)[..., ::-1].copy() for p in paths]
    by_arrays = run.predict(arrays)
    for p in (by_files, by_frame, by_arrays):
        assert np.allclose(p.frame[p.classes].to_numpy(), by_folder.frame[by_folder.classes].to_numpy(), atol=1e-5)
    assert list(by_frame.frame["img_IDS"]) == list(test["img_IDS"]) and len(by_folder.top(2).columns) == 5
    assert "<img" in by_files._repr_html_() and "<tr>" in by_arrays._repr_html_()
    folder = run.save(tmp_path / "saved")
    assert (folder / "best.pt").is_file() and (folder / "report.html").is_file()
    capsys.readouterr()
    assert main(["evaluate", "--run", str(folder), "--device", "cpu"]) == 0  # the command line takes it
    assert f"{run.summary['val_accuracy']:.4f}" in capsys.readouterr().out
    loaded = sv.load_run(folder)
    again = loaded.predict(paths)
    assert np.allclose(again.frame[again.classes].to_numpy(), by_files.frame[by_files.classes].to_numpy(), atol=1e-5)
    written = by_folder.to_csv(tmp_path / "sub.csv")
    with pytest.raises(sv.OptionError, match="already exists"):
        by_folder.to_csv(written)


def test_ctrl_c_then_fit_again_continues_and_matches(tiny_zindi, monkeypatch):
    whole = sv.train(tiny_zindi, **{**TINY, "epochs": 3}, **QUIET)
    real = engine_module.train_one_epoch
    calls = {"n": 0}

    def interrupt_the_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # a kernel interrupt, mid-epoch
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_module, "train_one_epoch", interrupt_the_second_epoch)
    run = sv.Run.new(tiny_zindi, **{**TINY, "epochs": 3})
    with pytest.raises(KeyboardInterrupt):
        run.fit(**QUIET)
    assert list(run.history["epoch"]) == [1]  # the last finished epoch
    monkeypatch.setattr(engine_module, "train_one_epoch", real)
    run.fit(**QUIET)
    assert list(run.history["epoch"]) == [1, 2, 3]
    assert run.history["val_log_loss"].tolist() == pytest.approx(whole.history["val_log_loss"].tolist(), rel=1e-5)


def test_two_trainings_give_the_same_figures_and_leave_the_process_as_it_was(tiny_zindi, tmp_path, monkeypatch):
    # Each epoch a training takes its share of the cores from the trainings registered on the machine (the
    # suite's other workers among them), and sums over other thread counts differ in their last bits: the
    # figures are the same at the same share, so this test sees no other training.
    monkeypatch.setattr(runtime_module, "TRAININGS", tmp_path / "trainings")
    torch.manual_seed(123)
    np.random.seed(123)
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    expected_torch, expected_numpy = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    first = sv.train(tiny_zindi, **TINY, **QUIET)
    second = sv.train(tiny_zindi, **TINY, **QUIET)
    assert first.history.drop(columns=["seconds", "train_images_per_s"]).equals(
        second.history.drop(columns=["seconds", "train_images_per_s"])
    )
    assert first.summary["val_log_loss"] == second.summary["val_log_loss"]
    assert torch.equal(torch.rand(3), expected_torch) and np.array_equal(np.random.rand(3), expected_numpy)
    assert torch.get_num_threads() == threads and cv2.getNumThreads() == cv_threads


@pytest.mark.slow
def test_train_into_a_folder_and_resume_it_from_python(tiny_zindi, tmp_path):
    run = sv.train(tiny_zindi, out=tmp_path / "run", **TINY, **QUIET)
    assert run.folder == tmp_path / "run" and run.summary["epochs"] == 2
    longer = sv.train(resume=tmp_path / "run", epochs=3, **QUIET)
    assert longer.summary["epochs"] == 3 and len(longer.history) == 3
    with pytest.raises(sv.OptionError, match="already trained 3 epochs"):
        sv.train(resume=tmp_path / "run", epochs=2, **QUIET)


@pytest.mark.slow
def test_train_from_a_dataframe_in_memory_and_into_folds(tiny_zindi, tmp_path):
    table = sv.read_data(tiny_zindi).train
    frame = table[["path", "Label"]]
    run = sv.train(frame, **TINY, **QUIET)
    assert run.summary["train_images"] + run.summary["val_images"] == len(frame)
    cv = sv.train(frame, out=tmp_path / "cv", folds=2, **{**TINY, "epochs": 1}, **QUIET)
    assert len(cv.members) == 2 and (tmp_path / "cv" / "data.csv").is_file()
    assert len(cv.predict(list(table["path"][:3]))) == 3


def test_library_errors_name_the_argument_not_a_flag(tiny_zindi):
    with pytest.raises(ValueError, match=r"image_size=10000: at most 1024") as e:
        sv.train(tiny_zindi, image_size=10000, **QUIET)
    assert isinstance(e.value, sv.OptionError) and "--" not in str(e.value)
    assert e.value.wording(flags=True).startswith("--image-size 10000:")
    with pytest.raises(FileNotFoundError, match="data="):
        sv.train("/nowhere/at/all", **QUIET)
    with pytest.raises(sv.OptionError, match="epoch: not a training setting"):
        sv.train(tiny_zindi, epoch=3)
    with pytest.raises(sv.RunError, match="not trained yet"):
        sv.Run.new(tiny_zindi).predict([])


def test_fit_helper_config_still_trains_in_a_folder(tiny_zindi, tmp_path):
    from signvision.runs.run import fit

    summary = fit(tiny_config(tiny_zindi, tmp_path / "r"))
    assert summary["status"] == "finished" and sv.load_run(tmp_path / "r").summary == summary


def run_files(folder) -> list[str]:
    """A run folder's files, by path inside it (TensorBoard's event files by their folder: their names hold the
    time they were written)."""
    names = (str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return sorted({"tensorboard/events" if n.startswith("tensorboard/events.") else n for n in names})


def figures(folder) -> pd.DataFrame:
    """metrics.csv without its timings (the same run takes other seconds)."""
    return pd.read_csv(folder / "metrics.csv").drop(columns=["seconds", "train_images_per_s"])


@pytest.mark.slow
def test_one_orchestrator_the_command_line_the_api_and_save_leave_the_same_run(tiny_zindi, tmp_path, capsys):
    args = ["--lenet-width", "1", "--epochs", "2", "--image-size", "16", "--batch-size", "8", "--lr", "0.005"]
    assert main(["train", "--data", str(tiny_zindi), "--out", str(tmp_path / "a"), "--augment", "none", *args]) == 0
    api = sv.train(tiny_zindi, out=tmp_path / "b", **TINY, **QUIET)
    memory = sv.train(tiny_zindi, **TINY, **QUIET)
    memory.save(tmp_path / "c")
    names = run_files(tmp_path / "a")
    assert "report.html" in names and "summary.json" in names and "best.pt" in names and "tensorboard/events" in names
    assert run_files(tmp_path / "b") == names and run_files(tmp_path / "c") == names
    pd.testing.assert_frame_equal(figures(tmp_path / "b"), figures(tmp_path / "a"))
    pd.testing.assert_frame_equal(figures(tmp_path / "c"), figures(tmp_path / "a"))
    summaries = [sv.load_run(tmp_path / x).summary for x in "abc"]
    for key in ("val_log_loss", "val_accuracy", "temperature", "best_epoch"):
        assert summaries[1][key] == pytest.approx(summaries[0][key]) == pytest.approx(summaries[2][key])
    # the temperature is in best.pt, and the model the API returns is the one the folder holds
    reloaded = sv.load_run(tmp_path / "b")
    assert reloaded.temperature == pytest.approx(api.temperature)
    assert "data: " in capsys.readouterr().out  # the in-memory run says what it trains on, as the folder run does


@pytest.mark.slow
def test_resume_refuses_in_the_api_what_the_command_line_refuses(tiny_zindi, tmp_path, capsys):
    sv.train(tiny_zindi, out=tmp_path / "r", **TINY, **QUIET)
    before = (tmp_path / "r" / "config.json").read_text()
    with pytest.raises(sv.OptionError, match="`lr`"):
        sv.train(resume=tmp_path / "r", lr=1e-4, **QUIET)
    assert main(["train", "--resume", str(tmp_path / "r"), "--lr", "0.0001"]) == 2
    assert "--lr" in capsys.readouterr().err
    assert (tmp_path / "r" / "config.json").read_text() == before  # nothing recorded of the refused change
    longer = sv.train(resume=tmp_path / "r", epochs=3, **QUIET)
    assert list(longer.history["epoch"]) == [1, 2, 3] and longer.summary["epochs"] == 3


INTERRUPTED_IN_A_KERNEL = """
import os, signal, time
import signvision as sv

# Ctrl-C raises KeyboardInterrupt, as in a Jupyter kernel, even where the suite was started in the background
# (a shell's `make test &` starts its children with SIGINT ignored: the interrupt below was then lost)
signal.signal(signal.SIGINT, signal.default_int_handler)

def log(line):
    if line.startswith("epoch 2/") and not hasattr(log, "sent"):
        log.sent = True  # Jupyter's "interrupt kernel": SIGINT to the whole process group, loader workers too
        os.killpg(os.getpgrp(), signal.SIGINT)
        time.sleep(5)  # raised here, in this line: not at a moment where Python ignores it (a __del__ running)

run = sv.Run.new({data!r}, model="lenet", lenet_width=1, epochs=4, image_size=16, batch_size=4, lr=5e-3,
                 device="cpu", augment="light", workers=1)
try:
    run.fit(log)
    print("NOT INTERRUPTED")
except KeyboardInterrupt:
    print("interrupted at", list(run.history["epoch"]))
run.fit(lambda *_: None)
print("epochs", list(run.history["epoch"]), run.summary["status"])
"""


@pytest.mark.slow
def test_a_process_group_interrupt_with_loader_workers_then_fit_again(tiny_zindi, tmp_path):
    import subprocess
    import sys

    script = tmp_path / "kernel.py"
    script.write_text(INTERRUPTED_IN_A_KERNEL.format(data=str(tiny_zindi)))
    env = {**__import__("os").environ, "SIGNVISION_PROGRESS": "0"}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, start_new_session=True, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "interrupted at [1, 2]" in done.stdout, done.stdout + done.stderr[-2000:]
    assert "epochs [1, 2, 3, 4] finished" in done.stdout, done.stdout + done.stderr[-2000:]


@pytest.mark.parametrize(
    "settings,words",
    [
        (dict(epochs="2"), "epochs='2': must be a whole number"),
        (dict(image_size=16.5), "image_size=16.5: must be a whole number"),
        (dict(seed=None), "seed=None: must be a whole number"),
        (dict(calibrate="no"), "calibrate='no': must be True or False"),
        (dict(model=None), "model=None: must be text"),
        (dict(workers="2"), "workers='2': must be a whole number"),
    ],
)
def test_settings_of_the_wrong_type_are_refused_before_training(tiny_zindi, settings, words):
    with pytest.raises(sv.OptionError, match=words.replace("(", r"\(").replace(")", r"\)")):
        sv.train(tiny_zindi, **{**TINY, **settings}, **QUIET)


def test_numpy_numbers_are_numbers(tiny_zindi, tmp_path):
    run = sv.train(tiny_zindi, out=tmp_path / "r", **{**TINY, "epochs": np.int64(1), "lr": np.float32(5e-3)}, **QUIET)
    assert sv.load_run(tmp_path / "r").cfg.epochs == 1 and run.summary["epochs"] == 1  # config.json holds an int
    with pytest.raises(sv.OptionError, match="val_fraction"):
        sv.split(tiny_zindi, val_fraction="0.3")


def test_dataframes_with_blank_labels_or_no_rows_and_numeric_labels(tiny_zindi):
    frame = sv.read_data(tiny_zindi).train[["path", "Label"]].reset_index(drop=True)
    blank = frame.copy()
    blank.loc[3, "Label"] = np.nan
    with pytest.raises(sv.DataError, match="row 3.*no label"):
        sv.train(blank, **TINY, **QUIET)
    with pytest.raises(sv.DataError, match="no rows"):
        sv.train(frame.iloc[:0], **TINY, **QUIET)
    numbered = frame.assign(Label=frame["Label"].astype("category").cat.codes * 5)  # 0, 5, 10
    assert sv.read_data(numbered).classes == ["0", "5", "10"]


def test_predict_takes_the_forms_a_notebook_has(tiny_zindi):
    run = sv.train(tiny_zindi, **{**TINY, "epochs": 1}, **QUIET)
    path = str(next((tiny_zindi / "Images").glob("*.jpg")))
    image = cv2.imread(path)[..., ::-1].copy()
    one = run.predict(image)  # one array
    assert len(one) == 1 and np.allclose(one.frame[one.classes], run.predict([image]).frame[one.classes])
    assert len(run.predict(path)) == 1  # one file
    assert len(run.predict(p for p in [path, path])) == 2  # a generator
    with pytest.raises(sv.DataError, match="no images"):
        run.predict([])
    with pytest.raises(sv.DataError, match="not a mix"):
        run.predict([image, path])
    with pytest.raises(sv.OptionError, match="batch_size"):
        run.predict([path], batch_size=0)

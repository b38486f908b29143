"""Every user mistake we know of, as a table: each must end in exit code 2, one line on stderr naming the
file, row or option at fault, no traceback, and no file of the user's changed.

Each case is (name, setup, expected words): `setup(env)` prepares what it needs in a scratch folder and
returns the command line. `env` holds a tiny Zindi folder and a finished tiny run, shared by the cases
(copied where a case edits them).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import make_zindi, tiny_args, write_images

from signvision.cli.commands import main

TINY = tiny_args(epochs=1)


@dataclass
class Env:
    data: Path  # a tiny Zindi folder (read-only for the cases: copy it to change it)
    run: Path  # a finished tiny run
    tmp: Path  # this case's scratch folder

    def copy_data(self) -> Path:
        return Path(shutil.copytree(self.data, self.tmp / "data"))

    def copy_run(self) -> Path:
        return Path(shutil.copytree(self.run, self.tmp / "run"))

    def train(self, *extra, data=None) -> list:
        return ["train", "--data", data or self.data, *TINY, *extra]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared")
    data = make_zindi(root / "zindi", n_per_class=10)
    assert main(["train", "--data", str(data), *TINY, "--epochs", "2", "--out", str(root / "run")]) == 0
    return data, root / "run"


def edit_checkpoint(path: Path, change) -> None:
    ckpt = torch.load(path, weights_only=True)
    change(ckpt)
    torch.save(ckpt, path)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def semicolon_csv(env: Env) -> list:
    data = env.copy_data()
    table = pd.read_csv(data / "Train.csv")
    table.to_csv(data / "Train.csv", sep=";", index=False)
    return ["train", "--data", data, *TINY, "--out", env.tmp / "r"]


def all_images_bad(env: Env) -> list:
    data = env.copy_data()
    for f in (data / "Images").iterdir():
        f.write_bytes(b"\xff\xd8 not a jpeg")
    return ["train", "--data", data, *TINY, "--skip-bad-images", "--out", env.tmp / "r"]


def class_named_like_id_column(env: Env) -> list:
    data = env.copy_data()
    table = pd.read_csv(data / "Train.csv")
    table["Label"] = table["Label"].replace({"Me voy": "img_IDS"})
    table.to_csv(data / "Train.csv", index=False)
    return ["train", "--data", data, *TINY, "--target", "img_IDS", "--out", env.tmp / "r"]


def duplicate_test_ids(env: Env) -> list:
    data = env.copy_data()
    test = pd.read_csv(data / "Test.csv")
    pd.concat([test, test.head(1)]).to_csv(data / "Test.csv", index=False)
    return ["predict", "--run", env.run, "--data", data, "--out", env.tmp / "s.csv", "--device", "cpu"]


def same_file_twice(env: Env) -> list:
    data = env.copy_data()
    table = pd.read_csv(data / "Train.csv")
    extra = table.head(1).assign(img_IDS=table["img_IDS"].iloc[0] + ".jpg", Label="Me voy")
    pd.concat([table, extra]).to_csv(data / "Train.csv", index=False)
    return ["train", "--data", data, *TINY, "--out", env.tmp / "r"]


def other_classes_on_resume(env: Env) -> list:
    run = env.copy_run()
    other = make_zindi(env.tmp / "other", classes=["x", "y"], n_per_class=6)
    return ["train", "--resume", run, "--data", other]


def foreign_checkpoint(change):
    def setup(env: Env) -> list:
        run = env.copy_run()
        edit_checkpoint(run / "best.pt", change)
        return ["evaluate", "--run", run, "--device", "cpu"]

    return setup


def extra_key(ckpt):
    ckpt["model"]["extra.weight"] = torch.zeros(1)


def missing_key(ckpt):
    ckpt["model"].pop(next(iter(ckpt["model"])))


def other_class_count(ckpt):
    ckpt["classes"] = ckpt["classes"] + ["fourth"]


def other_model(ckpt):
    ckpt["config"]["model"] = "resnet18"


def junk_config_resume(env: Env) -> list:
    run = env.copy_run()
    _write(run / "config.json", "{ not json")
    return ["train", "--resume", run]


def junk_config_compare(env: Env) -> list:
    run = env.copy_run()
    _write(run / "config.json", '["a list"]')
    return ["compare", run, env.run]


def one_class_validation(env: Env) -> list:
    table = pd.read_csv(env.data / "Train.csv")
    first = table["Label"].iloc[0]
    fold = ["val" if label == first and i % 2 else "train" for i, label in enumerate(table["Label"])]
    split = env.tmp / "split.csv"
    pd.DataFrame({"img_IDS": table["img_IDS"], "fold": fold}).to_csv(split, index=False)
    return env.train("--split", split, "--out", env.tmp / "r")


def class_only_in_validation(env: Env) -> list:
    table = pd.read_csv(env.data / "Train.csv")
    first = table["Label"].iloc[0]
    fold = ["val" if label == first or i % 3 == 0 else "train" for i, label in enumerate(table["Label"])]
    split = env.tmp / "split.csv"
    pd.DataFrame({"img_IDS": table["img_IDS"], "fold": fold}).to_csv(split, index=False)
    return env.train("--split", split, "--out", env.tmp / "r")


def evaluate_other_classes(env: Env) -> list:
    folder = env.tmp / "other"
    for c in ("x", "y"):
        write_images(folder / c, [c] * 2, ["x", "y"])
    return ["evaluate", "--run", env.run, "--data", folder, "--device", "cpu"]


def evaluate_unlabelled(env: Env) -> list:
    write_images(env.tmp / "flat", ["x", "y"], ["x", "y"])
    return ["evaluate", "--run", env.run, "--data", env.tmp / "flat", "--device", "cpu"]


def no_onnx(env: Env, monkeypatch) -> list:
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the export extra were not installed
    return ["export", "--run", env.run, "--out", env.tmp / "m.onnx"]


def export_json_beside(env: Env) -> list:
    _write(env.tmp / "config.json", '{"mine": true}')
    return ["export", "--run", env.run, "--out", env.tmp / "config.onnx"]


def not_empty_out(env: Env) -> list:
    _write(env.tmp / "mine" / "report.html", "my own page")
    return env.train("--out", env.tmp / "mine")


def port_in_use(env: Env) -> list:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    env.keep = listener  # held open until the case ends
    return ["serve", "--run", env.run, "--port", listener.getsockname()[1]]


# ----------------------------------------------------------------------------------------------------
# The second adversarial round (issue 18)
# ----------------------------------------------------------------------------------------------------
def image_replaced_by(kind: str):
    def setup(env: Env) -> list:
        data = env.copy_data()
        target = data / "Images" / "ImageID_0003.jpg"
        target.unlink()
        if kind == "fifo":
            os.mkfifo(target)  # reading it would block for ever
        elif kind == "folder":
            target.mkdir()
        else:
            os.symlink(target, target)  # a symlink loop
        return env.train("--out", env.tmp / "r", data=data)

    return setup


def x_jpg_and_x_png(env: Env) -> list:
    data = env.copy_data()
    shutil.copy(data / "Images" / "ImageID_0002.jpg", data / "Images" / "ImageID_0002.png")
    return env.train("--out", env.tmp / "r", data=data)


def nan_weights(env: Env) -> list:
    run = env.copy_run()
    edit_checkpoint(run / "best.pt", lambda c: c["model"].update({k: v * float("nan") for k, v in c["model"].items()}))
    return env.train("--weights", run / "best.pt", "--out", env.tmp / "r")


def junk_duplicates_csv(env: Env) -> list:
    audit = env.tmp / "audit"
    _write(audit / "clean.csv", "img_IDS,Label\n" + "".join(f"ImageID_{i:04d},x\n" for i in range(30)))
    _write(audit / "duplicates.csv", "this is, not\nan audit's, file\n")
    return env.train("--audit", audit, "--out", env.tmp / "r")


def integer_keys(env: Env) -> list:
    torch.save({0: torch.zeros(3), 1: torch.zeros(2)}, env.tmp / "w.pth")
    return env.train("--weights", env.tmp / "w.pth", "--out", env.tmp / "r")


def one_image_class_audit(env: Env) -> list:
    data = env.copy_data()
    table = pd.read_csv(data / "Train.csv")
    table.loc[0, "Label"] = "lonely"
    table.to_csv(data / "Train.csv", index=False)
    return ["audit", "--data", data, "--out", env.tmp / "a", "--device", "cpu", "--epochs", "1"]


def fewer_epochs_than_trained(env: Env) -> list:
    return ["train", "--resume", env.copy_run(), "--epochs", "1"]


def claimed_by_another_process(env: Env) -> list:
    (env.tmp / "r").mkdir()
    (env.tmp / "r" / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    return env.train("--out", env.tmp / "r")


def small_validation(env: Env) -> list:
    data = env.copy_data()
    table = pd.read_csv(data / "Train.csv")
    fold = ["val" if i in (0, 12) else "train" for i in range(len(table))]  # 2 images for 3 classes
    pd.DataFrame({"img_IDS": table["img_IDS"], "fold": fold}).to_csv(env.tmp / "s.csv", index=False)
    return env.train("--split", env.tmp / "s.csv", "--out", env.tmp / "r", data=data)


def unfinished_run(env: Env) -> Path:
    """A run killed part way: best.pt and last.pt are there, summary.json says it stopped."""
    run = env.copy_run()
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    return run


def split_json_beside(env: Env) -> list:
    _write(env.tmp / "mysplit.json", '{"my": "precious notes"}')
    return ["split", "--data", env.data, "--out", env.tmp / "mysplit.csv"]


def compare_beside(env: Env) -> list:
    _write(env.tmp / "cmp" / "compare.csv", "my own notes")
    return ["compare", env.run, env.run, "--out", env.tmp / "cmp"]


def a_split_file(env: Env, twice: bool = False) -> Path:
    table = pd.read_csv(env.data / "Train.csv")
    fold = ["val" if i % 3 == 0 else "train" for i in range(len(table))]
    split = pd.DataFrame({"img_IDS": table["img_IDS"], "fold": fold})
    if twice:  # the first image again, on the other side
        split = pd.concat([split, split.head(1).assign(fold="train")])
    split.to_csv(env.tmp / "s.csv", index=False)
    return env.tmp / "s.csv"


def nan_image_folder(env: Env) -> Path:
    from PIL import Image

    folder = env.tmp / "odd"
    folder.mkdir()
    Image.fromarray(np.full((8, 8), np.nan, np.float32)).save(folder / "nan.tif")
    return folder


def lr_find_into_a_file(env: Env) -> list:
    _write(env.tmp / "notes.png", "mine")
    return ["lr-find", "--data", env.data, "--steps", "20", "--out", env.tmp / "notes.png"]


CASES = [
    # what, setup -> argv, words the one-line message must hold
    ("unwritable --out", lambda e: e.train("--out", "/proc/signvision-run"), "--out /proc/signvision-run"),
    ("--out holds the user's files", not_empty_out, "not empty"),
    ("predict --out a folder", lambda e: ["predict", "--run", e.run, "--out", e.tmp, "--overwrite"], "is a folder"),
    (
        "audit --out a file",
        lambda e: ["audit", "--data", e.data, "--out", _write(e.tmp / "f.txt", "x")],
        "not a folder",
    ),
    ("junk config.json on --resume", junk_config_resume, "config.json: not valid JSON"),
    ("junk config.json in compare", junk_config_compare, "config.json: expected a JSON object"),
    ("checkpoint with an extra key", foreign_checkpoint(extra_key), "best.pt: its weights do not fit"),
    ("checkpoint missing a key", foreign_checkpoint(missing_key), "best.pt: its weights do not fit"),
    ("checkpoint of other classes", foreign_checkpoint(other_class_count), "best.pt: its weights do not fit"),
    ("checkpoint of another model", foreign_checkpoint(other_model), "best.pt: its weights do not fit"),
    ("empty --split", lambda e: e.train("--split", _write(e.tmp / "s.csv", ""), "--out", e.tmp / "r"), "is empty"),
    ("--lr inf", lambda e: e.train("--lr", "inf", "--out", e.tmp / "r"), "--lr inf"),
    ("--freeze-blocks on LeNet", lambda e: e.train("--freeze-blocks", "1", "--out", e.tmp / "r"), "LeNet has none"),
    (
        "--freeze-blocks past the stages",
        lambda e: e.train("--model", "resnet18", "--freeze-blocks", "5", "--folds", "2", "--out", e.tmp / "r"),
        "--freeze-blocks 5: this backbone has 4 stages",
    ),
    ("--seed -1", lambda e: e.train("--seed", "-1", "--out", e.tmp / "r"), "--seed -1"),
    ("--weight-decay nan", lambda e: e.train("--weight-decay", "nan", "--out", e.tmp / "r"), "--weight-decay nan"),
    ("--mix-alpha nan", lambda e: e.train("--mix-alpha", "nan", "--out", e.tmp / "r"), "--mix-alpha nan"),
    ("--image-size 10000", lambda e: e.train("--image-size", "10000", "--out", e.tmp / "r"), "--image-size 10000"),
    ("export --opset 3", lambda e: ["export", "--run", e.run, "--out", e.tmp / "m.onnx", "--opset", "3"], "--opset 3"),
    ("export without onnx", no_onnx, "pip install 'signvision[export]'"),
    ("export next to a user's .json", export_json_beside, "config.json: already exists"),
    ("--resume --data of other classes", other_classes_on_resume, "differ from the run's"),
    ("--val-fraction 0.001", lambda e: e.train("--val-fraction", "0.001", "--out", e.tmp / "r"), "--val-fraction"),
    ("one class in validation", one_class_validation, "one class only"),
    ("a class with no training image", class_only_in_validation, "without a training image"),
    ("ablate --tta vflip", lambda e: ["ablate", *e.train("--out", e.tmp / "abl")[1:], "--tta", "vflip"], "--tta vflip"),
    ("semicolon CSV", semicolon_csv, "separated by ';'"),
    ("every image dropped", all_images_bad, "every image was dropped"),
    ("class named img_IDS", class_named_like_id_column, "class 'img_IDS'"),
    ("duplicate ids in Test.csv", duplicate_test_ids, "Test.csv row 8: img_IDS='ImageID_0030' appears twice"),
    ("X and X.jpg in Train.csv", same_file_twice, "name the same file"),
    ("--folds 1", lambda e: e.train("--folds", "1", "--out", e.tmp / "r"), "--folds 1"),
    ("--folds above the rarest class", lambda e: e.train("--folds", "11", "--out", e.tmp / "r"), "--folds 11"),
    (
        "--weights of another model",
        lambda e: e.train("--model", "resnet18", "--weights", e.run / "best.pt", "--out", e.tmp / "r"),
        "--weights",
    ),
    ("--model unknown", lambda e: e.train("--model", "resnet181", "--out", e.tmp / "r"), "--model resnet181"),
    ("predict with a missing run", lambda e: ["predict", "--run", e.tmp / "nope", "--out", e.tmp / "s.csv"], "nope"),
    (
        "evaluate an unfinished run",
        lambda e: ["evaluate", "--run", _write(e.tmp / "r" / "x", "") and e.tmp / "r"],
        "no best.pt",
    ),
    ("report a run whose images moved", lambda e: ["report", e.run, "--data", e.tmp / "gone"], "gone"),
    ("--resume a folder that is no run", lambda e: ["train", "--resume", e.tmp], "config.json: not found"),
    ("serve on a port in use", port_in_use, "cannot listen there"),
    (
        "serve --allowed-hosts given a URL",
        lambda e: ["serve", "--run", e.run, "--allowed-hosts", "http://proxy.example/"],
        "--allowed-hosts: 'http://proxy.example/' is not a host name",
    ),
    ("evaluate --data of unknown classes", evaluate_other_classes, "class 'x' (2 images"),
    ("evaluate --data of unlabelled images", evaluate_unlabelled, "holds images but no labels"),
    ("--split-by sideways", lambda e: e.train("--split-by", "sideways", "--out", e.tmp / "r"), "--split-by"),
    ("--select speed", lambda e: e.train("--select", "speed", "--out", e.tmp / "r"), "--select"),
    ("a FIFO named like an image", image_replaced_by("fifo"), "row 5: no image for img_IDS='ImageID_0003'"),
    ("a folder named like an image", image_replaced_by("folder"), "row 5: no image for img_IDS='ImageID_0003'"),
    ("a symlink loop named like an image", image_replaced_by("loop"), "row 5: no image for img_IDS='ImageID_0003'"),
    ("X.jpg and X.png", x_jpg_and_x_png, "could be any of ImageID_0002.jpg, ImageID_0002.png"),
    (
        "predict into an unwritable folder",
        lambda e: ["predict", "--run", e.run, "--out", "/proc/x/s.csv"],
        "cannot write there",
    ),
    (
        "export into an unwritable folder",
        lambda e: ["export", "--run", e.run, "--out", "/proc/x/m.onnx"],
        "cannot write there",
    ),
    (
        "split into an unwritable folder",
        lambda e: ["split", "--data", e.data, "--out", "/proc/x/split.csv"],
        "--out /proc/x/split.csv: cannot write there",
    ),
    ("--lr 1e4", lambda e: e.train("--lr", "1e4", "--epochs", "3", "--out", e.tmp / "r"), "diverged"),
    ("weights holding NaN", nan_weights, "diverged"),
    ("--val-fraction 0.95", lambda e: e.train("--val-fraction", "0.95", "--out", e.tmp / "r"), "--val-fraction 0.95"),
    (
        "--cache-dir that is a file",
        lambda e: e.train("--cache", "disk", "--cache-dir", _write(e.tmp / "f", "x"), "--out", e.tmp / "r"),
        "is a file, not a folder",
    ),
    ("a malformed duplicates.csv", junk_duplicates_csv, "duplicates.csv"),
    ("a .pth with integer keys", integer_keys, "no state dict of named tensors"),
    ("--weights a folder", lambda e: e.train("--weights", e.tmp, "--out", e.tmp / "r"), "is a folder"),
    (
        "--weights imagenet for a model without packaged weights",
        lambda e: e.train("--model", "resnet18", "--weights", "imagenet", "--out", e.tmp / "r"),
        "--weights imagenet: ImageNet weights are packaged for tf_efficientnet_lite0",
    ),
    (
        "submit --time soon",
        lambda e: ["submit", "--data", e.data, "--time", "soon", "--out", e.tmp / "s.csv"],
        "--time soon: expected a duration such as 30m",
    ),
    (
        "submit --work holding the user's files",
        lambda e: ["submit", "--data", e.data, "--time", "5m", "--out", e.tmp / "s.csv", "--work", e.data],
        "--work ",
    ),
    (
        "audit --label-model unknown",
        lambda e: ["audit", "--data", e.data, "--label-model", "knn", "--out", e.tmp / "a"],
        "--label-model: invalid choice: 'knn'",
    ),
    (
        "show-augment --out grid.txt",
        lambda e: ["show-augment", "--data", e.data, "--out", e.tmp / "grid.txt"],
        "ending in .png",
    ),
    ("audit with a one-image class", one_image_class_audit, "class 'lonely' has 1 image"),
    ("--resume with fewer epochs", fewer_epochs_than_trained, "already trained 2 epochs"),
    ("--out another process writes", claimed_by_another_process, "another signvision process"),
    ("fewer validation images than classes", small_validation, "2 images for 3 classes"),
    # round 3
    (
        "predict with an unfinished run",
        lambda e: ["predict", "--run", unfinished_run(e), "--out", e.tmp / "s.csv"],
        "unfinished run: stopped (interrupted)",
    ),
    ("serve an unfinished run", lambda e: ["serve", "--run", unfinished_run(e)], "continue it with signvision train"),
    ("split --out beside the user's .json", split_json_beside, "mysplit.json: already exists"),
    ("split --out a .json", lambda e: ["split", "--data", e.data, "--out", e.tmp / "s.json"], "ending in .csv"),
    ("compare --out over the user's compare.csv", compare_beside, "compare.csv: already exists"),
    ("--split listing an id twice", lambda e: e.train("--split", a_split_file(e, True), "--out", e.tmp / "r"), "twice"),
    (
        "--split beside --folds",
        lambda e: e.train("--split", a_split_file(e), "--folds", "3", "--out", e.tmp / "r"),
        "leave --folds out",
    ),
    (
        "--split beside --val-fraction",
        lambda e: e.train("--split", a_split_file(e), "--val-fraction", "0.5", "--out", e.tmp / "r"),
        "leave --val-fraction out",
    ),
    ("--resume with another --lr", lambda e: ["train", "--resume", e.copy_run(), "--lr", "0.1"], "cannot change --lr"),
    (
        "lr-find --end-lr inf",
        lambda e: ["lr-find", "--data", e.data, "--end-lr", "inf", "--out", e.tmp / "lr"],
        "--end-lr inf: must be a finite number",
    ),
    (
        "lr-find --steps 1e11",
        lambda e: ["lr-find", "--data", e.data, "--steps", "100000000000", "--out", e.tmp / "lr"],
        "from 10 to 10,000",
    ),
    ("lr-find --out a file", lr_find_into_a_file, "exists and is not a folder"),
    (
        "predict a float image holding NaN",
        lambda e: ["predict", "--run", e.run, "--data", nan_image_folder(e), "--out", e.tmp / "s.csv"],
        "holds NaN or infinite pixels",
    ),
]


def snapshot(*folders: Path) -> dict:
    files = {}
    for folder in folders:
        for f in sorted(Path(folder).rglob("*")):
            if f.is_file():
                files[str(f)] = hashlib.sha1(f.read_bytes()).hexdigest()
    return files


@pytest.mark.parametrize("what,setup,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_changes(what, setup, words, shared, tmp_path, capsys, monkeypatch):
    data, run = shared
    env = Env(data, run, tmp_path)
    argv = setup(env, monkeypatch) if setup is no_onnx else setup(env)
    before = snapshot(data, run, tmp_path)
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2, f"{what}: exit {code}\n{err}"
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert words in err, f"{what}: {err!r} lacks {words!r}"
    after = snapshot(data, run, tmp_path)
    assert {k: after.get(k) for k in before} == before, f"{what} changed or removed files"
    new = [f for f in after if f not in before]  # only a run that started (then diverged) may leave its folder
    assert all(f.startswith(str(tmp_path / "r") + "/") for f in new) and (not new or words == "diverged"), new


@pytest.mark.slow
def test_debug_after_the_sub_command_shows_the_traceback(shared, tmp_path):
    data, _ = shared
    from signvision.errors import SignvisionError

    with pytest.raises(SignvisionError, match="lr=inf"):
        main(["train", "--debug", "--data", str(data), *TINY, "--lr", "inf", "--out", str(tmp_path / "r")])

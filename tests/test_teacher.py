"""Knowledge distillation: the teacher's out-of-fold probabilities as training targets (training/teacher.py),
`sv.distill` and `signvision distill`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import CLASSES, tiny_args, tiny_config

import signvision as sv
from signvision.cli import main
from signvision.errors import DataError, MissingError, OptionError
from signvision.models.task import Task
from signvision.training.teacher import read_teacher


def write_oof(path, ids, probs, classes=CLASSES):
    table = pd.DataFrame(probs, columns=classes)
    table.insert(0, "img_IDS", ids)
    table.to_csv(path, index=False)
    return path


def test_read_teacher_in_the_tasks_class_order(tmp_path):
    task = Task(CLASSES, None)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    shuffled = pd.DataFrame(probs, columns=CLASSES)[CLASSES[::-1]]  # columns in another order
    shuffled.insert(0, "img_IDS", ["a", "b"])
    shuffled.to_csv(tmp_path / "oof.csv", index=False)
    targets = read_teacher(tmp_path, ["b", "a"], task)  # the folder's oof.csv, rows in the asked order
    assert targets.dtype == np.float32 and np.allclose(targets, probs[::-1])
    binary = read_teacher(tmp_path / "oof.csv", ["a"], Task(CLASSES, CLASSES[0]))
    assert binary.shape == (1, 1) and binary[0, 0] == pytest.approx(0.7)


@pytest.mark.parametrize(
    "ids, probs, message",
    [
        (["a", "b"], [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], "no row for 'c' (1 of the 3 training images"),
        (["a", "b", "c"], [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.6, 0.1]], "row 4 ('c')"),
        (["a", "b", "c"], [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [1.5, 0.0, -0.5]], "row 4 ('c')"),
    ],
)
def test_read_teacher_names_the_row_at_fault(tmp_path, ids, probs, message):
    write_oof(tmp_path / "oof.csv", ids, probs)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_teacher(tmp_path, ["a", "b", "c"], Task(CLASSES, None))


def test_read_teacher_of_other_classes_or_no_file(tmp_path):
    write_oof(tmp_path / "oof.csv", ["a"], [[0.5, 0.5]], classes=["left", "right"])
    with pytest.raises(DataError, match="no column 'Enough/Satisfied': the teacher was trained on other classes"):
        read_teacher(tmp_path, ["a"], Task(CLASSES, None))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingError, match="has no oof.csv: give a finished --folds run or ensemble"):
        read_teacher(tmp_path / "empty", ["a"], Task(CLASSES, None))


STUDENT = dict(lenet_width=1, epochs=1, image_size=16, batch_size=8, device="cpu", augment="none", log=lambda *_: None)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A 2-fold LeNet on the tiny data: the teacher every test below distils from."""
    from helpers import make_zindi

    root = tmp_path_factory.mktemp("teacher")
    data = make_zindi(root / "data")
    sv.train(config=tiny_config(data, root / "cv", folds=2), log=lambda *_: None)
    return root / "cv"


def test_distill_trains_on_the_teachers_out_of_fold_probabilities(teacher, tmp_path):
    from signvision.training.rundata import prepare_run_data

    student = sv.distill(teacher, out=tmp_path / "student", **STUDENT)
    cfg = student.cfg
    assert cfg.teacher == str(teacher.resolve()) and cfg.label_smoothing == 0.0
    assert cfg.data == sv.load_run(teacher).cfg.data  # the teacher's images, since none were given
    assert set(student.summary) >= {"val_log_loss", "val_accuracy"} and np.isfinite(student.summary["val_log_loss"])
    data = prepare_run_data(cfg, tmp_path / "student" / "split.csv")
    train = data.subset("train")
    oof = pd.read_csv(teacher / "oof.csv").set_index("img_IDS")
    assert np.allclose(train.soft_targets, oof.loc[train.ids, CLASSES].to_numpy(), atol=1e-6)
    assert data.subset("val").soft_targets is None  # validation is scored against the labels
    images, targets = train.__getitems__([0, 1])
    assert targets.dtype.is_floating_point and targets.shape == (2, len(CLASSES))


def test_distill_refuses_a_teacher_without_out_of_fold_probabilities(teacher, tmp_path):
    single = teacher / "fold1"  # one fold's run: no out-of-fold probabilities of every image
    with pytest.raises(OptionError, match="is not a --folds run or an ensemble"):
        sv.distill(single, out=tmp_path / "s")


def test_distill_command(teacher, tmp_path, capsys):
    assert main(["distill", str(teacher), *tiny_args(1), "--out", str(tmp_path / "cli")]) == 0
    assert "Run: " in capsys.readouterr().out and (tmp_path / "cli" / "best.pt").is_file()
    assert main(["distill", str(tmp_path / "nowhere"), *tiny_args(1), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--teacher" in err[0] and "nowhere" in err[0] and not (tmp_path / "x").exists()

"""Nothing lost: one writer per run or audit folder (two commands started together: one is refused), a full disk
leaves the earlier file whole, and a run or a fold killed before its first checkpoint is finished by running
the same command again."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest
from helpers import tiny_args, tiny_config

import signvision.training.folder as runfolder_module
from signvision.cli.commands import main
from signvision.errors import DiskFullError, RunError
from signvision.files import claim_folder, release_folder
from signvision.runs.crossval import fit_folds
from signvision.runs.run import fit

TINY = tiny_args()


def test_a_folder_has_one_writer(tmp_path):
    lock = claim_folder(tmp_path / "run")
    assert claim_folder(tmp_path / "run") == lock  # this process again: still its own
    lock.write_text(json.dumps({"pid": os.getppid(), "host": json.loads(lock.read_text())["host"]}))
    with pytest.raises(RunError, match=f"another signvision process \\(pid {os.getppid()}"):
        claim_folder(tmp_path / "run")
    lock.write_text(json.dumps({"pid": 2**22 + 17, "host": json.loads(lock.read_text())["host"]}))  # no such process
    assert claim_folder(tmp_path / "run") == lock  # a dead writer's lock is taken over
    release_folder(tmp_path / "run")
    assert not lock.exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "audit"])
def test_two_commands_into_one_folder_one_is_refused(tiny_zindi, tmp_path, command):
    args = {
        "train": ["train", "--data", str(tiny_zindi), *TINY, "--epochs", "6", "--out", str(tmp_path / "out")],
        "audit": [
            "audit",
            "--data",
            str(tiny_zindi),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--epochs",
            "2",
        ],
    }[command]
    env = {**os.environ, "SIGNVISION_PROGRESS": "0"}
    first = subprocess.Popen(
        [sys.executable, "-m", "signvision", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    time.sleep(0.5)
    second = subprocess.run([sys.executable, "-m", "signvision", *args], capture_output=True, text=True, env=env)
    out, err = first.communicate(timeout=300)
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 2], (first.returncode, err, second.returncode, second.stderr)
    refused = second.stderr if second.returncode == 2 else err
    assert len(refused.strip().splitlines()) == 1 and (
        "another signvision process" in refused or "already" in refused or "not empty" in refused
    ), refused
    if command == "train":
        metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
        assert list(metrics["epoch"]) == [1, 2, 3, 4, 5, 6]  # one run's epochs, not two runs mixed


@pytest.mark.slow
def test_a_full_disk_keeps_the_earlier_submission_whole(tiny_zindi, tmp_path, monkeypatch, capsys):
    assert main(["train", "--data", str(tiny_zindi), *TINY, "--out", str(tmp_path / "run")]) == 0
    sub = tmp_path / "sub.csv"
    assert main(["predict", "--run", str(tmp_path / "run"), "--out", str(sub), "--device", "cpu"]) == 0
    before = sub.read_bytes()
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    capsys.readouterr()
    code = main(["predict", "--run", str(tmp_path / "run"), "--out", str(sub), "--overwrite", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "the disk is full" in err and len(err.strip().splitlines()) == 1, err
    assert sub.read_bytes() == before  # the old submission, whole
    code = main(["export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "m.onnx")])
    assert code == 2 and not (tmp_path / "m.onnx").exists()  # no empty file that would block the retry
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert main(["export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "m.onnx")]) == 0
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_a_checkpoint_on_a_full_disk_is_one_line(tiny_zindi, tmp_path, monkeypatch):
    import torch

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1234 vs 1178")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr("shutil.disk_usage", lambda path: type("U", (), {"free": 0})())
    with pytest.raises(DiskFullError, match="last.pt: the disk is full"):
        fit(tiny_config(tiny_zindi, tmp_path / "run"))


def killed_before_the_first_checkpoint(monkeypatch):
    """Make the next run stop right after config.json is written, as a SIGKILL would (no cleanup)."""

    class Killed(BaseException):
        pass

    real = runfolder_module.FolderRecorder.start

    def start(self, state):
        if not (self.out / "last.pt").is_file():
            monkeypatch.setattr(runfolder_module.FolderRecorder, "start", real)
            raise Killed
        return real(self, state)

    monkeypatch.setattr(runfolder_module.FolderRecorder, "start", start)
    return Killed


def test_a_run_killed_before_its_first_checkpoint_resumes(tiny_zindi, tmp_path, monkeypatch, capsys):
    killed = killed_before_the_first_checkpoint(monkeypatch)
    with pytest.raises(killed):
        fit(tiny_config(tiny_zindi, tmp_path / "run"))
    assert (tmp_path / "run" / "config.json").is_file() and not (tmp_path / "run" / "last.pt").exists()
    code = main(["train", "--data", str(tiny_zindi), *TINY, "--out", str(tmp_path / "run")])
    assert code == 2 and "--resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 2


def test_folds_killed_before_a_fold_starts_are_finished_by_the_same_command(tiny_zindi, tmp_path, monkeypatch):
    cfg = lambda: tiny_config(tiny_zindi, tmp_path / "cv", folds=3, epochs=1)  # noqa: E731
    real_start = runfolder_module.FolderRecorder.start
    calls = {"n": 0}

    class Killed(BaseException):
        pass

    def start(self, state):
        calls["n"] += 1
        if calls["n"] == 2:  # fold 2: config.json written, no last.pt yet
            raise Killed
        return real_start(self, state)

    monkeypatch.setattr(runfolder_module.FolderRecorder, "start", start)
    with pytest.raises(Killed):
        fit_folds(cfg())
    assert (tmp_path / "cv" / "fold2" / "config.json").is_file() and not (
        tmp_path / "cv" / "fold2" / "last.pt"
    ).exists()
    monkeypatch.setattr(runfolder_module.FolderRecorder, "start", real_start)
    summary = fit_folds(cfg())  # the same command again
    assert summary["oof_images"] == 36 and (tmp_path / "cv" / "fold3" / "best.pt").is_file()


def test_two_writers_in_one_process_are_refused(tmp_path):
    import threading

    claim_folder(tmp_path / "run")
    refused = []

    def second_writer():
        try:
            claim_folder(tmp_path / "run")
        except RunError as e:
            refused.append(str(e))

    thread = threading.Thread(target=second_writer)
    thread.start()
    thread.join()
    assert refused and "another thread" in refused[0]
    release_folder(tmp_path / "run")
    assert not (tmp_path / "run" / ".lock").exists()


def test_outputs_into_new_folders_with_the_umask_s_permissions(tiny_zindi, tmp_path):
    from signvision.files import atomic_write

    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "new" / "deeper" / "x.json") as f:  # a folder that does not exist yet
            f.write("{}")
        assert oct((tmp_path / "new" / "deeper" / "x.json").stat().st_mode & 0o777) == oct(0o644)
        assert main(["split", "--data", str(tiny_zindi), "--out", str(tmp_path / "not" / "yet" / "s.csv")]) == 0
        assert (tmp_path / "not" / "yet" / "s.json").is_file()
        assert oct((tmp_path / "not" / "yet" / "s.csv").stat().st_mode & 0o777) == oct(0o644)
    finally:
        os.umask(old)


def test_a_folder_holding_only_a_browser_s_files_is_empty(tiny_zindi, tmp_path):
    (tmp_path / "out" / ".ipynb_checkpoints").mkdir(parents=True)
    (tmp_path / "out" / ".DS_Store").write_bytes(b"\0")
    fit(tiny_config(tiny_zindi, tmp_path / "out", epochs=1))
    assert (tmp_path / "out" / "summary.json").is_file()

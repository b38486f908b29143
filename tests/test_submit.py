"""`submit`: one command with a time budget. Staged --folds runs (tiny recipes here), the best submission so far
written after each stage, a stage that does not fit skipped, the same command continuing the job, a user's
file never replaced, and one-line errors for a bad budget."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import signvision.runs.planner as planner_module
import signvision.runs.submit as submit_module
from signvision.errors import OptionError
from signvision.runs.submit import parse_time

TINY_STAGES = {
    "lenet": {"model": "lenet", "epochs": 2, "image_size": 32},
    "lite0": {"model": "tf_efficientnet_lite0", "weights": "imagenet", "epochs": 1, "image_size": 32},
}


@pytest.fixture
def tiny_job(monkeypatch):
    monkeypatch.setattr(planner_module, "STAGES", TINY_STAGES)
    monkeypatch.setattr(planner_module, "FOLDS", (2,))


def test_budgets_in_words_and_numbers():
    assert parse_time("30m") == 1800 and parse_time("1h") == 3600 and parse_time("1h30m") == 5400
    assert parse_time("90s") == 90 and parse_time("2.5m") == 150 and parse_time(20) == 1200 and parse_time("5") == 300
    for bad in ("soon", "0m", "-5", "", "30x", "8d", 10**9):
        with pytest.raises(OptionError, match="time"):
            parse_time(bad)


def check_submission(path, data) -> pd.DataFrame:
    sub = pd.read_csv(path)
    sample = pd.read_csv(data / "SampleSubmission.csv") if (data / "SampleSubmission.csv").is_file() else None
    test = pd.read_csv(data / "Test.csv")
    assert sorted(sub["img_IDS"]) == sorted(test["img_IDS"])
    probs = sub.drop(columns="img_IDS").to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-4) and (probs >= 0).all()
    if sample is not None:
        assert list(sub.columns) == list(sample.columns)
    return sub


@pytest.mark.slow
def test_submit_stages_a_kill_a_larger_budget_and_the_same_command_again(
    tiny_zindi, tmp_path, tiny_job, monkeypatch, capsys
):
    """Killed after its first stage trained (before the submission), the same call finishes it without training
    again; a stage that does not fit is skipped and said; a larger budget goes on to it and to the ensemble; the
    same command once more trains nothing and leaves OUT as it was; other data in the same folder is refused."""
    import signvision as sv
    from signvision.cli.commands import main

    slow_lite0 = lambda settings, *a, **k: 1e9 if settings["model"] == "lenet" else 1e-3  # noqa: E731 (images/s)
    monkeypatch.setattr(planner_module, "training_rate", slow_lite0)
    real_best = submit_module.best_so_far
    monkeypatch.setattr(submit_module, "best_so_far", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    out, work, lines = tmp_path / "submission.csv", tmp_path / "submission-job", []
    with pytest.raises(KeyboardInterrupt):
        sv.submit(tiny_zindi, time="2m", out=out, device="cpu", log=lines.append)
    assert not out.exists() and (work / "lenet" / "summary.json").is_file()
    monkeypatch.setattr(submit_module, "best_so_far", real_best)
    lines.clear()
    record = sv.submit(tiny_zindi, time="2m", out=out, device="cpu", log=lines.append)
    assert not any("training on" in line for line in lines), "the finished stage was trained again"
    assert [r["stage"] for r in record["stages"]] == ["lenet"] and any("stage lite0: skipped" in x for x in lines)
    first = record["stages"][0]
    assert first["predicts_with"] == "lenet" and first["log_loss_ci"][0] <= first["log_loss"] <= first["log_loss_ci"][1]
    check_submission(out, tiny_zindi)

    monkeypatch.setattr(planner_module, "training_rate", lambda *a, **k: 1e9)
    argv = ["submit", "--data", str(tiny_zindi), "--time", "20m", "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0  # a larger budget: the skipped stage, then the ensemble of both
    record = json.loads((work / "stages.json").read_text())
    assert [r["stage"] for r in record["stages"]] == ["lenet", "lite0"]
    assert record["predicts_with"] == "ensemble-2" and (work / "ensemble-2" / "ensemble.json").is_file()
    assert record["stages"][1]["gain_over_best_stage"]["log_loss_ci"] is not None
    check_submission(out, tiny_zindi)
    page = (work / "submit.html").read_text()
    assert "<img" in page and "lite0" in page and "Nothing was fitted on the test images" in page
    capsys.readouterr()
    before = out.read_bytes()
    assert main(argv) == 0  # the same command: every stage finished, nothing trained, OUT as it was
    said = capsys.readouterr().out.strip().splitlines()
    assert (
        f"Submission: {out}" in said[-1] and "ensemble-2" in said[-1] and not any(x.startswith("stage ") for x in said)
    )
    assert out.read_bytes() == before
    assert main(argv + ["--distill"]) == 0  # one network to serve, trained on what predicts; OUT as it was
    said = capsys.readouterr().out.strip().splitlines()
    distilled = json.loads((work / "stages.json").read_text())["distilled"]
    assert distilled["teacher"] == "ensemble-2" and 0 <= distilled["accuracy"] <= 1
    config = json.loads((work / "distilled" / "config.json").read_text())
    assert config["teacher"] == str((work / "ensemble-2").resolve()) and config["model"] == "lenet"
    assert f"One network to serve: {work / 'distilled'}" in said[-1] and out.read_bytes() == before
    assert "One network to serve and export: <code>distilled</code>" in (work / "submit.html").read_text()
    other = tmp_path / "other-data"
    shutil.copytree(tiny_zindi, other)  # the job's folder names its data: other data is another job
    assert main(["submit", "--data", str(other), "--time", "1m", "--out", str(out)]) == 2
    assert "with other settings (data); use a new folder" in capsys.readouterr().err  # names what differs
    assert out.read_bytes() == before


@pytest.mark.slow
def test_the_second_round_trains_on_the_test_images_the_first_stages_are_sure_of(
    tiny_zindi, tmp_path, tiny_job, monkeypatch
):
    """Asked for, the second round labels the test images with the finished stages' ensemble (kept where it is
    sure), trains LeNet on the labelled images plus those (never validating on them), predicts in the first
    LeNet's place from then on and says so on the page; killed after it trained, the same command keeps its
    labels and its training, and finishes it before a stage it had skipped; the same folder without it is
    another job, refused."""
    import signvision as sv
    from signvision.errors import RunError

    monkeypatch.setattr(planner_module, "training_rate", lambda s, *a, **k: 1e9 if s["model"] == "lenet" else 1e-3)
    monkeypatch.setattr(planner_module, "SURE", 0.2)  # two epochs at 32 px are sure of little at 0.9
    out, work, lines = tmp_path / "submission.csv", tmp_path / "submission-job", []
    real_write, calls = submit_module.write_submission, []

    def killed_after_the_second_round_trained(*args):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_write(*args)

    monkeypatch.setattr(submit_module, "write_submission", killed_after_the_second_round_trained)
    with pytest.raises(KeyboardInterrupt):
        sv.submit(tiny_zindi, time="2m", out=out, device="cpu", second_round=True, log=lines.append)
    labelled = (work / "pseudo-labels.csv").read_bytes()
    lines.clear()
    monkeypatch.setattr(planner_module, "training_rate", lambda *a, **k: 1e9)  # now Lite0 fits too: ...
    record = sv.submit(tiny_zindi, time="20m", out=out, device="cpu", second_round=True, log=lines.append)
    assert [r["stage"] for r in record["stages"]] == ["lenet", "lenet-pl", "lite0"], lines  # ... after the stage
    # an earlier call started (planned before it, a stage took the time the interrupted one then overran)
    again = [line for line in lines if "training on" in line and "pseudo-labelled" in line]
    assert not again, "the finished second round was trained again"
    assert (work / "pseudo-labels.csv").read_bytes() == labelled  # made once: the same command keeps it
    pseudo = pd.read_csv(work / "pseudo-labels.csv")
    test = pd.read_csv(tiny_zindi / "Test.csv")
    second = record["stages"][1]
    assert second["pseudo_labels"] == len(pseudo) > 0 and second["test_images"] == len(test)
    assert set(pseudo["img_IDS"]) <= set(test["img_IDS"]) and (pseudo["confidence"] >= 0.2).all()
    for fold in (1, 2):
        first = json.loads((work / "lenet" / f"fold{fold}" / "summary.json").read_text())
        again = json.loads((work / "lenet-pl" / f"fold{fold}" / "summary.json").read_text())
        assert again["train_images"] == first["train_images"] + len(pseudo)  # the test images on the training side
        assert again["val_images"] == first["val_images"]  # and never on the validation side
    assert second["predicts_with"] == "lenet-pl"  # the second round replaces the LeNet it trained again ...
    assert record["predicts_with"] == "ensemble-3"  # ... in every ensemble after it
    members = json.loads((work / "ensemble-3" / "ensemble.json").read_text())["runs"]
    assert members == ["../lenet-pl", "../lite0"] and record["stages"][2]["gain_over_best_stage"]["log_loss_ci"]
    assert "from ensemble-3 (lenet-pl, lite0): out-of-fold" in lines[-1]  # the last line names what predicts
    check_submission(out, tiny_zindi)
    page = (work / "submit.html").read_text()
    assert f"The second round (lenet-pl) trained on {len(pseudo)} of the {len(test)} test images" in page
    assert "Nothing was fitted on the test images" not in page
    with pytest.raises(RunError, match=r"other settings \(second_round_replaces, stages.lenet-pl\)"):
        sv.submit(tiny_zindi, time="20m", out=out, device="cpu")


def test_a_users_file_is_never_replaced_and_no_test_images_is_one_line(tiny_zindi, tmp_path, tiny_job):
    import signvision as sv

    mine = tmp_path / "submission.csv"
    mine.write_text("my own work\n")
    with pytest.raises(OptionError, match="already exists"):
        sv.submit(tiny_zindi, time="1m", out=mine)
    assert mine.read_text() == "my own work\n" and not (tmp_path / "submission-job").exists()
    (tiny_zindi / "Test.csv").unlink()
    with pytest.raises(OptionError, match="no test images"):
        sv.submit(tiny_zindi, time="1m", out=tmp_path / "other.csv")


def test_the_pace_is_learnt_from_the_share_of_a_stage_this_call_trained(tmp_path, monkeypatch):
    """A stage continued after a kill has only its rest to time: half of it trained here in 150 s, against an
    estimate of 300 s for the whole stage, is a pace of 1.0, not 0.5 (which made the next stage overrun)."""
    from types import SimpleNamespace

    import signvision.runs.api as api

    clock = [0.0]
    monkeypatch.setattr(submit_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    work = tmp_path / "job"
    for fold, rows in ((1, 10), (2, 5)):  # what the killed call finished: 15 of 3 x 10 epochs
        (work / "lenet" / f"fold{fold}").mkdir(parents=True)
        (work / "lenet" / f"fold{fold}" / "metrics.csv").write_text("epoch\n" + "".join(f"{e}\n" for e in range(rows)))

    def train_the_rest(data, out, folds, epochs, **settings):
        for fold in range(1, folds + 1):
            metrics = out / f"fold{fold}" / "metrics.csv"
            metrics.parent.mkdir(parents=True, exist_ok=True)
            done = len(metrics.read_text().splitlines()) - 1 if metrics.is_file() else 0
            metrics.write_text("epoch\n" + "".join(f"{e}\n" for e in range(epochs)))
            clock[0] += 10.0 * (epochs - done)  # 10 s an epoch

    monkeypatch.setattr(api, "train_folds", train_the_rest)
    job = planner_module.Job(data=tmp_path, work=work, out=tmp_path / "s.csv", deadline=1e9, settings={})
    submit_module.train_stage(job, "lenet", {"model": "lenet", "folds": 3, "epochs": 10}, estimate=300.0)
    assert clock[0] == 150.0 and job.paces[planner_module.step_of(job, "lenet")] == pytest.approx(1.0)


def test_the_last_line_says_when_a_second_round_asked_for_did_not_run(tmp_path):
    """A `20m --second-round` job skipped the second round it was asked for (the stage before it overran), 1.8
    minutes before the budget's end, and said so only in the middle of its log: the last line now says it, and
    nothing where it ran or where it was not asked for."""
    from signvision.runs.submit import closing_lines

    row = {"log_loss": 0.138, "log_loss_ci": [0.071, 0.225], "accuracy": 0.959, "predicts_with": "ensemble-2"}
    record = {"stages": [{**row, "stage": "lenet"}, {**row, "stage": "lite0"}], "submission": "s.csv"}
    record.update(seconds=1012.9, budget_seconds=1200.0)
    said = closing_lines(record, tmp_path, asked_second_round=True)
    assert "16.9 min of 20.0" in said and "The second round asked for did not run" in said
    assert "larger --time" in said and said.endswith(f"Page: {tmp_path / 'submit.html'}")
    assert "second round" not in closing_lines(record, tmp_path)  # not asked for
    record["stages"].append({**row, "stage": "lenet-pl", "predicts_with": "ensemble-3"})
    ran = closing_lines(record, tmp_path, asked_second_round=True)
    assert "did not run" not in ran and "(lite0, lenet-pl)" in ran  # it ran: in the first LeNet's place

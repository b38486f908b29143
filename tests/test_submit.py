"""`submit`: one command with a time budget. Staged --folds runs (tiny recipes here), the best submission so far
written after each stage, a stage that does not fit skipped, the same command continuing the job, a user's
file never replaced, and one-line errors for a bad budget."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import signvision.runs.submit as submit_module
from signvision.errors import OptionError
from signvision.runs.submit import parse_time

TINY_STAGES = {
    "lenet": {"model": "lenet", "epochs": 2, "image_size": 32},
    "lite0": {"model": "tf_efficientnet_lite0", "weights": "imagenet", "epochs": 1, "image_size": 32},
}


@pytest.fixture
def tiny_job(monkeypatch):
    monkeypatch.setattr(submit_module, "STAGES", TINY_STAGES)
    monkeypatch.setattr(submit_module, "FOLDS", (2,))


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
    monkeypatch.setattr(submit_module, "training_rate", slow_lite0)
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

    monkeypatch.setattr(submit_module, "training_rate", lambda *a, **k: 1e9)
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
    assert out.read_bytes() == before


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


def test_the_job_chooses_the_most_folds_with_which_every_stage_fits(monkeypatch):
    """A short budget gets fewer folds of the full recipes, not under-trained models, and every stage has the same
    folds; where only the first stage fits, the most folds for it; where not even that, the first stage is cut
    to fewer epochs, never skipped; a later stage is cut if 2/3 of its epochs fit, else skipped."""
    import time

    from signvision.runs.submit import OVERHEAD, Job, choose_folds, plan_stage

    stages = {"lenet": {"model": "lenet", "epochs": 10}, "lite0": {"model": "x", "epochs": 10}}
    monkeypatch.setattr(submit_module, "STAGES", stages)
    monkeypatch.setattr(submit_module, "FOLDS", (5, 3, 2))
    monkeypatch.setattr(submit_module, "training_rate", lambda s, *a, **k: 100.0 if s["model"] == "lenet" else 50.0)
    unit = OVERHEAD * 10 * 1000 / 100.0  # LeNet's seconds per (k - 1) folds; Lite0 takes twice that

    def job(budget_units):
        return Job("d", None, None, time.monotonic() + budget_units * unit, {})

    assert choose_folds(job(12.5), 1000, 3) == 5  # (4 + 8) units: both stages with 5 folds
    assert choose_folds(job(7), 1000, 3) == 3  # (2 + 4): both with 3 folds, rather than LeNet alone with 5
    assert choose_folds(job(4.5), 1000, 3) == 5  # only LeNet fits: with 5 folds (4 units; 2 folds of each: no)
    short = job(1.5)
    assert choose_folds(short, 1000, 3) == 2  # LeNet alone: 3 folds (2 units) do not fit, 2 folds (1) do
    short.folds = 2
    settings, estimate = plan_stage(short, "lenet", 1000, 3, done=0)
    assert settings["folds"] == 2 and settings["epochs"] == 10 and estimate == pytest.approx(unit)
    settings, estimate = plan_stage(short, "lite0", 1000, 3, done=1)  # 2 units needed, 1.5 left ...
    assert settings["epochs"] == 7 and estimate == pytest.approx(0.7 * 2 * unit)  # ... 7 of 10 epochs fit
    shorter = job(1.2)
    shorter.folds = 2
    assert plan_stage(shorter, "lite0", 1000, 3, done=1) is None  # 6 of 10 epochs: under 2/3, skipped
    tiny = job(0.3)
    tiny.folds = choose_folds(tiny, 1000, 3)
    settings, _ = plan_stage(tiny, "lenet", 1000, 3, done=0)
    assert tiny.folds == 2 and settings["epochs"] == 4  # the fewest epochs: it says it will go over


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
    job = submit_module.Job(data=tmp_path, work=work, out=tmp_path / "s.csv", deadline=1e9, settings={})
    submit_module.train_stage(job, "lenet", {"model": "lenet", "folds": 3, "epochs": 10}, estimate=300.0)
    assert clock[0] == 150.0 and job.paces[submit_module.step_of(job, "lenet")] == pytest.approx(1.0)


def test_each_network_keeps_its_own_pace_and_later_stages_leave_time_to_write_the_submission(monkeypatch):
    """The pace learnt on LeNet (slower than its estimate) holds for the 30-epoch LeNet, not for Lite0 (untried:
    1.0); and a later stage leaves the time that writing the submission of one more stage takes."""
    import time

    from signvision.runs.submit import OVERHEAD, Job, plan_stage, step_of

    stages = {
        "lenet": {"model": "lenet", "epochs": 10},
        "lite0": {"model": "x", "epochs": 30},
        "lenet30": {"model": "lenet", "epochs": 20},
    }
    monkeypatch.setattr(submit_module, "STAGES", stages)
    monkeypatch.setattr(submit_module, "training_rate", lambda s, *a, **k: 100.0)
    unit = OVERHEAD * 10 * 1000 * 2 / 100.0  # a 10-epoch stage of 3 folds at its estimate
    job = Job("d", None, None, time.monotonic() + 3.1 * unit, {}, folds=3)
    job.paces[step_of(job, "lenet")] = 1.5  # LeNet's first stage took 1.5 times its estimate
    assert step_of(job, "lenet") == step_of(job, "lenet30") != step_of(job, "lite0")
    settings, _ = plan_stage(job, "lite0", 1000, 3, done=1)
    assert settings["epochs"] == 30  # 3 units at Lite0's own pace fit in 3.1 (at LeNet's 1.5: 20 epochs)
    settings, _ = plan_stage(job, "lenet30", 1000, 3, done=2)
    assert settings["epochs"] == 20  # 2 units x 1.5 = 3 units fit
    job.after = 0.1 * unit  # each finished stage adds a tenth of a unit to writing the submission
    settings, _ = plan_stage(job, "lenet30", 1000, 3, done=2)
    assert settings["epochs"] == 18  # (3.1 - 0.3) / 3 of 20 epochs
    job.paces[step_of(job, "lenet")] = 2.5
    assert plan_stage(job, "lenet30", 1000, 3, done=2) is None  # (3.1 - 0.3) / 5 of 20 = 11 < 2/3 of 20: skipped


def test_one_network_at_one_size_is_timed_once_a_job(tmp_path, monkeypatch):
    """LeNet for 15 and for 30 epochs take the same time a step: one probe, so that the pace learnt on the first
    stage holds for the third."""
    probes = []
    monkeypatch.setattr(submit_module, "training_rate", lambda s, *a, **k: probes.append(s["model"]) or 100.0)
    job = submit_module.Job(data=tmp_path, work=tmp_path, out=tmp_path / "s.csv", deadline=1e9, settings={})
    rates = {name: submit_module.rate_of(job, name, 10) for name in ("lenet", "lenet30", "lite0", "lenet")}
    assert probes == ["lenet", "tf_efficientnet_lite0"] and set(rates.values()) == {100.0}

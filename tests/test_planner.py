"""`submit`'s planner: the folds that let the most valuable stages fit, a stage cut or skipped against the time
left, each network's own pace, one timing probe per network and size (the training rate replaced by fixed
figures here)."""

from __future__ import annotations

import pytest

import signvision.runs.planner as planner_module


def test_the_job_chooses_the_most_folds_with_which_every_stage_fits(monkeypatch):
    """A short budget gets fewer folds of the full recipes, not under-trained models, and every stage has the same
    folds; where only the first stage fits, the most folds for it; where not even that, the first stage is cut
    to fewer epochs, never skipped; a later stage is cut if 2/3 of its epochs fit, else skipped."""
    import time

    from signvision.runs.planner import OVERHEAD, Job, choose_folds, plan_stage

    stages = {"lenet": {"model": "lenet", "epochs": 10}, "lite0": {"model": "x", "epochs": 10}}
    monkeypatch.setattr(planner_module, "STAGES", stages)
    monkeypatch.setattr(planner_module, "FOLDS", (5, 3, 2))
    monkeypatch.setattr(planner_module, "training_rate", lambda s, *a, **k: 100.0 if s["model"] == "lenet" else 50.0)
    unit = OVERHEAD * 10 * 1000 / 100.0  # LeNet's seconds per (k - 1) folds; Lite0 takes twice that

    def job(budget_units):
        return Job("d", None, None, time.monotonic() + budget_units * unit, {})

    assert choose_folds(job(12.5), 1000, 3) == 5  # (4 + 8) units: both stages with 5 folds
    assert choose_folds(job(7), 1000, 3) == 3  # (2 + 4): both with 3 folds, rather than LeNet alone with 5
    assert choose_folds(job(4.5), 1000, 3) == 5  # only LeNet fits: with 5 folds (4 units; 2 folds of each: no)
    short = job(1.5)
    assert choose_folds(short, 1000, 3) == 2  # LeNet alone: 3 folds (2 units) do not fit, 2 folds (1) do
    short.folds = 2
    settings, estimate = plan_stage(short, "lenet", 1000, 3, done=[])
    assert settings["folds"] == 2 and settings["epochs"] == 10 and estimate == pytest.approx(unit)
    settings, estimate = plan_stage(short, "lite0", 1000, 3, done=["lenet"])  # 2 units needed, 1.5 left ...
    assert settings["epochs"] == 7 and estimate == pytest.approx(0.7 * 2 * unit)  # ... 7 of 10 epochs fit
    shorter = job(1.2)
    shorter.folds = 2
    assert plan_stage(shorter, "lite0", 1000, 3, done=["lenet"]) is None  # 6 of 10 epochs: under 2/3, skipped
    tiny = job(0.3)
    tiny.folds = choose_folds(tiny, 1000, 3)
    settings, _ = plan_stage(tiny, "lenet", 1000, 3, done=[])
    assert tiny.folds == 2 and settings["epochs"] == 4  # the fewest epochs: it says it will go over


def test_each_network_keeps_its_own_pace_and_later_stages_leave_time_to_write_the_submission(monkeypatch):
    """The pace learnt on LeNet (slower than its estimate) holds for the 30-epoch LeNet, not for Lite0 (128 px, untried:
    1.0); and a later stage leaves the time that writing the submission of one more stage takes."""
    import time

    from signvision.runs.planner import OVERHEAD, Job, plan_stage, step_of

    stages = {
        "lenet": {"model": "lenet", "epochs": 10},
        "lite0": {"model": "x", "image_size": 128, "epochs": 30},
        "lenet30": {"model": "lenet", "epochs": 20},
    }
    monkeypatch.setattr(planner_module, "STAGES", stages)
    monkeypatch.setattr(planner_module, "training_rate", lambda s, *a, **k: 100.0)
    unit = OVERHEAD * 10 * 1000 * 2 / 100.0  # a 10-epoch stage of 3 folds at its estimate
    job = Job("d", None, None, time.monotonic() + 3.1 * unit, {}, folds=3)
    job.paces[step_of(job, "lenet")] = 1.5  # LeNet's first stage took 1.5 times its estimate
    assert step_of(job, "lenet") == step_of(job, "lenet30") != step_of(job, "lite0")
    settings, _ = plan_stage(job, "lite0", 1000, 3, done=["lenet"])
    assert settings["epochs"] == 30  # 3 units at Lite0's own pace fit in 3.1 (at LeNet's 1.5: 20 epochs)
    settings, _ = plan_stage(job, "lenet30", 1000, 3, done=["lenet", "lite0"])
    assert settings["epochs"] == 20  # 2 units x 1.5 = 3 units fit
    job.writing[step_of(job, "lenet")] = 0.1 * unit  # a LeNet member adds a tenth of a unit to writing; Lite0,
    # not learnt and of no LeNet's size, counts as the dearest learnt
    settings, _ = plan_stage(job, "lenet30", 1000, 3, done=["lenet", "lite0"])
    assert settings["epochs"] == 18  # (3.1 - 0.3) / 3 of 20 epochs
    job.paces[step_of(job, "lenet")] = 2.5
    # (3.1 - 0.3) / 5 of 20 = 11 < 2/3 of 20: skipped
    assert plan_stage(job, "lenet30", 1000, 3, done=["lenet", "lite0"]) is None


def test_an_untried_network_takes_the_pace_of_one_at_its_size(monkeypatch):
    """Lite0 after Lite1 (both 128 px): the probe's error is the job's, so Lite0 starts from Lite1's learnt pace,
    not 1.0; LeNet at 64 px does not lend its pace to either."""
    import time

    from signvision.runs.planner import Job, pace_of, step_of

    stages = {
        "lenet": {"model": "lenet"},
        "lite1": {"model": "b", "image_size": 128},
        "lite0": {"model": "a", "image_size": 128},
    }
    monkeypatch.setattr(planner_module, "STAGES", stages)
    job = Job("d", None, None, time.monotonic() + 100.0, {}, folds=3)
    job.paces[step_of(job, "lenet")] = 1.3
    assert pace_of(job, "lite1") == pace_of(job, "lite0") == 1.0  # no 128 px network tried yet
    job.paces[step_of(job, "lite1")] = 0.64
    assert pace_of(job, "lite0") == 0.64 and pace_of(job, "lenet") == 1.3
    job.paces[step_of(job, "lite0")] = 0.8
    assert pace_of(job, "lite0") == 0.8  # its own, once learnt


def test_one_network_at_one_size_is_timed_once_a_job(tmp_path, monkeypatch):
    """LeNet for 15 and for 30 epochs take the same time a step: one probe, so that the pace learnt on the first
    stage holds for the third."""
    probes = []
    monkeypatch.setattr(planner_module, "training_rate", lambda s, *a, **k: probes.append(s["model"]) or 100.0)
    job = planner_module.Job(data=tmp_path, work=tmp_path, out=tmp_path / "s.csv", deadline=1e9, settings={})
    rates = {name: planner_module.rate_of(job, name, 10) for name in ("lenet", "lenet30", "lite0", "lenet")}
    assert probes == ["lenet", "tf_efficientnet_lite0"] and set(rates.values()) == {100.0}


def test_a_stage_that_does_not_fit_is_skipped_and_a_cheaper_one_after_it_counts(monkeypatch):
    """Lite1 before Lite0 (the better member first): where Lite1 does not fit with 3 folds and Lite0 does, the job
    takes 3 folds of LeNet and Lite0, as it will run them, rather than 5 folds of LeNet alone."""
    import time

    from signvision.runs.planner import OVERHEAD, Job, choose_folds

    stages = {"lenet": {"model": "lenet"}, "lite1": {"model": "b"}, "lite0": {"model": "a"}}
    monkeypatch.setattr(planner_module, "STAGES", stages)
    monkeypatch.setattr(planner_module, "FOLDS", (5, 3, 2))
    rates = {"lenet": 100.0, "a": 20.0, "b": 10.0}  # Lite0 five times LeNet's time, Lite1 ten times
    monkeypatch.setattr(planner_module, "training_rate", lambda s, *a, **k: rates[s["model"]])
    unit = OVERHEAD * 15 * 1000 / 100.0  # LeNet's seconds per (k - 1) folds (15 epochs, the default)
    # with 3 folds LeNet 2 units, Lite1 20 (skipped), Lite0 10: 12 of 14; with 5 folds LeNet alone (4)
    assert choose_folds(Job("d", None, None, time.monotonic() + 14 * unit, {}), 1000, 3) == 3
    # with 3 folds LeNet 2 units, Lite1 20 and Lite0 10 both skipped: LeNet alone, with the most folds that fit
    assert choose_folds(Job("d", None, None, time.monotonic() + 11 * unit, {}), 1000, 3) == 5


def test_a_stage_the_budget_cannot_reach_is_not_timed(monkeypatch):
    """A later stage's network is timed only if a minute is left after the stages that fit before it: a short job
    does not spend its minutes on a probe of a network it could never train (a pretrained network's probe is
    seconds of the budget)."""
    import time

    from signvision.runs.planner import OVERHEAD, Job, choose_folds

    stages = {"lenet": {"model": "lenet"}, "lite0": {"model": "a"}, "lite1": {"model": "b"}}
    monkeypatch.setattr(planner_module, "STAGES", stages)
    monkeypatch.setattr(planner_module, "FOLDS", (5, 3, 2))
    probes = []
    rates = {"lenet": 100.0, "a": 10.0, "b": 10.0}
    monkeypatch.setattr(
        planner_module, "training_rate", lambda s, *a, **k: probes.append(s["model"]) or rates[s["model"]]
    )
    unit = OVERHEAD * 15 * 1000 / 100.0  # LeNet's seconds per (k - 1) folds (15 epochs, the default): 187.5
    job = Job("d", None, None, time.monotonic() + 2.2 * unit, {})  # 3 folds of LeNet leave 37 s; 5 do not fit
    assert choose_folds(job, 1000, 3) == 3  # LeNet alone, 2 units, with 3 folds
    assert probes == ["lenet"]  # neither Lite timed: under a minute left after LeNet with any folds
    roomy = Job("d", None, None, time.monotonic() + 100 * unit, {})
    probes.clear()
    assert choose_folds(roomy, 1000, 3) == 5 and probes == ["lenet", "a", "b"]  # all three fit: all three timed
    nearly_over = Job("d", None, None, time.monotonic() + 30.0, {}, folds=3)
    probes.clear()
    assert planner_module.plan_stage(nearly_over, "lite1", 1000, 3, done=["lenet"]) is None  # 30 s left
    assert probes == []


def test_the_second_round_comes_where_asked_and_only_after_a_first(monkeypatch):
    """`second_round` puts LeNet with pseudo-labels last, in the 30-epoch LeNet's place (which, after it, took
    the ensemble's weight from it); it is planned only after a finished stage, on the labelled images plus every
    test image at most."""
    import time
    from pathlib import Path

    assert list(planner_module.stages_of()) == list(planner_module.STAGES)
    assert list(planner_module.stages_of(True)) == ["lenet", "lite1", "lite0", "lenet-pl"]
    second = planner_module.stages_of(True)["lenet-pl"]
    assert second == planner_module.STAGES["lenet"] == {"model": "lenet", "amp": True}
    monkeypatch.setattr(planner_module, "STAGES", {"lenet": {"model": "lenet"}})
    assert planner_module.stages_of(True) == {"lenet": {"model": "lenet"}, "lenet-pl": {"model": "lenet"}}
    monkeypatch.setattr(planner_module, "training_rate", lambda *a, **k: 1000.0)
    job = planner_module.Job("d", Path("w"), Path("o.csv"), time.monotonic() + 3600, {}, folds=3)
    job.stages, job.test_images = planner_module.stages_of(True), 500
    assert planner_module.plan_stage(job, "lenet-pl", 1000, 4, done=[]) is None
    settings, first = planner_module.plan_stage(job, "lenet", 1000, 4, done=[])
    _, second = planner_module.plan_stage(job, "lenet-pl", 1000, 4, done=["lenet"])
    assert second == pytest.approx(first * 1500 / 1000)


def test_a_finished_second_round_predicts_in_place_of_the_stage_it_trained_again():
    """Before the second round every finished stage predicts; after it, all but the LeNet it replaces."""
    assert planner_module.predicting(["lenet"]) == ["lenet"]
    assert planner_module.predicting(["lenet", "lite1", "lite0"]) == ["lenet", "lite1", "lite0"]
    assert planner_module.predicting(["lenet", "lite1", "lite0", "lenet-pl"]) == ["lite1", "lite0", "lenet-pl"]
    assert planner_module.predicting(["lenet", "lenet-pl", "lenet30"]) == ["lenet-pl", "lenet30"]


def test_asked_for_the_second_round_goes_before_a_later_first_round_stage(monkeypatch):
    """With a second round to come, a stage before it is planned in the time left less the second round's: cut
    or skipped so that the second round still runs; without one, or for the first stage, nothing is kept."""
    import time
    from pathlib import Path

    from signvision.runs.planner import OVERHEAD, Job, plan_stage

    rates = {"lenet": 100.0, "a": 20.0}  # Lite0 ("a") five times LeNet's time
    monkeypatch.setattr(planner_module, "training_rate", lambda s, *a, **k: rates[s["model"]])
    unit = OVERHEAD * 15 * 1000 / 100.0  # LeNet's seconds per (k - 1) folds: 3 folds are 2 units, Lite0's 10
    first_round = {"lenet": {"model": "lenet"}, "lite0": {"model": "a"}}
    second_round = {**first_round, "lenet-pl": {"model": "lenet"}}  # 1000 + 500 images: 3 units

    def job(stages, units):
        made = Job("d", Path("w"), Path("o.csv"), time.monotonic() + units * unit, {}, folds=3, stages=stages)
        made.test_images = 500
        return made

    assert "epochs" not in plan_stage(job(first_round, 11), "lite0", 1000, 3, done=["lenet"])[0]  # fits whole
    cut, _ = plan_stage(job(second_round, 11.1), "lite0", 1000, 3, done=["lenet"])  # 8.1 units after the 3 kept
    assert cut["epochs"] == 12
    assert plan_stage(job(second_round, 9), "lite0", 1000, 3, done=["lenet"]) is None  # 6 units: under 2/3
    assert plan_stage(job(second_round, 9), "lenet-pl", 1000, 3, done=["lenet"]) is not None  # which then fits
    assert plan_stage(job(second_round, 2.5), "lenet", 1000, 3, done=[])[0].get("epochs") is None  # first: whole


def test_with_a_second_round_to_come_a_borrowed_pace_is_counted_longer(monkeypatch):
    """Lite0 at Lite1's pace took up to 1.15 times its estimate: before a second round it is planned PACE_MARGIN
    longer (cut, so that an overrun does not cost the second round); not at its own pace, nor without one."""
    import time
    from pathlib import Path

    from signvision.logs import log_to
    from signvision.runs.planner import OVERHEAD, PACE_MARGIN, Job, plan_stage, step_of

    rates = {"lenet": 100.0, "a": 20.0, "b": 20.0}  # Lite1 ("b") and Lite0 ("a") five times LeNet's time
    monkeypatch.setattr(planner_module, "training_rate", lambda s, *a, **k: rates[s["model"]])
    unit = OVERHEAD * 15 * 1000 / 100.0  # LeNet's seconds per (k - 1) folds: 3 folds are 2 units, Lite0's 10
    first_round = {"lenet": {"model": "lenet"}, "lite1": {"model": "b", "image_size": 128}}
    first_round["lite0"] = {"model": "a", "image_size": 128}
    second_round = {**first_round, "lenet-pl": {"model": "lenet"}}  # 1000 + 500 images: 3 units

    def job(stages, own=False):
        made = Job("d", Path("w"), Path("o.csv"), time.monotonic() + 13.5 * unit, {}, folds=3, stages=stages)
        made.test_images = 500
        made.paces[step_of(made, "lite1")] = 1.0  # learnt on Lite1: Lite0 borrows it
        if own:
            made.paces[step_of(made, "lite0")] = 1.0
        return made

    assert PACE_MARGIN == pytest.approx(1.15)
    done = ["lenet", "lite1"]
    lines = []
    with log_to(lines.append):
        cut, _ = plan_stage(job(second_round), "lite0", 1000, 3, done=done)  # 10 units fit in 10.5; 11.5 do not
    assert cut["epochs"] == 13  # 15 x 10.5 / 11.5
    assert "kept for the second round; counted 15% longer at another network's pace): 13 epochs" in lines[-1]
    assert "epochs" not in plan_stage(job(second_round, own=True), "lite0", 1000, 3, done=done)[0]
    assert "epochs" not in plan_stage(job(first_round), "lite0", 1000, 3, done=done)[0]


def test_the_job_that_missed_its_second_round_now_leaves_it_the_time(monkeypatch):
    """`submit --time 20m --second-round --seed 0` of session 21, replayed at its Lite0 stage with that job's
    figures (probes, LeNet's and Lite1's paces, 8.0 min left) and the writing costs a later job learnt: it cut
    Lite0 to 4 epochs (the line below, word for word but for the margin's note), which ran at pace 1.05, and the
    second round was skipped with 1.8 of its 2.6 min. Now Lite0 does not fit and the second round does."""
    import time
    from pathlib import Path

    from signvision.logs import log_to
    from signvision.runs.planner import Job, plan_stage, stages_of, step_of

    rates = {"lenet": 960.0, "tf_efficientnet_lite1": 41.0, "tf_efficientnet_lite0": 54.0}
    monkeypatch.setattr(planner_module, "training_rate", lambda s, *a, **k: rates[s["model"]])

    def job(writing: dict) -> Job:
        made = Job("d", Path("w"), Path("o.csv"), time.monotonic() + 8.0 * 60, {}, folds=3, stages=stages_of(True))
        made.train_images, made.test_images = 1800, 600
        made.paces = {step_of(made, "lenet"): 1.23, step_of(made, "lite1"): 0.92}
        made.writing = {step_of(made, name): seconds for name, seconds in writing.items()}
        return made

    lines = []
    with log_to(lines.append), monkeypatch.context() as old:
        old.setattr(planner_module, "PACE_MARGIN", 1.0)  # as it was: no margin, one writing cost (about 6 s)
        assert plan_stage(job({"lenet": 6.0, "lite1": 6.0}), "lite0", 1800, 9, ["lenet", "lite1"])[0]["epochs"] == 4
    assert "6 epochs need about 8.0 min, 5.5 left (2.5 more kept for the second round" in lines[-1]
    now = job({"lenet": 1.9, "lite1": 11.1})
    assert plan_stage(now, "lite0", 1800, 9, ["lenet", "lite1"]) is None
    assert plan_stage(now, "lenet-pl", 1800, 9, ["lenet", "lite1"]) is not None


def test_writing_a_submission_costs_what_each_member_s_network_was_seen_to_cost():
    """Each network's cost is what a submission took beyond the other members' learnt costs; a network not yet
    seen costs as one at its size (Lite0 as Lite1), else as the dearest; after the second round its LeNet replaces
    the first (one LeNet member, not two)."""
    from pathlib import Path

    from signvision.runs.planner import Job, learn_writing, stages_of, writing_seconds

    stages = stages_of(True)
    job = Job("d", Path("w"), Path("o.csv"), 1e9, {}, folds=3, stages=stages)
    assert writing_seconds(job, ["lenet", "lite1"]) == 0.0  # nothing learnt yet
    learn_writing(job, ["lenet"], 2.0)
    learn_writing(job, ["lenet", "lite1"], 12.0)  # Lite1 costs 10
    assert writing_seconds(job, ["lenet", "lite1", "lite0"]) == pytest.approx(22.0)  # Lite0 as Lite1
    learn_writing(job, ["lenet", "lite1", "lite0"], 20.0)  # Lite0 costs 8
    assert writing_seconds(job, ["lenet", "lite1", "lite0", "lenet-pl"]) == pytest.approx(20.0)  # 10 + 8 + 2
    learn_writing(job, ["lenet", "lite1", "lite0", "lenet-pl"], 21.0)  # LeNet's cost relearnt: 3
    without_second_round = Job("d", Path("w"), Path("o.csv"), 1e9, {}, folds=3, stages=stages_of(), writing=job.writing)
    assert writing_seconds(without_second_round, ["lenet", "lenet30"]) == pytest.approx(6.0)  # two LeNet members


def test_the_folds_are_those_with_which_the_most_valuable_stages_fit(monkeypatch):
    """An earlier stage outweighs any number of later ones: 3 folds of LeNet, Lite1 and one more LeNet stage
    beat 5 folds of three LeNet stages without Lite1 (counted alike, the 5 folds were chosen)."""
    import time

    from signvision.runs.planner import OVERHEAD, Job, choose_folds

    stages = {"lenet": {"model": "lenet"}, "lite1": {"model": "b"}, "again": {"model": "lenet", "lr": 1e-3}}
    stages["longer"] = {"model": "lenet", "epochs": 15, "lr": 3e-3}
    monkeypatch.setattr(planner_module, "STAGES", stages)
    rates = {"lenet": 100.0, "b": 10.0}  # Lite1 ten times LeNet's time
    monkeypatch.setattr(planner_module, "training_rate", lambda s, *a, **k: rates[s["model"]])
    unit = OVERHEAD * 15 * 1000 / 100.0  # LeNet's seconds per (k - 1) folds
    # 3 folds: LeNet 2 units, Lite1 20, again 2 (24; longer does not fit); 5 folds: 4, Lite1 40 (skipped), 4, 4
    job = Job("d", None, None, time.monotonic() + 25 * unit, {})
    assert choose_folds(job, 1000, 3) == 3
    assert choose_folds(Job("d", None, None, time.monotonic() + 13 * unit, {}), 1000, 3) == 5  # Lite1 never fits

"""A job folder's spec: the same command continues it, another one is refused with what differs named."""

from __future__ import annotations

import json

import pytest

from signvision.errors import RunError
from signvision.runs.jobs import differing, job_folder


def test_the_refusal_names_the_settings_that_differ(tmp_path):
    spec = {"data": "/d", "folds": 5, "settings": {"lr": 0.002, "seed": 0}, "stages": {"lenet": {"amp": True}}}
    with job_folder(tmp_path / "job", spec, "job.json", "a test job") as new:
        assert new
    with job_folder(tmp_path / "job", json.loads(json.dumps(spec)), "job.json", "a test job") as new:
        assert not new  # the same spec: continued
    other = {**spec, "settings": {"lr": 0.01, "seed": 0}, "stages": {"lenet": {"amp": True}, "lite0": {}}}
    assert differing(spec, other) == ["settings.lr", "stages.lite0"]
    assert differing(spec, {**spec, "folds": [5, 3]}) == ["folds"] and differing(spec, spec) == []
    with pytest.raises(RunError, match=r"other settings \(settings\.lr, stages\.lite0\); use a new folder"):
        with job_folder(tmp_path / "job", other, "job.json", "a test job"):
            pass
    assert json.loads((tmp_path / "job" / "job.json").read_text()) == spec  # the job's own spec kept

"""Run reports, run comparison, and an ablation interrupted and then resumed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import assert_picture, tiny_config

from signvision.cli.commands import main
from signvision.errors import SignvisionError
from signvision.inference.report import report_run as write_report
from signvision.reports.compare import compare_runs
from signvision.runs.ablate import paired_interval, parse_grid, run_ablation
from signvision.runs.run import fit


@pytest.mark.slow
def test_report_pictures_and_page(tiny_zindi, tmp_path):
    fit(tiny_config(tiny_zindi, tmp_path / "run", epochs=2))
    page = write_report(tmp_path / "run", device="cpu").read_text()
    for png in ("curves.png", "roc.png", "confusion.png", "reliability.png"):
        assert_picture(tmp_path / "run" / png)
        assert png.split(".")[0] in page
    assert page.count("data:image/png;base64,") >= 3 and "Ñandú" in page and "&quot;image_size&quot;: 16" in page


@pytest.mark.slow
def test_compare_shows_only_differing_settings(tiny_zindi, tmp_path, capsys):
    fit(tiny_config(tiny_zindi, tmp_path / "a"))
    fit(tiny_config(tiny_zindi, tmp_path / "b", augment="light"))
    table = compare_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "cmp")
    assert "augment" in table.columns and "lr" not in table.columns and "model" not in table.columns
    assert_picture(tmp_path / "cmp" / "compare.png")
    saved = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert saved["augment"].tolist() == ["none", "light"] and saved["val_roc_auc"].notna().all()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "val_roc_auc" in capsys.readouterr().out
    with pytest.raises(SignvisionError, match="not a finished signvision run"):
        compare_runs([tmp_path / "nope"])


def test_paired_interval_and_grid_parsing():
    mean, low, high = paired_interval([0.01, 0.012, 0.011])
    assert low > 0 and mean == pytest.approx(0.011)
    mean, low, high = paired_interval([0.02, -0.02, 0.01])
    assert low < 0 < high
    assert parse_grid(["augment=none,light", "epochs=1,2"]) == {"augment": ["none", "light"], "epochs": [1, 2]}
    with pytest.raises(SignvisionError, match="not a training setting"):
        parse_grid(["colour=red"])


@pytest.mark.slow
def test_ablation_interrupted_then_resumed(tiny_zindi, tmp_path, monkeypatch):
    import signvision.runs.run as train_module

    base = tiny_config(tiny_zindi, None, epochs=1)
    grid = {"augment": ["none", "light"]}
    real_fit = train_module.fit
    calls = []

    def flaky_fit(cfg, resume=False, **kw):
        calls.append((cfg.out, resume))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_fit(cfg, resume=resume, **kw)

    monkeypatch.setattr(train_module, "fit", flaky_fit)
    with pytest.raises(KeyboardInterrupt):
        run_ablation(base, grid, ["none", "hflip"], 2, tmp_path / "abl")
    assert len(calls) == 3
    calls.clear()
    monkeypatch.setattr(
        train_module,
        "fit",
        lambda cfg, resume=False, **kw: calls.append(cfg.out) or real_fit(cfg, resume=resume, **kw),
    )
    table = run_ablation(base, grid, ["none", "hflip"], 2, tmp_path / "abl")
    assert len(calls) == 2  # the two runs not finished before the interruption, nothing redone
    results = pd.read_csv(tmp_path / "abl" / "results.csv")
    assert len(results) == 2 * 2 * 2 and len(table) == 4
    assert {"diff", "diff_low", "diff_high", "beyond_noise", "better"} <= set(table.columns)
    assert set(table["metric"]) == {"log_loss"}  # the runs' `select` figure is the one compared
    assert_picture(tmp_path / "abl" / "ablation.png")
    assert "baseline" in (tmp_path / "abl" / "ablation.md").read_text()
    # every setting of one seed used the same split
    runs = list((tmp_path / "abl" / "runs").glob("*-seed0"))
    assert len({(r / "split.csv").read_text() for r in runs}) == 1
    with pytest.raises(SignvisionError, match="other settings"):
        run_ablation(base, {"augment": ["none", "heavy"]}, ["none"], 2, tmp_path / "abl")


def test_ablate_cli_help_mentions_example(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ablate", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--grid" in out and "example:" in out and "signvision ablate --data" in out


@pytest.mark.slow
def test_two_thousand_classes_a_run_and_a_readable_report(tmp_path):
    """A sign vocabulary of 2,000 glosses: the run finishes with its report (benchmarks/many_classes.py times
    it); the report lists the top confusions instead of a 2,000 x 2,000 matrix."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    (tmp_path / "k" / "Images").mkdir(parents=True)
    rows = []
    for c in range(2000):
        for j in range(2):
            cv2.imwrite(str(tmp_path / "k" / "Images" / f"i{c}_{j}.png"), rng.integers(0, 255, (16, 16, 3), np.uint8))
            rows.append((f"i{c}_{j}", f"gloss{c:04d}"))
    pd.DataFrame(rows, columns=["img_IDS", "Label"]).to_csv(tmp_path / "k" / "Train.csv", index=False)
    cfg = tiny_config(tmp_path / "k", tmp_path / "run", epochs=1, val_fraction=0.5)
    fit(cfg, report=True)
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Top confusions" in page and "2000 classes" in page
    assert not (tmp_path / "run" / "confusion.png").exists()


def test_the_gallery_of_mistakes_shows_one_image_per_group_with_its_heatmap(tmp_path):
    """Twelve frames of one clip wrong in the same way say one thing twelve times: one per group is shown,
    each beside the heatmap of the class it was mistaken for."""
    from signvision.reports.run_report import ScoredSet, mistakes_gallery, worst_mistakes

    y = np.zeros(14, dtype=int)
    probs = np.tile([0.1, 0.9], (14, 1))  # every image wrong
    probs[12:] = [[0.4, 0.6], [0.45, 0.55]]  # two stills, less sure
    groups = ["clip"] * 12 + ["a", "b"]
    asked = []

    def explain(indices, classes):
        asked.append((list(indices), list(classes)))
        return np.full((len(indices), 16, 16), 0.5, np.float32)

    scored = ScoredSet(
        y=y,
        probs=probs,
        raw=None,
        names=["no", "yes"],
        picture=lambda i: np.full((16, 16, 3), 100, np.uint8),
        caption=lambda i: f"img{i}",
        groups=groups,
        explain=explain,
    )
    pred, confidence = probs.argmax(1), probs.max(1)
    assert worst_mistakes(scored, pred, confidence, 12).tolist() == [0, 12, 13]
    assert mistakes_gallery(tmp_path, scored, pred, confidence, 12) == tmp_path / "wrong.png"
    assert asked == [([0, 12, 13], [1, 1, 1])]  # the heatmaps are of the predicted class
    without = ScoredSet(**{**scored.__dict__, "groups": None})
    assert len(worst_mistakes(without, pred, confidence, 12)) == 12


def test_drawing_leaves_the_user_s_matplotlib_settings_alone(tmp_path):
    """signvision draws labels literally (a class named `$x_$` is text) without turning mathtext off for the
    user's own plots afterwards."""
    import matplotlib.pyplot as plt

    from signvision.reports.plots import plot_confusion

    before = plt.rcParams["text.parse_math"]
    plot_confusion(np.array([0, 1]), np.array([0, 1]), ["$x_$", "b"], tmp_path / "c.png")
    assert_picture(tmp_path / "c.png")
    assert plt.rcParams["text.parse_math"] == before

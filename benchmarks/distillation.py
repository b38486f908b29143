"""Does one network distilled from an ensemble (`signvision distill`) keep what the ensemble knows on a new
capture session, and how much faster does it predict?

    python benchmarks/sessions.py --out data/sessions
    signvision train --data data/sessions --folds 5 --out runs/kd/teacher       # or any ensemble
    python benchmarks/distillation.py --data data/sessions --teacher runs/kd/teacher --out runs/kd --seeds 0,1,2

For each seed: a LeNet distilled from TEACHER (`signvision distill TEACHER --seed S`) and the same LeNet trained
on the labels of the teacher's data (`signvision train --seed S`: the README's default recipe; the same split
for both), each scored on DATA/test (a
capture none of them saw; its labels are read only to score). Prints each run's new-session log loss and
accuracy, the paired difference student - labels per seed and pooled over seeds (95% interval from a bootstrap
over the test images' groups of near copies), the teacher's own figures, and predict's images/s of the teacher
and of one student (in a fresh process: images decoded, then the same images again from the decoded cache).
Runs already in OUT are reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from pseudo_labels import finished, paired, test_probs  # noqa: E402
from submissions import signvision  # noqa: E402

TIMING = """
import sys, time
import signvision as sv
from signvision.data.tables import read_labelled
paths = read_labelled(sys.argv[2]).train["path"].tolist()
run = sv.load_run(sys.argv[1])
for _ in range(2):  # the first call decodes the images; the second takes them from the decoded cache
    started = time.perf_counter()
    run.predict(paths, device="cpu")
    print(len(paths) / (time.perf_counter() - started))
"""


def predict_rate(run: Path, test: Path) -> tuple[float, float]:
    """predict's images/s of `run` on the test images, in a fresh process: (decoding included, decoded)."""
    done = subprocess.run([sys.executable, "-c", TIMING, str(run), str(test)], capture_output=True, text=True)
    cold, warm = (float(x) for x in done.stdout.split())
    return cold, warm


def figures(y, probs) -> str:
    loss = -np.log(np.clip(probs[np.arange(len(y)), y], 1e-15, 1)).mean()
    return f"log loss {loss:.4f}, accuracy {(probs.argmax(1) == y).mean():.4f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="the session benchmark (benchmarks/sessions.py)")
    p.add_argument("--teacher", required=True, help="a --folds run or ensemble trained on DATA/train")
    p.add_argument("--out", required=True, help="a folder for the students and the runs on labels")
    p.add_argument("--seeds", default="0,1,2")
    args = p.parse_args(argv)
    from signvision.data.tables import read_labelled
    from signvision.grouping.groups import group_keys
    from signvision.grouping.nearcopies import fingerprint_images, group_near_copies

    data, out, teacher = Path(args.data), Path(args.out), Path(args.teacher)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    test = read_labelled(data / "test").train
    groups = group_keys(group_near_copies(fingerprint_images(test["path"].tolist())), test["img_IDS"])
    classes = json.loads((teacher / "summary.json").read_text())["classes"]
    y = test["Label"].map({c: k for k, c in enumerate(classes)}).to_numpy()
    taught = json.loads((teacher / "config.json").read_text())["data"]  # what the teacher and its students learn
    print(f"teacher {teacher.name}: {figures(y, test_probs(teacher, test))}", flush=True)
    pooled = {"y": [], "labels": [], "student": [], "groups": []}
    for seed in [int(s) for s in args.seeds.split(",")]:
        student, labels = out / f"student-s{seed}", out / f"labels-s{seed}"
        if not finished(student):
            signvision("distill", str(teacher), "--seed", str(seed), "--out", str(student), log=log)
        if not finished(labels):
            signvision("train", "--data", taught, "--seed", str(seed), "--out", str(labels), log=log)
        a, b = test_probs(labels, test), test_probs(student, test)
        print(
            f"seed {seed}: on labels {figures(y, a)}; distilled {figures(y, b)}\n"
            f"  distilled - on labels: {paired(y, a, b, groups)}",
            flush=True,
        )
        for key, value in (("y", y), ("labels", a), ("student", b), ("groups", groups)):
            pooled[key].append(np.asarray(value))
    if len(pooled["y"]) > 1:
        y_all, a, b, g = (np.concatenate(pooled[k]) for k in ("y", "labels", "student", "groups"))
        print(f"pooled over seeds: distilled - on labels: {paired(y_all, a, b, g)}")
    for name, run in (("teacher", teacher), ("one student", out / f"student-s{args.seeds.split(',')[0]}")):
        cold, warm = predict_rate(run, data / "test")
        print(f"predict, {name}: {cold:.0f} images/s decoding included, {warm:.0f} images/s decoded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Two runs (or ensembles) on the session benchmark's new session, paired: each one's figures and the difference
B - A in log loss and accuracy, with its 95% interval from a bootstrap over the test images' groups of near
copies (the same groups drawn for both, so that the images' own difficulty cancels out).

    python benchmarks/paired_test.py runs/freeze-probe/plain runs/freeze-probe/frozen --data data/sessions
    python benchmarks/paired_test.py A B C D --data data/sessions     # B - A, C - A, D - A: each run predicted once

A log loss interval wholly below zero: B is better on a new capture beyond noise; wholly above: worse.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("SIGNVISION_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from distillation import figures  # noqa: E402
from pseudo_labels import paired, test_probs  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("a", help="run A (the reference)")
    p.add_argument("b", nargs="+", help="run B (more: each compared with A)")
    p.add_argument("--data", required=True, help="the session benchmark (benchmarks/sessions.py): its test/")
    args = p.parse_args(argv)
    import signvision as sv
    from signvision.data.tables import read_labelled
    from signvision.grouping.groups import group_keys
    from signvision.grouping.nearcopies import fingerprint_images, group_near_copies

    test = read_labelled(Path(args.data) / "test").train
    classes = sv.load_run(args.a).classes
    y = test["Label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    groups = group_keys(group_near_copies(fingerprint_images(test["path"].tolist())), test["img_IDS"])
    probs = {}
    for name, run in [("A", args.a)] + [(f"B{i}" if len(args.b) > 1 else "B", b) for i, b in enumerate(args.b, 1)]:
        probs[name] = test_probs(Path(run), test)
        print(f"{name} {run}: {figures(y, probs[name])}")
    for name in probs:
        if name != "A":
            print(f"{name} - A: {paired(y, probs['A'], probs[name], groups)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Does `signvision submit` choose its folds well? The same command with the job's folds fixed (5, 3 or 2)
instead of chosen by the planner, to score both on the session benchmark's new capture.

    python benchmarks/sessions.py --out data/sessions
    python benchmarks/submit_folds.py --folds 5 submit --data data/sessions --time 20m --second-round --seed 3 \
        --out runs/sub20f5/s3/submission.csv
    python benchmarks/paired_test.py runs/sub20pl2/s3/submission-job/ensemble-4 \
        runs/sub20f5/s3/submission-job/ensemble-3 --data data/sessions

Everything after `--folds K` is a `signvision` command line, run as the console script runs it, with
`runs/planner.py`'s FOLDS set to (K,): the planner then plans every stage at K folds (cutting or skipping those
that do not fit, as it does with the folds it chooses). An experiment, not a user option.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "--folds" or argv[1] not in ("2", "3", "5"):
        print("usage: submit_folds.py --folds {2,3,5} submit --data DIR --time T ... (a signvision command line)",
              file=sys.stderr)  # fmt: skip
        return 2  # a usage error, as the console script's
    import signvision.runs.planner as planner
    from signvision.cli.commands import main as signvision

    planner.FOLDS = (int(argv[1]),)  # read by choose_folds and by the job's spec when the job starts
    return signvision(argv[2:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

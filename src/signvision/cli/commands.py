"""The `signvision` command: one sub-command per job, each a thin layer over the Python API (`sv.train`,
`sv.load_run(...).evaluate` / `.predict`, `sv.split`, `sv.audit`, ...).

This module imports nothing heavy (no torch, timm, pandas or matplotlib): `signvision --help`, every
sub-command's `--help` and every argument error answer at once; a sub-command imports what it uses
when it runs. Errors in what the user gave (a file, a row, an option) print one line and exit with
code 2; `--debug` (before or after the sub-command) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from signvision.cli.parser import build_parser
from signvision.config import AuditConfig, TrainConfig
from signvision.errors import OptionError, SignvisionError


def train_settings(args: argparse.Namespace) -> dict:
    """The training settings the user gave (options not given stay out, so the config's defaults hold)."""
    names = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def check_new_run(given: dict) -> None:
    """What a new run needs on the command line: a folder, data, and `--folds` of 2 or more if given."""
    if "folds" in given and given["folds"] < 2:
        raise OptionError(
            "must be 2 or more (leave it out for one validation split)", option="folds", value=given["folds"]
        )
    if "out" not in given:
        raise OptionError("give a new folder for the run (or `resume` RUN)", option="out")
    if "data" not in given and "csv" not in given:
        raise OptionError("give a data folder (or `csv` FILE `image_dir` DIR)", option="data")


# ----------------------------------------------------------------------------------------------------
# The sub-commands: each a thin call to the Python API, importing what it needs when it runs
# ----------------------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    import signvision as sv

    given = train_settings(args)
    if args.resume:
        run = sv.train(resume=args.resume, **given)
    else:
        check_new_run(given)
        run = sv.train(**given)
    return said_trained(run)


def cmd_distill(args) -> int:
    import signvision as sv

    given = train_settings(args)
    if args.resume:
        return said_trained(sv.train(resume=args.resume, **given))
    if "out" not in given:
        raise OptionError("give a new folder for the distilled run", option="out")
    return said_trained(sv.distill(args.from_run, **given))


def said_trained(run) -> int:
    """A finished training's last lines: its validation figures, the run and its report."""
    s = run.summary
    if not s:  # the other processes of a torchrun: the first one reports
        return 0
    nan = float("nan")
    auc, loss, acc = (s.get(k, nan) for k in ("val_roc_auc", "val_log_loss", "val_accuracy"))
    what = "pooled out-of-fold" if s.get("cross_validated") else f"best epoch {s.get('best_epoch')}:"
    print(
        f"{what} val ROC AUC {auc:.4f}, log loss {loss:.4f}, accuracy {acc:.4f}"
        f" ({s['train_seconds']:.0f} s of training). Run: {run.folder}"
    )
    print(f"report: {run.folder / 'report.html'}")
    return 0


def tta_of(args, run):
    """The TTA that --tta, --tta-merge and --tta-views describe, made for the run's image size."""
    from signvision.inference.members import input_size
    from signvision.inference.tta_choice import chosen_tta
    from signvision.models.augment import TTA

    spec = chosen_tta(run.folder) if args.tta == "auto" else args.tta
    size = input_size(run.members)
    return TTA(spec, merge=args.tta_merge, views=args.tta_views, image_size=size, seed=run.cfg.seed)


def cmd_evaluate(args) -> int:
    import signvision as sv

    run = sv.load_run(args.run)
    if args.tta == "choose":
        if args.data:
            raise OptionError("the TTA is chosen on the run's validation images, not on --data", option="tta")
        run.choose_tta(device=args.device, batch_size=args.batch_size)
        return 0
    run.evaluate(
        args.data,
        tta=tta_of(args, run),
        device=args.device,
        batch_size=args.batch_size,
        skip_bad_images=args.skip_bad_images,
    )
    return 0


def cmd_predict(args) -> int:
    import signvision as sv
    from signvision.files import refuse_overwrite

    refuse_overwrite(Path(args.out), args.overwrite)
    run = sv.load_run(args.run)
    tta = tta_of(args, run)  # a bad --tta fails before any image is read
    predictions = run.predict(args.data, tta=tta, device=args.device, batch_size=args.batch_size, workers=args.workers)
    predictions.to_csv(args.out, overwrite=args.overwrite)
    folds = f", mean of {len(run.members)} fold models" if len(run.members) > 1 else ""
    print(f"wrote {args.out}: {len(predictions)} images x {len(predictions.classes)} probability column(s){folds}")
    return 0


def cmd_audit(args) -> int:
    from signvision.auditing.audit import run_audit

    names = {f.name for f in fields(AuditConfig)}
    cfg = AuditConfig(**{k: v for k, v in vars(args).items() if k in names})
    run_audit(cfg)
    return 0


def cmd_split(args) -> int:
    import signvision as sv
    from signvision.grouping.splits import check_split_out

    out = check_split_out(args.out, args.overwrite)  # before the work
    data = args.data
    if args.csv:
        data = sv.read_data(
            args.data, csv=args.csv, image_col=args.image_col, label_col=args.label_col, image_dir=args.image_dir
        )
    split = sv.split(data, audit=args.audit, split_by=args.split_by, val_fraction=args.val_fraction, seed=args.seed)
    split.to_csv(out, overwrite=args.overwrite)
    counts = split.table["fold"].value_counts()
    print(split.info.describe())
    print(
        f"wrote {out} ({counts.get('train', 0)} train, {counts.get('val', 0)} val images) "
        f"and {out.with_suffix('.json')}"
    )
    return 0


def cmd_report(args) -> int:
    from signvision.inference.report import report_run
    from signvision.training.finished import check_run_folder

    print(f"wrote {report_run(check_run_folder(args.run), data=args.data, device=args.device)}")
    return 0


def cmd_compare(args) -> int:
    import pandas as pd

    from signvision.reports.compare import compare_runs

    table = compare_runs(args.runs, args.out, overwrite=args.overwrite)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.out:
        print(f"wrote {Path(args.out) / 'compare.csv'} and compare.png")
    return 0


def cmd_ablate(args) -> int:
    from signvision.runs.ablate import parse_grid, run_ablation

    if args.resume:
        raise OptionError("an ablation resumes by running the same command again", option="resume")
    given = train_settings(args)
    check_new_run(given)
    base = TrainConfig(**given).check()
    tta = [t.strip() for t in args.tta.split(",") if t.strip()]
    run_ablation(base, parse_grid(args.grid), tta, args.seeds, base.out, test_data=args.test_data)
    return 0


def cmd_lr_find(args) -> int:
    import signvision as sv

    given = train_settings(args)
    if "data" not in given and "csv" not in given:
        raise OptionError("give a data folder (or `csv` FILE `image_dir` DIR)", option="data")
    out = given.pop("out", None)
    if out is None:
        raise OptionError("give a folder for lr_find.png and lr_find.csv", option="out")
    sv.lr_find(out=out, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps, overwrite=args.overwrite, **given)
    return 0


def cmd_explain(args) -> int:
    import signvision as sv
    from signvision.files import refuse_overwrite
    from signvision.inference.explain import explain_arrays, write_explain_page
    from signvision.inference.predict import image_table, read_images

    out = Path(args.out)
    refuse_overwrite(out / "explain.html", args.overwrite)
    run = sv.load_run(args.run)
    table, arrays = image_table(args.data)
    table = table.head(args.limit)
    arrays = arrays[: args.limit] if arrays is not None else read_images(table)
    maps, probs, target = explain_arrays(run.members, arrays, args.target, device=args.device)
    names = run.members[0].task.names
    page = write_explain_page(out, table["img_IDS"].tolist(), arrays, maps, probs, target, names)
    print(f"wrote {page}: {len(maps)} images with their class-activation heatmaps")
    return 0


def cmd_submit(args) -> int:
    import signvision as sv

    settings = {"seed": args.seed, "device": args.device} | ({"audit": args.audit} if args.audit else {})
    sv.submit(
        args.data,
        time=args.time,
        out=args.out,
        work=args.work,
        overwrite=args.overwrite,
        distill=args.distill,
        second_round=args.second_round,
        **settings,
    )
    return 0


def cmd_ensemble(args) -> int:
    import signvision as sv

    run = sv.ensemble(args.runs, out=args.out, select=args.select)
    print(f"Run: {run.folder} (predict, evaluate, report, compare, serve and export take it)")
    return 0


def cmd_pseudo_label(args) -> int:
    import signvision as sv
    from signvision.files import refuse_overwrite
    from signvision.inference.pseudo import pseudo_labels, write_pseudo_labels

    refuse_overwrite(Path(args.out), args.overwrite)  # before any image is read
    run = sv.load_run(args.run)
    table = pseudo_labels(run, args.data, threshold=args.threshold, tta=args.tta, device=args.device)
    path = write_pseudo_labels(table, args.out, overwrite=args.overwrite)
    per_class = ", ".join(f"{k} {v}" for k, v in table["Label"].value_counts().sort_index().items())
    print(
        f"wrote {path}: {len(table)} of {table.attrs['images']} images predicted with probability >= "
        f"{args.threshold} ({per_class or 'none'}); train with --pseudo-labels {path}"
    )
    return 0


def cmd_export(args) -> int:
    from signvision.training.finished import check_run_folder

    check_run_folder(args.run)  # before PyTorch and ONNX load
    from signvision.inference.export import export_onnx

    path = export_onnx(args.run, args.out, opset=args.opset, overwrite=args.overwrite)
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def cmd_demo(args) -> int:
    from signvision.cli.demo import run_demo

    run_demo(workdir=args.workdir, source=args.source, epochs=args.epochs, device=args.device)
    return 0


def cmd_models(args) -> int:
    import signvision as sv

    names = sv.list_models(args.pattern or "")
    print("\n".join(names) if names else f"no model name matches {args.pattern!r}")
    return 0


def cmd_show_augment(args) -> int:
    from signvision.reports.augment_grid import augment_grid

    path = augment_grid(
        args.data,
        args.augment,
        args.out,
        image_size=args.image_size,
        rows=args.rows,
        cols=args.cols,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(f"wrote {path}")
    return 0


def cmd_serve(args) -> int:
    from signvision.training.finished import check_run_folder

    check_run_folder(args.run)  # a wrong --run is one line at once, before PyTorch and the web packages load
    from signvision.inference.serve import serve

    serve(
        args.run,
        host=args.host,
        port=args.port,
        tta=args.tta,
        device=args.device,
        max_images=args.max_images,
        max_upload_mb=args.max_upload_mb,
        allowed_hosts=args.allowed_hosts,
    )
    return 0


# ----------------------------------------------------------------------------------------------------
# The parser
# ----------------------------------------------------------------------------------------------------
HANDLERS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "audit": cmd_audit,
    "split": cmd_split,
    "report": cmd_report,
    "compare": cmd_compare,
    "ablate": cmd_ablate,
    "ensemble": cmd_ensemble,
    "distill": cmd_distill,
    "submit": cmd_submit,
    "explain": cmd_explain,
    "pseudo-label": cmd_pseudo_label,
    "lr-find": cmd_lr_find,
    "export": cmd_export,
    "serve": cmd_serve,
    "demo": cmd_demo,
    "models": cmd_models,
    "show-augment": cmd_show_augment,
}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a user's mistake prints one line and returns 2."""
    words = sys.argv[1:] if argv is None else argv
    named = [w for w in words if not w.startswith("-")][:1]  # the command: the top level's options take no value
    args = build_parser(HANDLERS, commands=named).parse_args(argv)
    from signvision.logs import setup_default_logging

    setup_default_logging()  # the library's progress lines as plain lines on stdout
    try:
        return args.func(args) or 0
    except SignvisionError as e:
        if args.debug:
            raise
        text = e.wording(flags=True)
        message = " ".join(text.split("\n")[0].split()) if text.strip() else type(e).__name__
        print(f"signvision {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"signvision {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

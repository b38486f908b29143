"""The `signvision` command: one sub-command per job, each a thin layer over a library function.

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
from signvision.errors import MissingError, OptionError, SignvisionError

RESUMABLE = {"epochs", "device", "workers", "data", "csv", "image_dir", "cache", "cache_dir", "skip_bad_images"}


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, bool]:
    """The TrainConfig the options describe, and whether it resumes a run (which may change only a few)."""
    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if getattr(args, "resume", None):
        run = Path(args.resume)
        if not run.is_dir():
            raise MissingError("folder not found", option="resume", value=run)
        cfg = TrainConfig.load(run / "config.json")
        extra = sorted(set(given) - RESUMABLE)
        if extra:
            raise OptionError(
                f"cannot change `{extra[0]}` of an existing run (only "
                f"{', '.join(f'`{a}`' for a in sorted(RESUMABLE))})",
                option="resume",
                value=run,
            )
        for k, v in given.items():
            setattr(cfg, k, v)
        if "data" in given or "csv" in given or "image_dir" in given:
            cfg.absolute_paths()
        cfg.out = str(run)
        return cfg.check(), True
    if "folds" in given and given["folds"] < 2:
        raise OptionError(
            "must be 2 or more (leave it out for one validation split)", option="folds", value=given["folds"]
        )
    if "out" not in given:
        raise OptionError("give a new folder for the run (or `resume` RUN)", option="out")
    if "data" not in given and "csv" not in given:
        raise OptionError("give a data folder (or `csv` FILE `image_dir` DIR)", option="data")
    return TrainConfig(**given).check(), False


# ----------------------------------------------------------------------------------------------------
# The sub-commands: each imports what it needs when it runs
# ----------------------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from signvision.inference.members import check_run_folder
    from signvision.models.factory import check_model_name
    from signvision.training.setup import fit

    cfg, resume = config_from_args(args)
    check_model_name(cfg.model)
    if cfg.folds > 1:
        from signvision.runs.crossval import fit_folds

        summary = fit_folds(cfg)
    else:
        summary = fit(cfg, resume=resume)
    if summary:
        nan = float("nan")
        auc, loss, acc = (summary.get(k, nan) for k in ("val_roc_auc", "val_log_loss", "val_accuracy"))
        what = "pooled out-of-fold" if summary.get("cross_validated") else f"best epoch {summary.get('best_epoch')}:"
        print(
            f"{what} val ROC AUC {auc:.4f}, log loss {loss:.4f}, accuracy {acc:.4f}"
            f" ({summary['train_seconds']:.0f} s of training). Run: {cfg.out}"
        )
        from signvision.reports.run_report import write_report

        check_run_folder(cfg.out)
        print(f"report: {write_report(Path(cfg.out), device=cfg.device)}")
    return 0


def cmd_evaluate(args) -> int:
    from signvision.inference.evaluate import evaluate_labelled
    from signvision.inference.members import evaluate_run, holds_run_images, load_members

    options = dict(tta=args.tta, tta_merge=args.tta_merge, tta_views=args.tta_views, device=args.device)
    if args.data and not holds_run_images(load_members(args.run)[0], args.data):  # a labelled test set
        evaluate_labelled(args.run, args.data, batch_size=args.batch_size, **options)
    else:  # the run's validation images (from where they are now, with --data)
        evaluate_run(args.run, args.data, batch_size=args.batch_size, skip_bad_images=args.skip_bad_images, **options)
    return 0


def cmd_predict(args) -> int:
    from signvision.inference.members import predict

    predict(
        args.run,
        args.data,
        args.out,
        tta=args.tta,
        tta_merge=args.tta_merge,
        tta_views=args.tta_views,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    return 0


def cmd_audit(args) -> int:
    from signvision.auditing.audit import run_audit

    cfg = AuditConfig(
        data=args.data,
        csv=args.csv,
        image_col=args.image_col,
        label_col=args.label_col,
        image_dir=args.image_dir,
        out=args.out,
        drop_suspects=args.drop_suspects,
        skip_label_issues=args.skip_label_issues,
        folds=args.folds,
        epochs=args.epochs,
        near_threshold=args.near_threshold,
        seed=args.seed,
        device=args.device,
    )
    run_audit(cfg)
    return 0


def cmd_split(args) -> int:
    import json
    from dataclasses import asdict

    from signvision.files import atomic_write, refuse_overwrite
    from signvision.training.rundata import split_data

    out = Path(args.out)
    refuse_overwrite(out, args.overwrite)
    data = args.data
    if args.csv:
        from signvision.data.tables import read_data

        data = read_data(
            args.data, csv=args.csv, image_col=args.image_col, label_col=args.label_col, image_dir=args.image_dir
        )
    split, info = split_data(
        data, audit=args.audit, split_by=args.split_by, val_fraction=args.val_fraction, seed=args.seed
    )
    with atomic_write(out) as f:
        split.to_csv(f, index=False)
    with atomic_write(out.with_suffix(".json")) as f:
        f.write(json.dumps(asdict(info), indent=2, ensure_ascii=False) + "\n")
    counts = split["fold"].value_counts()
    print(info.describe())
    print(
        f"wrote {out} ({counts.get('train', 0)} train, {counts.get('val', 0)} val images) "
        f"and {out.with_suffix('.json')}"
    )
    return 0


def cmd_report(args) -> int:
    from signvision.inference.members import check_run_folder
    from signvision.reports.run_report import write_report

    print(f"wrote {write_report(check_run_folder(args.run), data=args.data, device=args.device)}")
    return 0


def cmd_compare(args) -> int:
    import pandas as pd

    from signvision.reports.run_report import compare_runs

    table = compare_runs(args.runs, args.out)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.out:
        print(f"wrote {Path(args.out) / 'compare.csv'} and compare.png")
    return 0


def cmd_ablate(args) -> int:
    from signvision.runs.ablate import parse_grid, run_ablation

    if args.resume:
        raise OptionError("an ablation resumes by running the same command again", option="resume")
    base, _ = config_from_args(args)
    tta = [t.strip() for t in args.tta.split(",") if t.strip()]
    run_ablation(base, parse_grid(args.grid), tta, args.seeds, base.out, test_data=args.test_data)
    return 0


def cmd_export(args) -> int:
    from signvision.inference.export import export_onnx

    path = export_onnx(args.run, args.out, opset=args.opset, overwrite=args.overwrite)
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def cmd_demo(args) -> int:
    from signvision.cli.demo import run_demo

    run_demo(workdir=args.workdir, source=args.source, epochs=args.epochs, device=args.device)
    return 0


def cmd_models(args) -> int:
    from signvision.models.factory import available_models

    names = available_models(args.pattern or "")
    print("\n".join(names) if names else f"no model name matches {args.pattern!r}")
    return 0


def cmd_show_augment(args) -> int:
    from signvision.reports.run_report import augment_grid

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
    "export": cmd_export,
    "serve": cmd_serve,
    "demo": cmd_demo,
    "models": cmd_models,
    "show-augment": cmd_show_augment,
}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a user's mistake prints one line and returns 2."""
    args = build_parser(HANDLERS).parse_args(argv)
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

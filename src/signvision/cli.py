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

from signvision.config import AuditConfig, TrainConfig
from signvision.errors import SignvisionError, UserError

S = argparse.SUPPRESS  # an option not given stays out of the namespace (so --resume can tell what was given)


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (`signvision train: error: ...`), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """argparse type: a whole number > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def add_data_args(p: argparse.ArgumentParser, *, suppress_defaults: bool = False) -> None:
    """--data, or --csv with its columns and image folder."""
    image_col, label_col = (S, S) if suppress_defaults else ("img_IDS", "Label")
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        default=S if suppress_defaults else None,
        help="data folder: Zindi layout (Train.csv, Images/) or one sub-folder per class",
    )
    g.add_argument("--csv", default=S if suppress_defaults else None, help="or any CSV of image names and labels ...")
    g.add_argument("--image-col", default=image_col, help="... its image column (default img_IDS)")
    g.add_argument("--label-col", default=label_col, help="... its label column (default Label)")
    g.add_argument(
        "--image-dir",
        default=S if suppress_defaults else None,
        help="... and the folder its image names are relative to",
    )


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Every TrainConfig setting as an option; options not given stay out of the namespace."""
    d = TrainConfig()
    add_data_args(p, suppress_defaults=True)
    g = p.add_argument_group("task and split")
    g.add_argument("--target", default=S, help="binary task: this class vs the rest (one output)")
    g.add_argument("--val-fraction", type=float, default=S, help=f"validation share (default {d.val_fraction})")
    g.add_argument("--folds", type=int, default=S, help="K-fold cross-validation and a fold ensemble")
    g.add_argument("--split", default=S, help="reuse a split.csv (img_IDS,fold) instead of drawing one")
    g.add_argument(
        "--split-by",
        default=S,
        choices=["near-copies", "random"],
        help="near-copies (default): near copies and neighbouring frames stay on one side; random: the course's "
        "plain random split (the run warns how much it leaks)",
    )
    g.add_argument("--audit", default=S, help="an audit folder: train on its clean.csv, keep duplicate groups together")
    g.add_argument("--skip-bad-images", action="store_true", default=S, help="drop and list missing/corrupt images")
    g.add_argument("--seed", type=int, default=S, help=f"seed for split, init and shuffling (default {d.seed})")
    g = p.add_argument_group("model")
    g.add_argument("--model", default=S, help=f"lenet or any timm name, see `signvision models` (default {d.model})")
    g.add_argument("--lenet-width", type=positive_int, default=S, help=f"LeNet width (default {d.lenet_width})")
    g.add_argument("--pretrained", action="store_true", default=S, help="start from timm's hub weights (online)")
    g.add_argument("--weights", default=S, help="start from local weights: .safetensors/.pth or a run's best.pt")
    g.add_argument("--freeze-backbone-epochs", type=int, default=S, help="train only the new head for N epochs")
    g.add_argument("--backbone-lr-scale", type=float, default=S, help="backbone lr = lr x this (default 1)")
    g = p.add_argument_group("loss and calibration")
    g.add_argument("--loss", default=S, choices=["bce", "ce"], help="bce (default) or ce (softmax cross-entropy)")
    g.add_argument("--label-smoothing", type=float, default=S, help="pull targets towards uniform (default 0)")
    g.add_argument(
        "--select",
        default=S,
        choices=["log_loss", "roc_auc", "accuracy"],
        help=f"the epoch best.pt keeps: best validation figure of this kind (default {d.select})",
    )
    g.add_argument(
        "--calibrate",
        action=argparse.BooleanOptionalAction,
        default=S,
        help="fit a temperature on the validation logits after training (default on)",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=S, help=f"default {d.epochs}")
    g.add_argument("--image-size", type=int, default=S, help=f"images are resized to SxS (default {d.image_size})")
    g.add_argument("--batch-size", type=int, default=S, help=f"default {d.batch_size}")
    g.add_argument("--lr", type=float, default=S, help=f"peak AdamW learning rate (default {d.lr})")
    g.add_argument("--weight-decay", type=float, default=S, help=f"default {d.weight_decay}")
    g.add_argument("--schedule", default=S, help="cosine (warm-up + cosine) or onecycle (default cosine)")
    g.add_argument("--warmup-epochs", type=float, default=S, help=f"default {d.warmup_epochs}")
    g.add_argument("--grad-clip", type=float, default=S, help="clip the gradient norm (default off)")
    g = p.add_argument_group("augmentation")
    g.add_argument(
        "--augment", default=S, help="none|capture|light|medium|heavy or an albumentations .json (default none)"
    )
    g.add_argument("--mix", default=S, help="none|mixup|cutmix|both (default none)")
    g.add_argument("--mix-alpha", type=float, default=S, help=f"Beta(alpha, alpha) (default {d.mix_alpha})")
    g.add_argument("--mix-prob", type=float, default=S, help=f"share of batches mixed (default {d.mix_prob})")
    g.add_argument("--mix-off-epochs", type=int, default=S, help="plain batches for the last N epochs")
    g = p.add_argument_group("speed")
    g.add_argument("--device", default=S, help="auto|cpu|cuda|cuda:N (default auto: CUDA when present)")
    g.add_argument("--workers", type=int, default=S, help="DataLoader processes (default: chosen from the cores)")
    g.add_argument("--cache", default=S, help="decoded-image cache: memory|disk|none (default memory)")
    g.add_argument("--cache-dir", default=S, help="where --cache disk keeps its files")
    g.add_argument("--amp", action="store_true", default=S, help="mixed precision (bf16, or fp16 on older GPUs)")
    g.add_argument("--channels-last", action="store_true", default=S, help="NHWC memory layout")
    g.add_argument("--compile", action="store_true", default=S, help="torch.compile the model")
    g.add_argument("--ema", action="store_true", default=S, help="evaluate and keep an EMA of the weights")
    g.add_argument("--ema-decay", type=float, default=S, help=f"default {d.ema_decay}")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=S, help="the run folder to create (new or empty)")
    g.add_argument("--resume", metavar="RUN", help="continue RUN from its last.pt (optionally with more --epochs)")


RESUMABLE = {"epochs", "device", "workers", "data", "csv", "image_dir", "cache", "cache_dir"}


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, bool]:
    """The TrainConfig the options describe, and whether it resumes a run (which may change only a few)."""
    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if getattr(args, "resume", None):
        run = Path(args.resume)
        if not run.is_dir():
            raise UserError(f"--resume {run}: folder not found")
        cfg = TrainConfig.load(run / "config.json")
        extra = sorted(set(given) - RESUMABLE)
        if extra:
            raise UserError(
                f"--resume {run}: cannot change --{extra[0].replace('_', '-')} of an existing run "
                f"(only {', '.join('--' + a.replace('_', '-') for a in sorted(RESUMABLE))})"
            )
        for k, v in given.items():
            setattr(cfg, k, v)
        if "data" in given or "csv" in given or "image_dir" in given:
            cfg.absolute_paths()
        cfg.out = str(run)
        return cfg.check(), True
    if "folds" in given and given["folds"] < 2:
        raise UserError(f"--folds {given['folds']}: must be 2 or more (leave it out for one validation split)")
    if "out" not in given:
        raise UserError("--out: give a new folder for the run (or --resume RUN)")
    if "data" not in given and "csv" not in given:
        raise UserError("--data: give a data folder (or --csv FILE --image-dir DIR)")
    return TrainConfig(**given).check(), False


# ----------------------------------------------------------------------------------------------------
# The sub-commands: each imports what it needs when it runs
# ----------------------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from signvision.inference import check_run_folder
    from signvision.models import check_model_name
    from signvision.train import fit

    cfg, resume = config_from_args(args)
    check_model_name(cfg.model)
    summary = fit(cfg, resume=resume)
    if summary:
        nan = float("nan")
        auc, loss, acc = (summary.get(k, nan) for k in ("val_roc_auc", "val_log_loss", "val_accuracy"))
        what = "pooled out-of-fold" if summary.get("cross_validated") else f"best epoch {summary.get('best_epoch')}:"
        print(
            f"{what} val ROC AUC {auc:.4f}, log loss {loss:.4f}, accuracy {acc:.4f}"
            f" ({summary['train_seconds']:.0f} s of training). Run: {cfg.out}"
        )
        from signvision.report import write_report

        check_run_folder(cfg.out)
        print(f"report: {write_report(Path(cfg.out), device=cfg.device)}")
    return 0


def cmd_evaluate(args) -> int:
    from signvision.inference import evaluate_run

    evaluate_run(
        args.run,
        args.data,
        tta=args.tta,
        tta_merge=args.tta_merge,
        tta_views=args.tta_views,
        device=args.device,
        batch_size=args.batch_size,
    )
    return 0


def cmd_predict(args) -> int:
    from signvision.inference import predict

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
    from signvision.audit import run_audit

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

    from signvision.errors import atomic_write, refuse_overwrite
    from signvision.rundata import split_data

    out = Path(args.out)
    refuse_overwrite(out, args.overwrite)
    data = args.data
    if args.csv:
        from signvision.tables import read_data

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
    from signvision.inference import check_run_folder
    from signvision.report import write_report

    print(f"wrote {write_report(check_run_folder(args.run), data=args.data, device=args.device)}")
    return 0


def cmd_compare(args) -> int:
    import pandas as pd

    from signvision.report import compare_runs

    table = compare_runs(args.runs, args.out)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.out:
        print(f"wrote {Path(args.out) / 'compare.csv'} and compare.png")
    return 0


def cmd_ablate(args) -> int:
    from signvision.ablate import parse_grid, run_ablation

    if args.resume:
        raise UserError("--resume: an ablation resumes by running the same command again")
    base, _ = config_from_args(args)
    tta = [t.strip() for t in args.tta.split(",") if t.strip()]
    run_ablation(base, parse_grid(args.grid), tta, args.seeds, base.out, test_data=args.test_data)
    return 0


def cmd_export(args) -> int:
    from signvision.export import export_onnx

    path = export_onnx(args.run, args.out, opset=args.opset, overwrite=args.overwrite)
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def cmd_demo(args) -> int:
    from signvision.demo import run_demo

    run_demo(workdir=args.workdir, source=args.source, epochs=args.epochs, device=args.device)
    return 0


def cmd_models(args) -> int:
    from signvision.models import available_models

    names = available_models(args.pattern or "")
    print("\n".join(names) if names else f"no model name matches {args.pattern!r}")
    return 0


def cmd_show_augment(args) -> int:
    from signvision.report import augment_grid

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
    from signvision.serve import serve

    serve(
        args.run,
        host=args.host,
        port=args.port,
        tta=args.tta,
        device=args.device,
        max_images=args.max_images,
        max_upload_mb=args.max_upload_mb,
    )
    return 0


# ----------------------------------------------------------------------------------------------------
# The parser
# ----------------------------------------------------------------------------------------------------
def _tta_args(p) -> None:
    p.add_argument("--tta", default="none", help="none|hflip|hflip+crops or an albumentations .json (default none)")
    p.add_argument("--tta-merge", default="mean", choices=["mean", "gmean"], help="how views are merged")
    p.add_argument("--tta-views", type=positive_int, default=4, help="draws of a --tta FILE pipeline (default 4)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N")
    p.add_argument("--batch-size", type=positive_int, default=128)


def build_parser() -> argparse.ArgumentParser:
    """The `signvision` parser and its sub-commands (each with an example in --help)."""
    from signvision import __version__

    parser = Parser(
        prog="signvision",
        description=__doc__.split("\n")[0],
        epilog="start with: signvision demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"signvision {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=S, help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def command(name: str, help: str, example: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=f"example:\n  {example}",
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    p = command(
        "train",
        "train LeNet or a timm backbone on a folder of labelled images",
        "signvision train --data ../shared/data/sign-digits --model lenet --epochs 15 --image-size 64 --out runs/lenet",
        cmd_train,
    )
    add_train_args(p)

    p = command(
        "evaluate",
        "metrics of a run on its validation images: uncalibrated, calibrated, with TTA",
        "signvision evaluate --run runs/lenet --tta hflip",
        cmd_evaluate,
    )
    p.add_argument("--run", required=True)
    p.add_argument(
        "--data",
        help="labelled images to score: a test folder (DIR of train/ and test/<class>/), a folder of class "
        "sub-folders or a CSV (img_IDS,Label); the run's own data folder, if it moved (default: the run's "
        "validation images)",
    )
    _tta_args(p)

    p = command(
        "predict",
        "write a submission: img_IDS + calibrated class probabilities for Test.csv or a folder",
        "signvision predict --run runs/lenet --data ../shared/data/sign-digits --out submission.csv",
        cmd_predict,
    )
    p.add_argument("--run", required=True, help="a run folder, or a --folds run (its folds are averaged)")
    p.add_argument(
        "--data",
        help="Zindi folder (its Test.csv), a Test-style CSV, or a folder of images (sub-folders included; each "
        "named by its path in the folder)",
    )
    p.add_argument("--out", required=True, help="the CSV to write (not overwritten unless --overwrite)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--workers", type=int, default=-1)
    _tta_args(p)

    d = AuditConfig()
    p = command(
        "audit",
        "find broken files, duplicates, conflicting labels, likely mislabels and leakage",
        "signvision audit --data ../shared/data/sign-digits --out audits/sign-digits",
        cmd_audit,
    )
    add_data_args(p)
    p.add_argument("--out", required=True, help="a new folder for the audit")
    p.add_argument("--drop-suspects", action="store_true", help="clean.csv also drops likely mislabelled images")
    p.add_argument("--skip-label-issues", action="store_true", help="skip the k-fold mislabel search")
    p.add_argument("--folds", type=int, default=d.folds)
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs of the mislabel model per fold")
    p.add_argument("--near-threshold", type=float, default=d.near_threshold)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")

    p = command(
        "split",
        "write a stratified validation split: near copies and neighbouring frames stay on one side",
        "signvision split --data ../shared/data/sign-digits --audit audits/sign-digits --out split.csv",
        cmd_split,
    )
    add_data_args(p)
    p.add_argument("--audit", help="an audit folder: its duplicate groups are kept on one side")
    p.add_argument("--split-by", default="near-copies", choices=["near-copies", "random"])
    p.add_argument("--val-fraction", type=float, default=0.33)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="the split CSV to write (its split.json is written beside it)")
    p.add_argument("--overwrite", action="store_true")

    p = command("report", "rebuild a run's report.html and its PNGs", "signvision report runs/lenet", cmd_report)
    p.add_argument("run")
    p.add_argument("--data", help="where the run's images are now, if they moved")
    p.add_argument("--device", default="auto")

    p = command(
        "compare",
        "compare runs: validation figures and the settings that differ",
        "signvision compare runs/lenet runs/r18 --out runs/compare",
        cmd_compare,
    )
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", help="folder for compare.csv and compare.png")

    p = command(
        "ablate",
        "train a grid of settings over several seeds; say which changes beat the noise",
        "signvision ablate --data ../shared/data/sign-digits --model lenet --grid augment=none,light,heavy "
        "--grid mix=none,mixup,cutmix --tta none,hflip --seeds 3 --epochs 10 --out ablations/lenet",
        cmd_ablate,
    )
    add_train_args(p)
    p.add_argument("--grid", action="append", default=[], help="NAME=V1,V2,...: a setting to vary (repeatable)")
    p.add_argument("--tta", default="none", help="TTA modes to evaluate each run with, comma-separated")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument(
        "--test-data",
        help="labelled images every run is also scored on (e.g. a test/ folder of another capture session)",
    )

    p = command(
        "export",
        "export a run's best model (ONNX, dynamic batch size, uint8 images in)",
        "signvision export --run runs/lenet --format onnx",
        cmd_export,
    )
    p.add_argument("--run", required=True)
    p.add_argument("--format", default="onnx", choices=["onnx"])
    p.add_argument("--out", help="default RUN/model.onnx (model.json is written beside it)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--overwrite", action="store_true")

    p = command(
        "serve",
        "try a trained model: a web page (upload or webcam) and an HTTP API",
        "signvision serve --run runs/lenet --port 8000   # then open http://127.0.0.1:8000",
        cmd_serve,
    )
    p.add_argument("--run", required=True)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--tta", default="none", help="none|hflip|hflip+crops")
    p.add_argument("--device", default="auto")
    p.add_argument("--max-images", type=positive_int, default=16, help="images per request at most")
    p.add_argument("--max-upload-mb", type=positive_int, default=20, help="request body size at most, in MB")

    p = command(
        "demo",
        "the main job on built-in data: write digits in the Zindi layout, train, evaluate, predict",
        "signvision demo --workdir signvision-demo",
        cmd_demo,
    )
    p.add_argument("--workdir", default="signvision-demo", help="data and runs go here")
    p.add_argument(
        "--source",
        default="digits",
        choices=["digits", "fashion-mnist"],
        help="digits: scikit-learn's bundled scans; fashion-mnist: Debian's dataset-fashion-mnist",
    )
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--device", default="auto")

    p = command(
        "models", "list model names (lenet and timm's) matching a pattern", "signvision models 'resnet*'", cmd_models
    )
    p.add_argument("pattern", nargs="?")

    p = command(
        "show-augment",
        "draw a grid of augmented training images",
        "signvision show-augment --data ../shared/data/sign-digits --augment heavy --out grid.png",
        cmd_show_augment,
    )
    p.add_argument("--data", required=True)
    p.add_argument("--augment", default="medium")
    p.add_argument("--out", required=True)
    p.add_argument("--image-size", type=positive_int, default=96)
    p.add_argument("--rows", type=positive_int, default=4)
    p.add_argument("--cols", type=positive_int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a user's mistake prints one line and returns 2."""
    args = build_parser().parse_args(argv)
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

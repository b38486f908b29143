"""The `signvision` command: one sub-command per job, each a thin layer over a library function.

Errors in what the user gave (a file, a row, an option) print one line and exit with code 2; `--debug`
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from signvision.config import TrainConfig
from signvision.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (`signvision train: error: ...`), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _sub(subparsers, name: str, help: str, example: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=help,
        description=help,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_data_args(p: argparse.ArgumentParser, *, suppress_defaults: bool = False) -> None:
    """--data, or --csv with its columns and image folder. `suppress_defaults`: columns not given stay out
    of the namespace (as `train` needs, to tell what `--resume` may change)."""
    image_col, label_col = (argparse.SUPPRESS,) * 2 if suppress_defaults else ("img_IDS", "Label")
    g = p.add_argument_group("data")
    g.add_argument("--data", help="data folder: Zindi layout (Train.csv, Images/) or one sub-folder per class")
    g.add_argument("--csv", help="or any CSV of image names and labels ...")
    g.add_argument("--image-col", default=image_col, help="... its image column (default img_IDS)")
    g.add_argument("--label-col", default=label_col, help="... its label column (default Label)")
    g.add_argument("--image-dir", help="... and the folder its image names are relative to")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def add_train_args(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    S = argparse.SUPPRESS  # options not given stay out of the namespace (so --resume can tell)
    add_data_args(p, suppress_defaults=True)
    g = p.add_argument_group("task and split")
    g.add_argument("--target", default=S, help="binary task: this class vs the rest (one output)")
    g.add_argument("--val-fraction", type=float, default=S, help=f"validation share (default {d.val_fraction})")
    g.add_argument("--split", default=S, help="reuse a split.csv (img_IDS,fold) instead of drawing one")
    g.add_argument("--audit", default=S, help="an audit folder: train on its clean.csv, keep duplicate groups together")
    g.add_argument("--skip-bad-images", action="store_true", default=S, help="drop and list missing/corrupt images")
    g.add_argument("--seed", type=int, default=S, help=f"seed for split, init and shuffling (default {d.seed})")
    g = p.add_argument_group("model")
    g.add_argument("--model", default=S, help=f"lenet or any timm name, see `signvision models` (default {d.model})")
    g.add_argument(
        "--lenet-width", type=_positive_int, default=S, help=f"LeNet channel multiplier (default {d.lenet_width})"
    )
    g.add_argument("--pretrained", action="store_true", default=S, help="start from timm's hub weights (online)")
    g.add_argument("--weights", default=S, help="start from local weights: .safetensors/.pth or a run's best.pt")
    g.add_argument("--freeze-backbone-epochs", type=int, default=S, help="train only the new head for N epochs")
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
    g.add_argument("--augment", default=S, help="none|light|medium|heavy or an albumentations .json (default none)")
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
    g.add_argument("--out", default=S, help="the run folder to create")
    g.add_argument("--resume", metavar="RUN", help="continue RUN from its last.pt (optionally with more --epochs)")


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, bool]:
    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if args.resume:
        run = Path(args.resume)
        cfg = TrainConfig.load(run / "config.json")
        allowed = {"epochs", "device", "workers", "data", "csv", "image_dir", "cache", "cache_dir"}
        extra = sorted(set(given) - allowed)
        if extra:
            raise UserError(
                f"--resume {run}: cannot change --{extra[0].replace('_', '-')} of an existing run "
                f"(only {', '.join('--' + a.replace('_', '-') for a in sorted(allowed))})"
            )
        for k, v in given.items():
            setattr(cfg, k, v)
        cfg.out = str(run)
        return cfg, True
    if "out" not in given:
        raise UserError("--out: give a new folder for the run (or --resume RUN)")
    if "data" not in given and "csv" not in given:
        raise UserError("--data: give a data folder (or --csv FILE --image-dir DIR)")
    return TrainConfig(**given), False


def cmd_train(args) -> int:
    from signvision.engine import fit

    cfg, resume = config_from_args(args)
    summary = fit(cfg, resume=resume)
    if summary:
        nan = float("nan")
        auc, loss, acc = (summary.get(k, nan) for k in ("val_roc_auc", "val_log_loss", "val_accuracy"))
        print(
            f"best epoch {summary.get('best_epoch')}: val ROC AUC {auc:.4f}, log loss {loss:.4f}, accuracy {acc:.4f}"
            f" ({summary['train_seconds']:.0f} s of training). Run: {cfg.out}"
        )
        from signvision.report import write_report

        print(f"report: {write_report(Path(cfg.out))}")
    return 0


def cmd_evaluate(args) -> int:
    from signvision.engine import evaluate_run

    evaluate_run(
        args.run, args.data, tta=args.tta, tta_merge=args.tta_merge, device=args.device, batch_size=args.batch_size
    )
    return 0


def cmd_predict(args) -> int:
    from signvision.engine import load_run, predict

    data = args.data
    if data is None:
        _, _, cfg, _ = load_run(args.run)
        data = cfg.data
    predict(
        args.run,
        data,
        args.out,
        tta=args.tta,
        tta_merge=args.tta_merge,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        overwrite=args.overwrite,
    )
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


def _tta_args(p) -> None:
    p.add_argument("--tta", default="none", help="none|hflip|hflip+crops or an albumentations .json (default none)")
    p.add_argument("--tta-merge", default="mean", choices=["mean", "gmean"], help="how views are merged")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N")
    p.add_argument("--batch-size", type=_positive_int, default=128)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="signvision",
        description=__doc__.split("\n")[0],
        epilog="start with: signvision demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    from signvision import __version__

    parser.add_argument("--version", action="version", version=f"signvision {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = _sub(
        sub,
        "train",
        "train LeNet or a timm backbone on a folder of labelled images",
        "signvision train --data ../shared/data/sign-digits --model lenet --epochs 15 --image-size 64 --out runs/lenet",
    )
    add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = _sub(
        sub,
        "evaluate",
        "metrics of a run on its validation images, without and with TTA",
        "signvision evaluate --run runs/lenet --tta hflip",
    )
    p.add_argument("--run", required=True)
    p.add_argument("--data", help="the data folder (default: the one the run was trained on)")
    _tta_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = _sub(
        sub,
        "predict",
        "write a submission: img_IDS + class probabilities for Test.csv or a folder",
        "signvision predict --run runs/lenet --data ../shared/data/sign-digits --out submission.csv",
    )
    p.add_argument("--run", required=True)
    p.add_argument("--data", help="Zindi folder (its Test.csv), a Test-style CSV, or a folder of images")
    p.add_argument("--out", required=True, help="the CSV to write (not overwritten unless --overwrite)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--workers", type=int, default=-1)
    _tta_args(p)
    p.set_defaults(func=cmd_predict)

    p = _sub(
        sub,
        "demo",
        "the main job on built-in data: write digits in the Zindi layout, train, evaluate, predict",
        "signvision demo --workdir signvision-demo",
    )
    p.add_argument(
        "--workdir", default="signvision-demo", help="where the data and runs go (default ./signvision-demo)"
    )
    p.add_argument(
        "--source",
        default="digits",
        choices=["digits", "fashion-mnist"],
        help="digits: scikit-learn's bundled scans; fashion-mnist: Debian's dataset-fashion-mnist",
    )
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_demo)

    p = _sub(sub, "models", "list model names (lenet and timm's) matching a pattern", "signvision models 'resnet*'")
    p.add_argument("pattern", nargs="?")
    p.set_defaults(func=cmd_models)

    p = _sub(
        sub,
        "show-augment",
        "draw a grid of augmented training images",
        "signvision show-augment --data ../shared/data/sign-digits --augment heavy --out grid.png",
    )
    p.add_argument("--data", required=True)
    p.add_argument("--augment", default="medium")
    p.add_argument("--out", required=True)
    p.add_argument("--image-size", type=_positive_int, default=96)
    p.add_argument("--rows", type=_positive_int, default=4)
    p.add_argument("--cols", type=_positive_int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_show_augment)

    for register in _extensions():
        register(sub, _sub)
    return parser


def _extensions():
    """Sub-commands that live beside their module."""
    from signvision import ablate, audit, export, report

    return [audit.register_cli, report.register_cli, ablate.register_cli, export.register_cli]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from signvision.data import BadImage

    try:
        return args.func(args) or 0
    except (UserError, BadImage) as e:
        if args.debug:
            raise
        print(f"signvision {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"signvision {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

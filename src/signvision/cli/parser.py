"""The `signvision` command line's parser: every sub-command's options, each in a small function, and the
table of sub-commands. Nothing heavy is imported here (argparse and the config dataclasses only), so that
`signvision --help`, every `--help` and every argument error answer at once."""

from __future__ import annotations

import argparse
from dataclasses import fields

from signvision.config import (
    AUDIT_CHOICES,
    CHOICES,
    LR_FIND_END,
    LR_FIND_START,
    LR_FIND_STEPS,
    PSEUDO_THRESHOLD,
    SERVE_MAX_IMAGES,
    SERVE_MAX_UPLOAD_MB,
    AuditConfig,
    DataSource,
    ImageSource,
    Machine,
    Recipe,
    TrainConfig,
    field_help,
    names_of,
)

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


def host_names(text: str) -> list[str]:
    """argparse type: comma-separated host names, as a Host header gives them (no scheme, path or port)."""
    names = [h.strip() for h in text.split(",") if h.strip()]
    wrong = [h for h in names if any(c in h for c in "/:@ ")]
    if wrong or not names:
        raise argparse.ArgumentTypeError(f"{wrong[0] if wrong else text!r} is not a host name (e.g. proxy.example)")
    return names


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


# the flags whose help says more than the config's comment, or whose type is stricter
TRAIN_HELP = {
    "data": "data folder: Zindi layout (Train.csv, Images/), class sub-folders, or train/ val/ test/ folders",
    "split_by": "near-copies: near copies and neighbouring frames stay on one side; random: the course's plain "
    "random split (the run warns how much it leaks)",
    "model": "lenet or any timm name, see `signvision models`",
    "seed": "seed for the split, the initial weights and the shuffling",
}
STRICT_TYPES = {"lenet_width": positive_int}
GROUPS = (("data", DataSource), ("recipe", Recipe), ("machine", Machine), ("output", None))


def add_config_arg(g, name: str, type_name: str, default, help_text: str, choices=None) -> None:
    """One config field as a `--flag` (not given: it stays out of the namespace, so the config's default holds)."""
    flag = "--" + name.replace("_", "-")
    shown = f" (default {default})" if default not in (None, False, "") else ""
    if type_name == "bool":
        action = argparse.BooleanOptionalAction if default else "store_true"
        g.add_argument(flag, action=action, default=S, help=help_text + shown)
        return
    kind = STRICT_TYPES.get(name) or {"int": int, "float": float}.get(type_name.split(" |")[0], str)
    g.add_argument(flag, type=kind, default=S, choices=choices or CHOICES.get(name), help=help_text + shown)


def add_train_args(p: argparse.ArgumentParser, *, leave_out: tuple[str, ...] = ()) -> None:
    """Every TrainConfig setting (but those in `leave_out`) as an option, made from the config's dataclasses
    (their defaults and comments), grouped as they are: the data source, the recipe, the machine, the output."""
    for title, part in GROUPS:
        g = p.add_argument_group(title)
        helps = field_help(part or TrainConfig)
        for f in fields(part) if part is not None else [f for f in fields(TrainConfig) if f.name == "out"]:
            if f.name not in leave_out:
                add_config_arg(g, f.name, f.type, f.default, TRAIN_HELP.get(f.name, helps.get(f.name, "")))
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last.pt (optionally with more --epochs)")


def _tta_args(p) -> None:
    p.add_argument(
        "--tta",
        default="none",
        help="none|hflip|hflip+crops|capture or an albumentations .json; evaluate: choose (each built-in mode "
        "scored on the validation images, the one that pays kept); predict, serve: auto (the mode kept) "
        "(default none)",
    )
    p.add_argument(
        "--tta-merge",
        default="mean",
        choices=["mean", "geometric", "gmean"],
        help="how views are merged: arithmetic or geometric mean (gmean: the same)",
    )
    p.add_argument("--tta-views", type=positive_int, default=4, help="draws of a --tta FILE pipeline (default 4)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N")
    p.add_argument("--batch-size", type=positive_int, default=128)


def options_train(p: argparse.ArgumentParser) -> None:
    add_train_args(p)


def options_distill(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "from_run",
        metavar="TEACHER",
        help="a finished --folds run or ensemble: its out-of-fold probabilities are the training targets",
    )
    add_train_args(p, leave_out=("teacher",))


def options_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True)
    p.add_argument("--skip-bad-images", action="store_true", help="leave out validation images that cannot be read")
    p.add_argument(
        "--data",
        help="labelled images to score: a test folder (DIR of train/ and test/<class>/), a folder of class "
        "sub-folders or a CSV (img_IDS,Label); the run's own data folder, if it moved (default: the run's "
        "validation images)",
    )
    _tta_args(p)


def options_predict(p: argparse.ArgumentParser) -> None:
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


def options_audit(p: argparse.ArgumentParser) -> None:
    """The data, the folder, and every other AuditConfig setting as a flag (its default and comment)."""
    add_data_args(p)
    p.add_argument("--out", required=True, help="a new folder for the audit")
    helps, own = field_help(AuditConfig), [f for f in fields(AuditConfig) if f.name not in names_of(ImageSource)]
    g = p.add_argument_group("audit")
    for f in own:
        if f.name != "out":
            add_config_arg(g, f.name, f.type, f.default, helps.get(f.name, ""), AUDIT_CHOICES.get(f.name))


def options_split(p: argparse.ArgumentParser) -> None:
    add_data_args(p)
    p.add_argument("--audit", help="an audit folder: its duplicate groups are kept on one side")
    p.add_argument("--split-by", default=Recipe.split_by, choices=CHOICES["split_by"])
    p.add_argument("--val-fraction", type=float, default=Recipe.val_fraction)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="the split CSV to write (its split.json is written beside it)")
    p.add_argument("--overwrite", action="store_true")


def options_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("run")
    p.add_argument("--data", help="where the run's images are now, if they moved")
    p.add_argument("--device", default="auto")


def options_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", help="folder for compare.csv and compare.png")
    p.add_argument("--overwrite", action="store_true", help="replace compare.csv and compare.png already in --out")


def options_ablate(p: argparse.ArgumentParser) -> None:
    add_train_args(p)
    p.add_argument("--grid", action="append", default=[], help="NAME=V1,V2,...: a setting to vary (repeatable)")
    p.add_argument("--tta", default="none", help="TTA modes to evaluate each run with, comma-separated")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument(
        "--test-data",
        help="labelled images every run is also scored on (e.g. a test/ folder of another capture session)",
    )


def options_lr_find(p: argparse.ArgumentParser) -> None:
    add_train_args(p)
    p.add_argument(
        "--start-lr",
        type=float,
        default=LR_FIND_START,
        help=f"the sweep's first learning rate (default {LR_FIND_START})",
    )
    p.add_argument("--end-lr", type=float, default=LR_FIND_END, help=f"its last (default {LR_FIND_END:g})")
    p.add_argument(
        "--steps", type=int, default=LR_FIND_STEPS, help=f"training steps of the sweep (default {LR_FIND_STEPS})"
    )
    p.add_argument("--overwrite", action="store_true", help="replace lr_find.png and lr_find.csv already in --out")


def options_explain(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="a run folder, a --folds run or an ensemble")
    p.add_argument(
        "--data",
        required=True,
        help="images: a folder (sub-folders included), a Zindi folder, or a CSV with img_IDS (images beside it)",
    )
    p.add_argument("--out", required=True, help="the folder for explain.html")
    p.add_argument("--target", help="the class to explain (default: each image's predicted class)")
    p.add_argument("--limit", type=positive_int, default=48, help="images at most, the first ones (default 48)")
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true", help="replace an explain.html already in --out")


def options_pseudo_label(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="the first round: a run, a --folds run or an ensemble")
    p.add_argument("--data", required=True, help="unlabelled images: a folder (sub-folders included), a Zindi folder")
    p.add_argument("--out", required=True, help="the CSV to write (path, Label, confidence)")
    p.add_argument(
        "--threshold",
        type=float,
        default=PSEUDO_THRESHOLD,
        help=f"keep images predicted this surely (default {PSEUDO_THRESHOLD})",
    )
    p.add_argument("--tta", default="none", help="test-time views (none, capture, auto, ...)")
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true", help="replace the CSV if it exists")


def options_submit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="a Zindi folder (Train.csv, Test.csv, Images/)")
    p.add_argument("--time", required=True, help="the budget: 30m, 1h, 1h30m, 90s (a number: minutes)")
    p.add_argument("--out", required=True, help="the submission CSV (replaced only if this job wrote it)")
    p.add_argument("--work", help="the job's folder (default: OUT's name + -job); the same command continues it")
    p.add_argument("--overwrite", action="store_true", help="replace an OUT this job did not write")
    p.add_argument(
        "--distill",
        action="store_true",
        help="also train one LeNet on the job's out-of-fold probabilities (WORK/distilled), to serve and export",
    )
    p.add_argument(
        "--second-round",
        action="store_true",
        help="also train LeNet again with the test images the first stages are sure of, in the first LeNet's place "
        "(pseudo-labels: fits on the test images; helped on one new capture, not on another: docs/zindi.md)",
    )
    p.add_argument("--audit", help="an audit folder: train on its clean.csv, its groups kept in one fold")
    p.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed of the folds and of every stage")
    p.add_argument("--device", default=TrainConfig.device, help="auto|cpu|cuda|cuda:N")


def options_ensemble(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="two or more --folds runs trained on the same data, folds and seed")
    p.add_argument("--out", required=True, help="a new folder for the ensemble")
    p.add_argument(
        "--select",
        default="log_loss",
        choices=["log_loss", "accuracy", "roc_auc"],
        help="the out-of-fold figure the weights optimise (default log_loss, the challenge's)",
    )


def options_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True)
    p.add_argument("--format", default="onnx", choices=["onnx"])
    p.add_argument("--out", help="default RUN/model.onnx (model.json is written beside it)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--overwrite", action="store_true")


def options_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--tta", default="none", help="none|hflip|hflip+crops|capture, or auto (the mode evaluate --tta choose kept)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--max-images", type=positive_int, default=SERVE_MAX_IMAGES, help="images per request at most")
    p.add_argument(
        "--max-upload-mb", type=positive_int, default=SERVE_MAX_UPLOAD_MB, help="request body size at most, in MB"
    )
    p.add_argument(
        "--allowed-hosts",
        type=host_names,
        help="Host names to answer besides this machine's (comma-separated; e.g. a reverse proxy's)",
    )


def options_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default="signvision-demo", help="data and runs go here")
    p.add_argument(
        "--source",
        default="digits",
        choices=["digits", "fashion-mnist"],
        help="digits: scikit-learn's bundled scans; fashion-mnist: Debian's dataset-fashion-mnist",
    )
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--device", default="auto")


def options_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?")


def options_show_augment(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True)
    p.add_argument("--augment", default="medium")
    p.add_argument("--out", required=True)
    p.add_argument("--image-size", type=positive_int, default=96)
    p.add_argument("--rows", type=positive_int, default=4)
    p.add_argument("--cols", type=positive_int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")


# name, help, example, the function that adds its options
COMMANDS = [
    (
        "train",
        "train LeNet or a timm backbone on a folder of labelled images",
        "signvision train --data ../shared/data/sign-digits --model lenet --epochs 15 --out runs/lenet",
        options_train,
    ),
    (
        "submit",
        "the best submission for the time you have: staged --folds runs and ensembles, a submission after each",
        "signvision submit --data ~/zindi-ksl --time 30m --out submission.csv",
        options_submit,
    ),
    (
        "distill",
        "train one network on an ensemble's out-of-fold probabilities (data: the teacher's unless given)",
        "signvision distill runs/ksl-ensemble --model lenet --out runs/ksl-distilled",
        options_distill,
    ),
    (
        "evaluate",
        "score a run: its validation images (uncalibrated, calibrated, with TTA), or a labelled test set",
        "signvision evaluate --run runs/lenet --data data/sessions",
        options_evaluate,
    ),
    (
        "predict",
        "write a submission: img_IDS + calibrated class probabilities for Test.csv or a folder",
        "signvision predict --run runs/lenet --data ../shared/data/sign-digits --out submission.csv",
        options_predict,
    ),
    (
        "audit",
        "find broken files, duplicates, conflicting labels, likely mislabels and leakage",
        "signvision audit --data ../shared/data/sign-digits --out audits/sign-digits",
        options_audit,
    ),
    (
        "split",
        "write a stratified validation split: near copies and neighbouring frames stay on one side",
        "signvision split --data ../shared/data/sign-digits --out split.csv",
        options_split,
    ),
    ("report", "rebuild a run's report.html and its PNGs", "signvision report runs/lenet", options_report),
    (
        "compare",
        "compare runs: validation figures, their leak checks, and the settings that differ",
        "signvision compare runs/lenet runs/r18 --out runs/compare",
        options_compare,
    ),
    (
        "ablate",
        "train a grid of settings over several seeds; say which changes beat the noise",
        "signvision ablate --data ../shared/data/sign-digits --model lenet --grid augment=none,capture "
        "--grid mix=none,mixup,cutmix --tta none,hflip --seeds 3 --epochs 10 --out ablations/lenet",
        options_ablate,
    ),
    (
        "ensemble",
        "combine --folds runs of different recipes: weights fitted on their out-of-fold predictions",
        "signvision ensemble runs/ksl-lenet runs/ksl-lite0 --out runs/ksl-ensemble",
        options_ensemble,
    ),
    (
        "pseudo-label",
        "label the unlabelled images a run is sure of, for a second round (train --pseudo-labels CSV)",
        "signvision pseudo-label --run runs/ksl-ensemble --data ~/zindi-ksl --out runs/pseudo.csv",
        options_pseudo_label,
    ),
    (
        "lr-find",
        "the learning-rate finder: loss against an exponentially growing learning rate, and a suggested --lr",
        "signvision lr-find --data ../shared/data/sign-digits --model lenet --out runs/lr-find",
        options_lr_find,
    ),
    (
        "explain",
        "class-activation heatmaps: where in each image the run's decision came from, as a page of overlays",
        "signvision explain --run runs/lenet --data ../shared/data/sign-digits --out runs/lenet/explain",
        options_explain,
    ),
    (
        "export",
        "export a run's best model (ONNX, dynamic batch size, uint8 images in)",
        "signvision export --run runs/lenet --format onnx",
        options_export,
    ),
    (
        "serve",
        "try a trained model: a web page (upload or webcam) and an HTTP API",
        "signvision serve --run runs/lenet --port 8000   # then open http://127.0.0.1:8000",
        options_serve,
    ),
    (
        "demo",
        "the main job on built-in data: write digits in the Zindi layout, train, evaluate, predict",
        "signvision demo --workdir signvision-demo",
        options_demo,
    ),
    ("models", "list model names (lenet and timm's) matching a pattern", "signvision models 'resnet*'", options_models),
    (
        "show-augment",
        "draw a grid of augmented training images",
        "signvision show-augment --data ../shared/data/sign-digits --augment capture --out grid.png",
        options_show_augment,
    ),
]


def build_parser(handlers: dict, commands=None) -> Parser:
    """The `signvision` parser; `handlers` maps each sub-command's name to the function that runs it. Every
    command is listed, with its options made only for those named in `commands` (None: all of them; the command
    line names the one it runs, or none for `signvision --help`, rather than build every command's flags)."""
    from signvision import __version__

    parser = Parser(
        prog="signvision",
        description="Audit a folder of labelled images, then train, compare and ship CNN image classifiers.",
        epilog="start with: signvision demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"signvision {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=S, help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, help, example, options in COMMANDS:
        p = sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=f"example:\n  {example}",
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=handlers[name])
        if commands is None or name in commands:
            options(p)
    return parser

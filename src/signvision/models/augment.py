"""Augmentation with albumentations, and test-time augmentation (TTA) written here.

Training presets:

    none     nothing: images are only resized (once, into the cache)
    capture  what a new capture changes, never a mirror image (a mirrored right hand is a left hand):
             the hand moved, nearer or further, turned a little; brighter or dimmer, warmer or colder
             light; a softer lens; sensor noise. Made for hand signs photographed in another session.

and, in strength order (each includes the one before, made stronger), the course's presets:

    light   horizontal flip; small affine shift/scale/rotate; brightness/contrast
    medium  + random resized crop; blur; colour jitter; stronger affine
    heavy   + cut-out (coarse dropout); strongest settings

A user's own pipeline is any albumentations pipeline saved with `A.save(transform, "aug.json")`, given
as `--augment aug.json`. Evaluation never augments: resize (in the cache) and normalise (on the device).

TTA (`--tta`) runs the model on several views of each image and merges the probabilities:

    none          the image itself
    hflip         + its mirror image
    hflip+crops   + centre and four corner crops of 90%, resized back
    FILE          + `--tta-views N` draws (default 4) of the albumentations pipeline saved in FILE
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import albumentations as A
import numpy as np
import torch
import torch.nn.functional as F

from signvision.config import TrainConfig
from signvision.errors import OptionError
from signvision.models.probs import get_merge, merge_probs

PRESETS = ("none", "capture", "light", "medium", "heavy")
STRENGTH = ("none", "light", "medium", "heavy")  # the course's presets, each building on the one before
TTA_MODES = ("none", "hflip", "hflip+crops", "capture")
# The `capture` TTA's views, each a small move the capture augmentation trains on (zoom, shift as a share of
# the side, turn in degrees, light gain), drawn once here so that every run sees the same views.
CAPTURE_VIEWS = (
    (1.08, 0.0, 0.0, 0.0, 1.0),  # a little nearer
    (0.93, 0.0, 0.0, 0.0, 1.0),  # a little further
    (1.0, 0.05, 0.0, 0.0, 1.0),  # moved right
    (1.0, -0.05, 0.0, 0.0, 1.0),  # moved left
    (1.0, 0.0, 0.0, 6.0, 1.0),  # turned
    (1.0, 0.0, 0.0, -6.0, 1.0),
    (1.0, 0.0, 0.0, 0.0, 1.15),  # brighter
    (1.0, 0.0, 0.0, 0.0, 0.87),  # dimmer
)


class AugmentPreset:
    """Builds the albumentations pipeline of one preset: `AugmentPreset("capture", image_size=64)()`.

    Args:
        level: none | capture | light | medium | heavy (see the module docstring).
        image_size: the side images keep.   seed: the pipeline's random stream.

    Example:
        >>> AugmentPreset("none", image_size=64)() is None
        True
    """

    def __init__(self, level: str, *, image_size: int, seed: int | None = None):
        if level not in PRESETS:
            raise OptionError(
                f"expected one of {', '.join(PRESETS)} or a .json/.yaml file", option="augment", value=level
            )
        self.level, self.image_size, self.seed = level, image_size, seed

    def __call__(self) -> A.Compose | None:
        if self.level == "none":
            return None
        if self.level == "capture":
            return self.capture()
        s, level = self.image_size, STRENGTH.index(self.level)
        strength = [0, 1.0, 1.5, 2.0][level]
        ops: list[A.BasicTransform] = [
            A.HorizontalFlip(p=0.5),
            A.Affine(
                translate_percent=(-0.06 * strength, 0.06 * strength),
                scale=(1 - 0.08 * strength, 1 + 0.08 * strength),
                rotate=(-10 * strength, 10 * strength),
                border_mode=1,
                p=0.7,
            ),  # cv2.BORDER_REPLICATE
            A.RandomBrightnessContrast(brightness_limit=0.15 * strength, contrast_limit=0.15 * strength, p=0.5),
        ]
        if level >= 2:
            ops += [
                A.RandomResizedCrop(size=(s, s), scale=(1 - 0.25 * strength / 1.5, 1.0), ratio=(0.85, 1.18), p=0.5),
                A.GaussianBlur(blur_limit=(3, 5), p=0.2),
                A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.3, hue=0.05 * strength / 1.5, p=0.4),
            ]
        if level >= 3:
            ops += [
                A.CoarseDropout(
                    num_holes_range=(1, 3), hole_height_range=(0.1, 0.25), hole_width_range=(0.1, 0.25), fill=0, p=0.5
                )
            ]
        return A.Compose(ops, seed=self.seed)

    def capture(self) -> A.Compose:
        """A new capture of the same sign: geometry, light, lens and sensor; no flip."""
        ops = [
            A.Affine(
                translate_percent=(-0.08, 0.08), scale=(0.85, 1.15), rotate=(-12, 12), border_mode=1, p=0.8
            ),  # cv2.BORDER_REPLICATE
            A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=0.7),
            A.ColorJitter(brightness=0, contrast=0, saturation=0.2, hue=0.03, p=0.5),
            A.RandomGamma(gamma_limit=(80, 120), p=0.3),
            A.GaussianBlur(blur_limit=(3, 5), p=0.2),
            A.GaussNoise(std_range=(0.01, 0.04), p=0.2),
        ]
        return A.Compose(ops, seed=self.seed)


def build_augment(spec: str, *, image_size: int, seed: int | None = None) -> A.BaseCompose | None:
    """A training augmentation: a preset name, or a pipeline saved with albumentations' `A.save`.

    Args:
        spec: none | capture | light | medium | heavy, or a .json/.yaml file.
        image_size: the side every image keeps.   seed: the pipeline's random stream.

    Returns:
        an albumentations pipeline (None for "none").

    Example:
        >>> aug = build_augment("capture", image_size=64, seed=0)
        >>> aug(image=np.zeros((64, 64, 3), np.uint8))["image"].shape
        (64, 64, 3)
    """
    if spec in PRESETS:
        return AugmentPreset(spec, image_size=image_size, seed=seed)()
    return load_pipeline(spec, "augment", image_size)


def load_pipeline(path: str, option: str, image_size: int, names: tuple[str, ...] = PRESETS) -> A.BaseCompose:
    """An albumentations pipeline saved with `A.save`, checked to keep the image size."""
    p = Path(path)
    if not p.is_file():
        raise OptionError(f"not one of {', '.join(names)} and no such file", option=option, value=path)
    try:
        transform = A.load(str(p), data_format="yaml" if p.suffix in (".yaml", ".yml") else "json")
    except Exception as e:
        raise OptionError(
            f"not an albumentations pipeline ({type(e).__name__}: {e})", option=option, value=path
        ) from None
    probe = transform(image=np.zeros((image_size, image_size, 3), np.uint8))["image"]
    if probe.shape != (image_size, image_size, 3):
        raise OptionError(
            f"the pipeline changes the image shape to {probe.shape}; it must keep {image_size}x{image_size}x3",
            option=option,
            value=path,
        )
    return transform


# ----------------------------------------------------------------------------------------------------
# Test-time augmentation
# ----------------------------------------------------------------------------------------------------
def crop_views(x: torch.Tensor, fraction: float = 0.9) -> list[torch.Tensor]:
    """Centre and four corner crops of `fraction` of each side, resized back to (H, W). x: (B, C, H, W)."""
    h, w = x.shape[-2:]
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    corners = [((h - ch) // 2, (w - cw) // 2), (0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw)]
    return [
        F.interpolate(x[..., y : y + ch, x0 : x0 + cw], size=(h, w), mode="bilinear", align_corners=False)
        for y, x0 in corners
    ]


def capture_views(images: torch.Tensor) -> list[torch.Tensor]:
    """uint8 images (B, 3, H, W) -> one uint8 batch per `CAPTURE_VIEWS` entry: zoomed, shifted, turned
    (edges repeated, as the capture augmentation's cv2.BORDER_REPLICATE) and relit."""
    import math

    x, out = images.float(), []
    for zoom, shift, _, angle, light in CAPTURE_VIEWS:
        a = math.radians(angle)
        theta = torch.tensor(
            [[math.cos(a) / zoom, -math.sin(a) / zoom, -2 * shift], [math.sin(a) / zoom, math.cos(a) / zoom, 0.0]]
        )
        grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
        moved = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out.append((moved * light).round().clamp(0, 255).to(torch.uint8))
    return out


class TTA:
    """Test-time augmentation: `TTA("hflip")(predict, images, prepare)` -> probabilities merged over the views.

    Args:
        spec: none | hflip | hflip+crops | capture (the image and 8 fixed small moves, zooms, turns and
            relightings, the views a model trained with `--augment capture` learned; no mirror image) | an
            albumentations .json file (drawn `views` times).
        merge: "mean" or "geometric" ("gmean") of the views' probabilities (models.probs).
        image_size, seed: for a file's pipeline.
    `images` is a uint8 batch (B, 3, H, W) on the CPU, `prepare` turns it into the model's input on its
    device and `predict` turns that input into probabilities.

    Example:
        >>> tta = TTA("hflip")
        >>> tta(lambda x: torch.softmax(model(x), 1), images, runtime.prepare)   # doctest: +SKIP
    """

    def __init__(
        self,
        spec: str = "none",
        *,
        merge: str = "mean",
        views: int = 4,
        image_size: int = TrainConfig.image_size,
        seed: int = 0,
    ):
        if not isinstance(spec, (str, Path)):
            raise OptionError(
                "expected none, hflip, hflip+crops, capture or an albumentations .json file", option="tta", value=spec
            )
        self.spec, self.merge, self.n_views = spec, get_merge(merge, option="tta_merge"), views
        if views < 1:
            raise OptionError("must be positive", option="tta_views", value=views)
        self.file_transform = None
        if spec not in TTA_MODES:
            self.file_transform = load_pipeline(spec, "tta", image_size, TTA_MODES)
            if hasattr(self.file_transform, "set_random_seed"):
                self.file_transform.set_random_seed(seed)  # the same views for the same images, run after run

    def __call__(
        self,
        predict: Callable[[torch.Tensor], torch.Tensor],
        images: torch.Tensor,
        prepare: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        x = prepare(images)
        views = [x]
        if self.spec in ("hflip", "hflip+crops"):
            views.append(x.flip(-1))
        if self.spec == "hflip+crops":
            views += crop_views(x)
        if self.spec == "capture":
            views += [prepare(v) for v in capture_views(images)]
        if self.file_transform is not None:
            hwc = images.permute(0, 2, 3, 1).numpy()
            for _ in range(self.n_views):
                aug = np.stack([self.file_transform(image=np.ascontiguousarray(im))["image"] for im in hwc])
                views.append(prepare(torch.from_numpy(aug).permute(0, 3, 1, 2)))
        probs = [predict(v) for v in views]
        return probs[0] if len(probs) == 1 else merge_probs(probs, merge=self.merge)


def as_tta(tta: TTA | str | None, *, image_size: int, seed: int = 0) -> TTA | None:
    """A TTA from what a caller gave: a TTA as it is, a mode name ("hflip", a .json file) made for the model's
    `image_size` and `seed`, or None / "none" for no test-time views (None)."""
    if tta is None or isinstance(tta, TTA):
        return tta if tta is None or tta.spec != "none" else None
    return None if tta == "none" else TTA(tta, image_size=image_size, seed=seed)

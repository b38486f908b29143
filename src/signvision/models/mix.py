"""MixUp and CutMix, written out.

MixUp:  Zhang et al., 2018, "mixup: Beyond Empirical Risk Minimization", https://arxiv.org/abs/1710.09412
CutMix: Yun et al., 2019, "CutMix: Regularization Strategy to Train Strong Classifiers with Localizable
        Features", https://arxiv.org/abs/1905.04899

Per batch, lambda ~ Beta(alpha, alpha) and every image is mixed with the image at the same position
of the batch in a random permutation (so odd batch sizes and a batch of one just work: a batch of one
is mixed with itself, a no-op). MixUp blends whole images; CutMix pastes a box from the partner
image, and lambda becomes the fraction of the image that was *not* pasted, after the box is clipped
to the image. Targets (one-hot or soft, (B, K), or (B, 1) for one binary output) are mixed with the
same lambda, so K-class targets still sum to 1 and a binary target stays in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch

from signvision.errors import OptionError


def rand_bbox(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box covering about (1 - lam) of the image, centred uniformly at random, clipped to the image.
    Returns (y0, y1, x0, x1)."""
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    y0, y1 = np.clip(cy - cut_h // 2, 0, height), np.clip(cy + cut_h // 2, 0, height)
    x0, x1 = np.clip(cx - cut_w // 2, 0, width), np.clip(cx + cut_w // 2, 0, width)
    return int(y0), int(y1), int(x0), int(x1)


def mix_target(target: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """lam * target + (1 - lam) * target[perm]; target is (B, K) float."""
    return target * lam + target[perm] * (1.0 - lam)


def mixup(x: torch.Tensor, target: torch.Tensor, lam: float, perm: torch.Tensor):
    """MixUp (Zhang et al., 2018): blend each image with its partner, lam * x + (1 - lam) * x[perm], and the
    targets the same way.

    Args:
        x: images (B, C, H, W).   target: (B, K) targets.   lam: the blend.   perm: each image's partner.

    Returns:
        (images, targets).

    Example:
        >>> x, t = mixup(torch.ones(2, 1, 2, 2), torch.eye(2), 0.75, torch.tensor([1, 0]))
        >>> t[0].tolist()
        [0.75, 0.25]
    """
    return x * lam + x[perm] * (1.0 - lam), mix_target(target, perm, lam)


def cutmix(x: torch.Tensor, target: torch.Tensor, lam: float, perm: torch.Tensor, rng: np.random.Generator):
    """CutMix (Yun et al., 2019): paste a box of each image's partner into it.

    Args:
        x: images (B, C, H, W).   target: (B, K) targets.   lam: the share of the image kept (~ Beta).
        perm: each image's partner (a permutation of the batch).   rng: draws the box's centre.

    Returns:
        (images, targets mixed by the box's real share, the lam actually used after clipping the box).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x, t, lam = cutmix(torch.rand(2, 3, 8, 8), torch.eye(2), 0.75, torch.tensor([1, 0]), rng)
        >>> round(float(t[0, 0]), 4) == round(lam, 4)
        True
    """
    height, width = x.shape[-2:]
    y0, y1, x0, x1 = rand_bbox(height, width, lam, rng)
    x = x.clone()
    x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)
    return x, mix_target(target, perm, lam), lam


class Mixer:
    """MixUp and CutMix for a training batch: `Mixer(mode="both", alpha=1.0, prob=1.0)(x, target) -> (x, target)`.

    Args:
        mode: "mixup", "cutmix" or "both" (one of the two, chosen at random per batch).
        alpha: lambda ~ Beta(alpha, alpha).   prob: probability that a batch is mixed at all.   seed: its stream.
    `enabled` switches it off (for the last epochs).

    Example:
        >>> x, target = Mixer(mode="mixup", seed=0)(torch.rand(4, 3, 8, 8), torch.eye(4))
        >>> target.sum(1).tolist()
        [1.0, 1.0, 1.0, 1.0]
    """

    def __init__(self, *, mode: str = "both", alpha: float = 1.0, prob: float = 1.0, seed: int = 0):
        if mode not in ("mixup", "cutmix", "both"):
            raise OptionError("expected mixup, cutmix or both", option="mode", value=mode)
        if not alpha > 0:
            raise OptionError("must be > 0", option="alpha", value=alpha)
        if not 0 <= prob <= 1:
            raise OptionError("must be between 0 and 1 (the share of batches mixed)", option="prob", value=prob)
        self.mode, self.alpha, self.prob = mode, alpha, prob
        self.rng = np.random.default_rng(seed)
        self.enabled = True

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if target.ndim != 2 or target.shape[0] != x.shape[0]:
            raise OptionError(
                f"expected one-hot (or soft) targets (B, K) for {x.shape[0]} images, got {tuple(target.shape)} "
                "(class indices: Task.one_hot makes them)",
                option="target",
            )
        if not self.enabled or self.rng.random() >= self.prob:
            return x, target
        lam = float(self.rng.beta(self.alpha, self.alpha))
        perm = torch.from_numpy(self.rng.permutation(x.shape[0])).to(x.device)
        use_cutmix = self.mode == "cutmix" or (self.mode == "both" and self.rng.random() < 0.5)
        if use_cutmix:
            x, target, lam = cutmix(x, target, lam, perm, self.rng)
        else:
            x, target = mixup(x, target, lam, perm)
        return x, target

"""Where a trained run looks: class-activation heatmaps of its members, a page of overlays, and a faithfulness check.

explain_arrays   RGB images -> one heatmap (N, S, S) in [0, 1] each, at the run's input size: every member's
                 HiResCAM (models/hirescam.py) for the class asked (the run's predicted class by default),
                 averaged as the run averages its members' probabilities (a fold's share of its run's
                 weight), then scaled to [0, 1]
explainer        the `explain(indices, targets)` a page's gallery calls for the images it shows
hiding_test      the faithfulness check: hiding the pixels a heatmap ranks highest must lower the predicted
                 class's probability more than hiding as many pixels ranked by another image's heatmap
write_explain_page   `signvision explain`'s page: each image, its overlay, the class and its probability
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from signvision.data.images import resize
from signvision.errors import OptionError
from signvision.inference.members import RunModel, ensemble_probs, fit_size, input_size, runtime_for
from signvision.models.hirescam import hires_cam, normalise_maps
from signvision.training.calibrate import predicted
from signvision.training.runtime import pick_device


def target_indices(members: list[RunModel], target, n: int) -> np.ndarray | None:
    """`target` (None, a class name, an index, or one of those per image) as class indices (N,), or None."""
    if target is None:
        return None
    names = members[0].task.names
    targets = list(target) if isinstance(target, (list, tuple, np.ndarray)) else [target] * n
    out = []
    for t in targets:
        if isinstance(t, str):
            if t not in names:
                raise OptionError(f"not one of the run's classes ({', '.join(names)})", option="target", value=t)
            out.append(names.index(t))
        else:
            if not 0 <= int(t) < len(names):
                raise OptionError(f"expected a class index below {len(names)}", option="target", value=t)
            out.append(int(t))
    if len(out) != n:
        raise OptionError(f"{len(out)} targets for {n} images", option="target")
    return np.array(out)


def explain_batch(members: list[RunModel], runtimes, images: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """uint8 images (B, 3, S, S) at the run's input size -> heatmaps (B, S, S) for the classes `target` (B,)."""
    per_part: dict[int, int] = {}
    for m in members:
        per_part[m.part] = per_part.get(m.part, 0) + 1
    weights = list(getattr(members, "weights", []))
    if len(weights) <= max(per_part):  # a plain list of members: every part weighs the same
        weights = [1.0] * (max(per_part) + 1)
    total_weight = sum(weights[p] for p in per_part)
    total = torch.zeros(images.shape[0], *images.shape[-2:])
    for m, runtime in zip(members, runtimes):
        x = runtime.prepare(fit_size(images, m.cfg.image_size))
        cam = hires_cam(m.model, x, target.to(x.device)).float().cpu()  # (B, s, s)
        if cam.shape[-1] != images.shape[-1]:
            cam = torch.nn.functional.interpolate(cam[:, None], size=images.shape[-2:], mode="bilinear")[:, 0]
        total += cam * weights[m.part] / total_weight / per_part[m.part]
    return normalise_maps(total).numpy()


def explain_arrays(
    members: list[RunModel], arrays: list[np.ndarray], target=None, *, device: str = "auto", batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB uint8 images -> (heatmaps (N, S, S) float32 in [0, 1], the run's probabilities, the class each
    heatmap is for), S the run's input size. `target`: None (the predicted class), a class name or index, or
    one per image."""
    dev = pick_device(device)
    size = input_size(members)
    for m in members:
        m.model.to(dev).eval()
    runtimes = [runtime_for(m, dev) for m in members]
    asked = target_indices(members, target, len(arrays))
    maps, probs, targets = [], [], []
    for start in range(0, len(arrays), batch_size):
        chunk = np.stack([resize(a, size) for a in arrays[start : start + batch_size]])
        images = torch.from_numpy(chunk).permute(0, 3, 1, 2).contiguous()  # (B, 3, S, S) uint8
        p = ensemble_probs(members, runtimes, images)
        t = predicted(p)[0] if asked is None else asked[start : start + len(chunk)]
        maps.append(explain_batch(members, runtimes, images, torch.from_numpy(np.asarray(t))))
        probs.append(p)
        targets.append(np.asarray(t))
    if not maps:
        return np.zeros((0, size, size), np.float32), np.zeros((0,)), np.zeros((0,), int)
    return np.concatenate(maps).astype(np.float32), np.concatenate(probs), np.concatenate(targets)


def explainer(members: list[RunModel], picture, device: str = "auto"):
    """`explain(indices, targets)` -> heatmaps of images `picture(i)` for classes `targets`: what a page's
    gallery of mistakes calls for the few images it shows."""

    def explain(indices, targets) -> np.ndarray:
        return explain_arrays(members, [picture(int(i)) for i in indices], list(targets), device=device)[0]

    return explain


def hide(images: np.ndarray, maps: np.ndarray, share: float) -> np.ndarray:
    """Images (N, S, S, 3) with the `share` of pixels each map (N, S, S) ranks highest hidden: replaced by a
    heavily blurred copy of the image (Gaussian, sigma S/8), which removes the detail there without painting a
    patch the model never saw (a grey patch anywhere is itself a strong signal to a model)."""
    import cv2

    out = images.copy()
    k = max(1, int(round(share * maps[0].size)))
    sigma = images.shape[1] / 8
    for i, m in enumerate(maps):
        top = np.argsort(-m.ravel(), kind="stable")[:k]
        blurred = cv2.GaussianBlur(images[i], (0, 0), sigma)
        out[i].reshape(-1, 3)[top] = blurred.reshape(-1, 3)[top]
    return out


def hiding_test(members: list[RunModel], arrays: list[np.ndarray], *, share: float = 0.2, device: str = "auto") -> dict:
    """Whether the heatmaps are faithful: the mean drop of the predicted class's probability when the top
    `share` of each image's own heatmap is hidden (`hide`), against hiding the top `share` of another image's
    heatmap (the image half the list away: as many pixels, in places that mattered elsewhere)."""
    maps, probs, target = explain_arrays(members, arrays, device=device)
    size = maps.shape[-1]
    images = np.stack([resize(a, size) for a in arrays])
    rows = np.arange(len(target))

    def p_target(p):
        return np.where(target == 1, p, 1 - p) if p.ndim == 1 else p[rows, target]

    def after(hidden):
        return p_target(explain_arrays(members, list(hidden), target, device=device)[1])

    before = p_target(probs)
    own = after(hide(images, maps, share))
    other = after(hide(images, np.roll(maps, len(maps) // 2, axis=0), share))
    return {
        "images": len(target),
        "share": share,
        "own_drop": float((before - own).mean()),
        "other_drop": float((before - other).mean()),
    }


def write_explain_page(
    out: Path, ids: list[str], arrays: list[np.ndarray], maps: np.ndarray, probs: np.ndarray, target, names
) -> Path:
    """OUT/explain.html: each image beside its heatmap overlay, with the class explained and its probability."""
    from signvision.reports.heatmaps import overlay
    from signvision.reports.html import escape, thumbnail_tag, write_page

    cells = []
    size = maps.shape[-1]
    for i, img_id in enumerate(ids):
        p = probs[i] if probs.ndim == 1 else probs[i, target[i]]
        p = p if probs.ndim > 1 or target[i] == 1 else 1 - p
        shown = resize(arrays[i], size)
        cells.append(
            f"<figure>{thumbnail_tag(None, shown, 128, 'image')}"
            f"{thumbnail_tag(None, overlay(shown, maps[i]), 128, 'heatmap')}"
            f"<figcaption>{escape(img_id)}<br>{escape(names[target[i]])} {p:.3f}</figcaption></figure>"
        )
    style = "figure{display:inline-block;margin:6px;text-align:center;font-size:12px}"
    body = (
        "<p>Class-activation heatmaps (HiResCAM, a close relative of Grad-CAM): red is where the evidence for the "
        "class shown came from, "
        f"blue where none did; {len(ids)} images.</p>" + "".join(cells)
    )
    return write_page(Path(out) / "explain.html", "signvision explain", body, style)

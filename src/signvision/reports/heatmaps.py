"""Heatmaps drawn over images: what every page that shows where a model looked uses.

overlay      an RGB image and a heatmap in [0, 1] -> the image with the heatmap in colour on top (JET:
             red where the evidence came from, blue where none did)
side_by_side an image and its overlay in one picture, for a gallery cell
"""

from __future__ import annotations

import numpy as np


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 (H, W, 3) and a heatmap (h, w) in [0, 1] -> RGB uint8 (H, W, 3), the heatmap in JET colours
    blended over the image (the heatmap is resized to the image)."""
    import cv2

    h, w = image.shape[:2]
    heat = cv2.resize(np.clip(heatmap, 0, 1).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]  # BGR -> RGB
    return np.clip((1 - alpha) * image.astype(np.float32) + alpha * colour, 0, 255).astype(np.uint8)


def side_by_side(image: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """The image and its overlay next to each other, (H, 2W + 2, 3), with a white 2-pixel gap."""
    gap = np.full((image.shape[0], 2, 3), 255, np.uint8)
    return np.concatenate([image, gap, overlay(image, heatmap)], axis=1)

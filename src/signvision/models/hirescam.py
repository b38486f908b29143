"""Class-activation heatmaps: where in an image a CNN's decision came from.

HiResCAM (Draelos & Carin, 2020, "Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional
neural networks", https://arxiv.org/abs/2011.08891), the close relative of Grad-CAM (Selvaraju et al., 2017,
https://arxiv.org/abs/1610.02391), written out here because it is short and is the lesson:

1. run the image forward and keep the activations A (B, C, h, w) of the last convolution layer that still
   has a spatial map (more than 1 x 1): its channels are the most abstract features that still know *where*;
2. take the gradient G of the class score (its logit) with respect to A: how much each feature at each place
   raises that score;
3. multiply G and A element by element and sum over channels (the evidence for the class at each place),
   keep the positive part, enlarge to the input size and scale to [0, 1].

Grad-CAM averages G over the map first (one weight per channel). For a model that ends in global average
pooling and one linear layer (ResNets, EfficientNets) the two maps are the same; for LeNet, whose fully
connected layers read every position with its own weights, averaging blurs where the evidence was, and the
element-wise product is what the logit really sums (measured: hiding the top 20% of a LeNet's Grad-CAM
lowered the predicted class's probability *less* than hiding another image's; HiResCAM's lowers it twice as
much, tests/test_sign_digits.py). It needs nothing of the model but convolutions, so the same function
serves LeNet and every timm CNN (pytorch-grad-cam and Captum hold more variants; one small function serves
the course better).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from signvision.errors import OptionError


def last_spatial_conv(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `model` on x and return (logits, the output of the last Conv2d that ran with a map larger than
    1 x 1). The output is taken as autograd sees it at the end (after an in-place ReLU, if one followed)."""
    outputs: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    spatial = [a for a in outputs if a.ndim == 4 and a.shape[-1] * a.shape[-2] > 1]
    if not spatial:
        raise OptionError(
            "has no convolution layer with a spatial map: a class-activation heatmap needs one", option="model"
        )
    return logits, spatial[-1]


def hires_cam(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Heatmaps (B, H, W) in [0, 1] for normalised inputs x (B, 3, H, W): HiResCAM of class `target` (B,) (the
    predicted class when None; for one output, 1 is the positive class and 0 the negative).

    Example:
        >>> from signvision.models.lenet import LeNet
        >>> hires_cam(LeNet(3, image_size=32).eval(), torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 32, 32])
    """
    model.eval()
    with torch.enable_grad():
        logits, activations = last_spatial_conv(model, x)  # (B, K), (B, C, h, w)
        if logits.shape[1] == 1:  # one output: its logit speaks for the positive class, against the negative
            target = (logits[:, 0] > 0).long() if target is None else target
            score = logits[:, 0] * (2 * target.to(logits.device) - 1)
        else:
            target = logits.argmax(1) if target is None else target
            score = logits.gather(1, target.to(logits.device).view(-1, 1))[:, 0]
        (grads,) = torch.autograd.grad(score.sum(), activations)
    cam = F.relu((grads * activations).sum(1, keepdim=True)).detach()  # (B, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]  # (B, H, W)
    return normalise_maps(cam)


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map (B, H, W) to [0, 1] by its maximum (a map that is zero everywhere stays zero)."""
    top = maps.flatten(1).max(1).values.clamp_min(1e-12).view(-1, 1, 1)
    return (maps.clamp_min(0) / top).clamp(0, 1)

"""LeNet-5, written out layer by layer: two convolution + pooling stages, then three fully connected layers.

The course's first CNN. Its defaults (64 px inputs, width 4) are the training defaults of `TrainConfig`, so
that `LeNet(K)` is the network `signvision train --model lenet` trains; `width=1` is the paper's.
"""

from __future__ import annotations

import torch
from torch import nn

from signvision.config import TrainConfig
from signvision.errors import OptionError


class LeNet(nn.Module):
    """LeNet-5 (LeCun et al., 1998, "Gradient-based learning applied to document recognition"): two convolution +
    pooling stages, then three fully connected layers, with ReLU for the original tanh and Dropout between the
    fully connected layers. Any input size, channel count and number of outputs.

    Args:
        num_outputs: K for K classes, 1 for a binary task.   in_chans: input channels.
        image_size: the input side (>= 12; 64 by default, as for training).
        width: scales the channel counts (1 = the paper's 6 and 16; 4 by default, as for training).
        dropout: between the fully connected layers.

    Example:
        >>> LeNet(10, image_size=32)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        num_outputs: int,
        *,
        in_chans: int = 3,
        image_size: int = TrainConfig.image_size,
        width: int = TrainConfig.lenet_width,
        dropout: float = 0.3,
    ):
        super().__init__()
        c1, c2 = 6 * width, 16 * width
        # Each stage pools, then applies the non-linearity, as the paper's subsampling layers S2 and S4 do (average,
        # then sigmoid). With max pooling and ReLU the order changes nothing computed (ReLU keeps the order of
        # values, so max then ReLU = ReLU then max, gradients included) but ReLU runs on a quarter of the values:
        # the audit's 5-fold LeNet 1.14x faster on 2 cores (docs/benchmarks.md). Checkpoints load either way.
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, c1, kernel_size=5, padding=2),  # (B, c1, S, S)
            nn.MaxPool2d(2),  # (B, c1, S/2, S/2)
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, kernel_size=5),  # (B, c2, S/2-4, S/2-4)
            nn.MaxPool2d(2),  # (B, c2, (S/2-4)/2, ...)
            nn.ReLU(inplace=True),
        )
        side = (image_size // 2 - 4) // 2
        if side < 1:
            raise OptionError("LeNet needs at least 12 pixels", option="image_size", value=image_size)
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, c2*side*side)
            nn.Linear(c2 * side * side, 120 * width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(120 * width, 84 * width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(84 * width, num_outputs),  # (B, num_outputs) logits
        )
        # timm-like attributes so that the rest of the code treats both kinds of model alike
        self.pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}

    def get_classifier(self) -> nn.Module:
        return self.classifier[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

"""Building a model: LeNet (lenet.py) or any timm backbone with a new linear head; listing names; local weights.

`build_model(name, num_outputs)` is the one entry point. `lenet` is ours; every other name goes to
`timm.create_model(name, num_classes=num_outputs)`, which replaces the backbone's classifier with a
freshly initialised linear layer (one output for a binary task). Pretrained weights come from timm's
hub (`pretrained=True`, online) or from a local file (`load_weights`, offline), the file being a timm
`.safetensors`/`.pth` state dict or a signvision run's `best.pt`; a head whose shape does not fit the
new task is dropped and trained from scratch.
"""

from __future__ import annotations

import difflib
import fnmatch
import types
from pathlib import Path

import torch
from torch import nn

from signvision.config import TrainConfig
from signvision.errors import DataError, MissingError, OptionError
from signvision.models.lenet import LeNet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def timm_module():
    """timm, imported when a timm model is first asked for (LeNet needs neither it nor torchvision, which it
    imports: about 4 s of every LeNet command's start), whole even if Ctrl-C comes meanwhile."""
    from signvision.imports import TIMM, import_heavy

    import_heavy(TIMM)
    import timm

    return timm


def available_models(pattern: str = "") -> list[str]:
    """Model names: `lenet` plus timm's names matching a wildcard pattern (a bare word matches anywhere).

    Args:
        pattern: "resnet*", "efficientnet_b?", or a bare word such as "lite".

    Returns:
        the names, `lenet` first when it matches.

    Example:
        >>> "resnet18" in list_models("resnet18")
        True
    """
    pattern = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
    return [n for n in ["lenet"] if fnmatch.fnmatch(n, pattern)] + timm_module().list_models(pattern)


def check_model_name(name: str) -> None:
    """One line naming close matches for an unknown model name (before any data is read)."""
    if name == "lenet":
        return
    known = timm_module().list_models()
    if name not in known and name.split(".")[0] not in known:
        close = difflib.get_close_matches(name, ["lenet"] + known, n=4, cutoff=0.6)
        hint = f"; close matches: {', '.join(close)}" if close else "; `signvision models PATTERN` lists names"
        raise OptionError(f"unknown model{hint}", option="model", value=name)


def check_model(cfg: TrainConfig) -> None:
    """A checked config's model settings, before any data is read: the name (close matches named), and
    `freeze_blocks` against the backbone's stages (its skeleton built on PyTorch's meta device: no memory, no
    weights, a fraction of a second)."""
    check_model_name(cfg.model)
    if cfg.freeze_blocks > 0:
        with torch.device("meta"):
            model = build_model(cfg.model, 2, image_size=cfg.image_size, lenet_width=cfg.lenet_width)
        freeze_first_blocks(model, cfg.freeze_blocks)


def build_model(
    name: str,
    num_outputs: int,
    *,
    image_size: int = TrainConfig.image_size,
    in_chans: int = 3,
    pretrained: bool = False,
    lenet_width: int = TrainConfig.lenet_width,
) -> nn.Module:
    """LeNet or any timm backbone with a new `num_outputs`-way linear head.

    Args:
        name: "lenet" or a timm model name (`list_models("resnet*")`).
        num_outputs: K for K classes, 1 for a binary task.   image_size: LeNet's input side.
        pretrained: timm's hub weights (online).   lenet_width: LeNet's channel multiplier.

    Returns:
        a torch.nn.Module whose output is (B, num_outputs) logits.

    Example:
        >>> build_model("resnet18", 1).get_classifier().out_features
        1
    """
    if not isinstance(num_outputs, int) or num_outputs < 1:
        raise OptionError("must be a whole number of at least 1", option="num_outputs", value=num_outputs)
    if name == "lenet":
        if pretrained:
            raise OptionError("there are no pretrained LeNet weights; use `weights` FILE", option="pretrained")
        return LeNet(num_outputs, in_chans=in_chans, image_size=image_size, width=lenet_width)
    check_model_name(name)
    try:
        return timm_module().create_model(name, pretrained=pretrained, num_classes=num_outputs, in_chans=in_chans)
    except Exception as e:  # no network, hub unreachable, no weights published for this name
        if pretrained:
            raise OptionError(
                f"could not fetch {name} weights from timm's hub ({type(e).__name__}); offline, download them "
                "elsewhere and pass `weights` FILE",
                option="pretrained",
            ) from None
        raise


def model_norm(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std the model's pretrained weights expect (timm's pretrained_cfg), ImageNet's if unset."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))


def classifier_prefixes(model: nn.Module) -> list[str]:
    """State-dict prefixes of the final linear layer (the head that fine-tuning may replace)."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    return [n for n, m in model.named_modules() if head is not None and m is head]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, a timm .pth/.bin, or a signvision checkpoint (its 'model' entry).
    `torch.load(weights_only=True)`: a downloaded file cannot run code."""
    path = Path(path)
    if path.is_dir():
        raise OptionError(
            "is a folder; give a weights file (.safetensors, .pth or a run's best.pt)", option="weights", value=path
        )
    if not path.is_file():
        raise MissingError("file not found", option="weights", value=path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise OptionError(
            f"not a weights file this can read safely ({type(e).__name__})", option="weights", value=path
        ) from None
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise DataError("holds no state dict of named tensors", option="weights", value=path)
    return {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in obj.items()}


def load_weights(model: nn.Module, path: str | Path) -> dict:
    """Load the tensors of `path` into `model`, and say what happened.

    Tensors are matched by name; a file saved under other key names (e.g. efficientnet_pytorch's
    `_conv_stem.weight`, `_blocks.0...` for timm's `conv_stem.weight`, `blocks.0.0...`) is matched by
    order instead, with timm's `remap_state_dict`, when every tensor's shape lines up in order. Either
    way a head whose shape does not fit the new task is left out and trained from scratch.

    Args:
        model: the model to load into.   path: a .safetensors/.pth file or a signvision best.pt.

    Returns:
        {"loaded", "dropped", "dropped_what" (in words), "new", "unknown", "remapped"}.

    Example:
        >>> from signvision.config import packaged_weights
        >>> model = build_model("tf_efficientnet_lite0", 10)          # a new 10-class head
        >>> load_weights(model, packaged_weights("tf_efficientnet_lite0"))["dropped_what"]   # ImageNet's 1,000 classes
        'the old head'
    """
    state = read_state_dict(path)
    own = model.state_dict()
    by_name = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    remapped = False
    if len(by_name) < 0.5 * len(state):
        by_order = _remap_by_order(model, state, path)
        if by_order is not None:
            state, remapped = by_order, True
    loadable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    dropped = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
    unknown = sorted(k for k in state if k not in own)
    if not loadable or len(unknown) > len(loadable):
        example = f" (e.g. {unknown[0]!r})" if unknown else ""
        raise DataError(
            f"its tensors neither match this model's names nor line up with its shapes in order{example}; is it "
            f"for another architecture than {type(model).__name__}?",
            option="weights",
            value=path,
        )
    model.load_state_dict(loadable, strict=False)
    new = sorted(k for k in own if k not in loadable)
    heads = tuple(f"{p}." for p in classifier_prefixes(model))
    if all(k.startswith(heads) for k in dropped):
        what = "the old head"
    else:
        shown = ", ".join(k for k in dropped if not k.startswith(heads))
        what = f"not only the head: {shown[:120]}; the file's model differs (another image size or width?)"
    return {
        "loaded": sorted(loadable),
        "dropped": dropped,
        "dropped_what": what,
        "new": new,
        "unknown": unknown,
        "remapped": remapped,
    }


def _remap_by_order(model: nn.Module, state: dict, path) -> dict | None:
    """The file's tensors renamed to the model's keys by position (timm's remap_state_dict), for the
    backbone; the file's remaining tensors are taken as its head. None when the shapes do not line up."""
    from types import SimpleNamespace

    from timm.models._helpers import remap_state_dict

    heads = tuple(f"{p}." for p in classifier_prefixes(model))
    for skip_counters in (False, True):  # some files leave out BatchNorm's num_batches_tracked
        keep = (lambda k: not k.endswith("num_batches_tracked")) if skip_counters else (lambda k: True)
        body = {k: v for k, v in model.state_dict().items() if not k.startswith(heads) and keep(k)}
        items = [(k, v) for k, v in state.items() if keep(k)]
        if len(items) < len(body):
            continue
        file_body, file_head = dict(items[: len(body)]), items[len(body) :]
        if any(a.shape != b.shape for a, b in zip(body.values(), file_body.values())):
            continue
        try:
            remapped = remap_state_dict(file_body, SimpleNamespace(state_dict=lambda body=body: body), False)
        except AssertionError:
            continue
        head_keys = [k for k in model.state_dict() if k.startswith(heads)]
        if len(file_head) == len(head_keys):
            remapped.update({k: v for k, (_, v) in zip(head_keys, file_head)})  # shape checked by the caller
        return remapped
    return None


def set_backbone_trainable(model: nn.Module, trainable: bool) -> None:
    """Freeze (or unfreeze) everything but the final classifier, for `--freeze-backbone-epochs` (what
    `freeze_first_blocks` froze stays frozen)."""
    heads = {f"{p}." for p in classifier_prefixes(model)}
    kept_frozen = tuple(f"{m}." for m in getattr(model, "frozen_modules", ()))
    for name, param in model.named_parameters():
        if not name.startswith(kept_frozen):
            param.requires_grad = trainable or any(name.startswith(h) for h in heads)


def freeze_first_blocks(model: nn.Module, blocks: int) -> list[str]:
    """Keep a timm backbone's stem and its first `blocks` stages at their loaded weights, for `--freeze-blocks`:
    their parameters stop learning and their BatchNorm layers always normalise with the stored statistics
    (`keep_in_eval_mode`). No gradient flows back through them, so their backward pass is skipped: the early
    stages work at the highest resolution, and on EfficientNet-Lite0 at 128 px the backward pass of the stem
    and first two stages is about 45% of a training step (docs/benchmarks.md). The stages are timm's own
    (`model.group_matcher(coarse=True)`); timm's last group (the head's side) always trains. The state dict keeps its
    keys: a run's checkpoint loads with or without the freezing.

    Returns:
        the frozen modules' names (also kept as `model.frozen_modules`).

    Example:
        >>> model = build_model("tf_efficientnet_lite0", 9)
        >>> freeze_first_blocks(model, 2)[:2], model.conv_stem.weight.requires_grad
        (['conv_stem', 'bn1'], False)
    """
    if blocks <= 0:
        return []
    matcher = getattr(model, "group_matcher", None)
    if matcher is None:
        raise OptionError("needs a timm backbone (a stem and stages); LeNet has none", option="freeze_blocks")
    timm_module()
    from timm.models import group_modules

    groups = group_modules(model, matcher(coarse=True))  # {0: the stem's modules, 1: the first stage's, ...}
    order = sorted(groups)
    if blocks > len(order) - 2:
        raise OptionError(
            f"this backbone has {len(order) - 2} stages that may be frozen after its stem",
            option="freeze_blocks",
            value=blocks,
        )
    names = [name for group in order[: blocks + 1] for name in groups[group]]
    for name in names:
        module = model.get_submodule(name)
        module.requires_grad_(False)
        for part in module.modules():
            if isinstance(part, nn.modules.batchnorm._BatchNorm):
                keep_in_eval_mode(part)
    model.frozen_modules = names
    return names


def keep_in_eval_mode(module: nn.Module) -> None:
    """Make `module` stay in evaluation mode whatever `model.train()` later says (a frozen BatchNorm: the stored
    statistics, PyTorch's own fused kernel; timm's FrozenBatchNorm2d computes the same in four unfused
    operations, which made a frozen Lite0 step slower than an unfrozen one on a CPU)."""
    module.eval()
    module.train = types.MethodType(lambda self, mode=True: self, module)

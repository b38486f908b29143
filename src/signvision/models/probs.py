"""Probabilities: how several sets of them become one, and how a temperature softens or sharpens them. The
one vocabulary that test-time views, the folds of a run, the runs of an ensemble, `serve` and the exported
ONNX graph all use (one table of merge names and one resolver, as timm's `layers/create_act.py` has for
activations).

    MERGES        the merge names: "mean" (the weighted arithmetic mean) and "geometric" (the weighted mean of
                  log probabilities, renormalised; "gmean" is the same)
    get_merge     a merge name -> its canonical name (an OptionError naming the option for anything else)
    merge_probs   several models' (or views') probabilities of the same images -> one set, then a temperature
    scaled_probs      logits at a temperature: softmax(z / T), or sigmoid(z / T) for one output

A temperature T > 1 softens the probabilities and T < 1 sharpens them; it never changes which class ranks
first. On probabilities p (a merge's) it is p^(1/T) renormalised, which is `scaled_probs(log p, T)`.
"""

from __future__ import annotations

import numpy as np
import torch

from signvision.errors import OptionError

MERGES = {"mean": "the weighted arithmetic mean", "geometric": "the weighted geometric mean, renormalised"}
ALIASES = {"gmean": "geometric", "arithmetic": "mean"}  # names the config files of earlier runs hold


def get_merge(name: str, option: str = "merge") -> str:
    """The canonical merge name for `name` ("gmean" -> "geometric").

    Example:
        >>> get_merge("gmean"), get_merge("mean")
        ('geometric', 'mean')
    """
    resolved = ALIASES.get(name, name) if isinstance(name, str) else name
    if resolved not in MERGES:
        raise OptionError(f"expected one of {', '.join(MERGES)}", option=option, value=name)
    return resolved


def scaled_probs(logits, temperature: float | None = None):
    """Logits at a temperature: (N, K) -> softmax(logits / T) (rows sum to 1); (N, 1) -> (N,) sigmoid(logit / T).
    Torch tensors or numpy arrays (float64 numpy in, numpy out). None: T = 1.

    Example:
        >>> scaled_probs(np.array([[2.0, 0.0]]), 2.0).round(3).tolist()
        [[0.731, 0.269]]
    """
    numpy = not isinstance(logits, torch.Tensor)
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64)) if numpy else logits
    z = z if z.dtype == torch.float64 else z.float()  # float32 at least (bf16 or half logits under autocast)
    z = z / (temperature or 1.0)
    out = torch.sigmoid(z[:, 0]) if z.shape[1] == 1 else torch.softmax(z, dim=1)
    return out.numpy() if numpy else out


def merge_probs(parts: list, weights=None, merge: str = "mean", temperature: float | None = None):
    """Several sets of probabilities of the same images -> one: the weighted arithmetic ("mean") or geometric
    ("geometric") mean, then one temperature on top (p^(1/T), renormalised).

    Args:
        parts: torch tensors or numpy arrays, (N, K) probabilities or (N,) P(positive) each.
        weights: one non-negative weight per part (normalised; None: equal).   merge: a name of MERGES.
        temperature: None leaves the merged probabilities as they are.

    Example:
        >>> merge_probs([np.array([[0.9, 0.1]]), np.array([[0.5, 0.5]])]).round(2).tolist()
        [[0.7, 0.3]]
    """
    merge = get_merge(merge)
    numpy = not isinstance(parts[0], torch.Tensor)
    ps = [torch.tensor(p, dtype=torch.float64) if numpy else p for p in parts]  # a copy: read-only arrays too
    binary = ps[0].ndim == 1
    if binary:
        ps = [torch.stack([1 - p, p], 1) for p in ps]
    weights = [1.0] * len(ps) if weights is None else weights
    w = [float(x) / float(sum(weights)) for x in weights]
    if merge == "mean" and temperature is None:
        out = sum(wi * p for wi, p in zip(w, ps))
    else:
        if merge == "geometric":
            logp = sum(wi * torch.log(p.clamp_min(1e-7)) for wi, p in zip(w, ps))
        else:
            logp = torch.log(sum(wi * p for wi, p in zip(w, ps)).clamp_min(1e-7))
        out = scaled_probs(logp, temperature)
    out = out[:, 1] if binary else out
    return out.numpy() if numpy else out

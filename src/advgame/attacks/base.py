"""What every attack shares: argument checks, the model in eval mode, checked logits."""

from __future__ import annotations

import torch
from torch import nn

from advgame.attacks.gradient import _check_logits
from advgame.threat import Norm, parse_norm
from advgame.validate import check_images, check_labels, check_nonnegative


def check_attack_args(x: object, y: object, eps: object,
                      norm: object) -> tuple[torch.Tensor, Norm, float]:
    """(x detached, the norm, eps as a float) after checking x in [0, 1], labels and eps.

    Example:
        >>> check_attack_args(torch.zeros(2, 3), torch.tensor([0, 1]), 0.1, "linf")[1:]
        ('inf', 0.1)
    """
    xt = check_images("x", x)
    check_labels("y", y, xt.shape[0])
    return xt.detach(), parse_norm(norm), check_nonnegative("eps", eps)


def checked_logits(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """model(x) without gradients, checked to be logits (N, K >= 2) matching the labels."""
    with torch.no_grad():
        logits = model(x)
    _check_logits(logits, y)
    return logits

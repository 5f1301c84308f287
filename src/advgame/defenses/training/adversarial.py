"""Online adversarial training (Goodfellow et al. 2015): FGSM examples recomputed per
batch against the current model and detached."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from advgame.attacks.gradient import fgm
from advgame.models.training import TrainConfig, TrainHistory, train
from advgame.validate import check_nonnegative

__all__ = [
    "adversarial_training",
]


def adversarial_training(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
    config: TrainConfig,
    *,
    with_clean: bool = False,
    generator: torch.Generator,
    progress: Callable[[int, float], None] | None = None,
) -> TrainHistory:
    """Online adversarial training: each batch replaced by FGSM examples against the current u.

    min_u E l(h(z; u), y) with z = FGSM(x; u) recomputed per batch but *detached*
    (dz/du ignored, Goodfellow et al. 2015) — the baseline Sens-FGSM is compared with.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(8, 1, 2, 2); y = torch.randint(0, 2, (8,))
        >>> len(adversarial_training(model, x, y, 0.1, TrainConfig(epochs=1),
        ...                          generator=torch.Generator()).loss)
        1
    """
    eps = check_nonnegative("eps", eps)

    def perturb(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return fgm(m, xb, yb, eps, "inf")

    return train(model, x, y, config, generator=generator, perturb=perturb,
                 keep_clean=with_clean, progress=progress)

"""Small ReLU-only classifiers, so that local linearization is exact.

A ReLU network is piecewise affine: on the activation region of x, g(z) = w(x).z + b(x).
``MLP`` and ``SmallCNN`` use only Linear/Conv2d, ReLU and Flatten (no batch norm, no
pooling other than strided convolutions) to keep that property; ``LinearModel`` is the
affine classifier for closed-form tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from advgame.errors import InputError
from advgame.rng import init_parameters


class MLP(nn.Sequential):
    """Flatten -> [Linear -> ReLU] x len(hidden) -> Linear(num_classes).

    Shape: (N, *input_shape) -> (N, num_classes).

    Example:
        >>> MLP((1, 28, 28), 10, hidden=(64,))(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (256, 256)
    ) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)


class SmallCNN(nn.Sequential):
    """Two strided 3x3 conv layers (ReLU), then an MLP head. ReLU-only, piecewise affine.

    Shape: (N, C, H, W) -> (N, num_classes).
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (16, 32),
        head: int = 128,
    ) -> None:
        c, h, w = input_shape
        layers: list[nn.Module] = []
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 3, stride=2, padding=1), nn.ReLU()]
            c, h, w = ch, (h + 1) // 2, (w + 1) // 2
        layers += [nn.Flatten(), nn.Linear(c * h * w, head), nn.ReLU()]
        layers.append(nn.Linear(head, num_classes))
        super().__init__(*layers)


class LinearModel(nn.Sequential):
    """Affine classifier Flatten -> Linear(num_classes). Shape: (N, ...) -> (N, num_classes)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "mlp": MLP, "cnn": SmallCNN, "linear": LinearModel,
}


def build_model(
    arch: str, input_shape: Sequence[int], num_classes: int, *,
    generator: torch.Generator | None = None, **kwargs: object
) -> nn.Module:
    """Instantiate a named architecture (``mlp``, ``cnn``, ``linear``).

    ``generator``: draw the initial weights from it (PyTorch's default initialization,
    :func:`advgame.rng.init_parameters`; a CPU generator, build on the CPU then move);
    None: from torch's global RNG, as ``nn.Linear`` does.

    Example:
        >>> build_model("cnn", (1, 28, 28), 2)(torch.zeros(1, 1, 28, 28)).shape
        torch.Size([1, 2])
        >>> a, b = (build_model("mlp", (4,), 2, generator=torch.Generator().manual_seed(0))
        ...         for _ in range(2))
        >>> all(bool((p == q).all()) for p, q in zip(a.parameters(), b.parameters()))
        True
    """
    if arch not in ARCHITECTURES:
        raise InputError("arch", f"unknown architecture {arch!r}; choose from "
                         f"{', '.join(ARCHITECTURES)}")
    if arch == "cnn" and len(input_shape) != 3:
        raise InputError("arch", f"cnn needs (C, H, W) inputs, got shape {tuple(input_shape)}")
    if num_classes < 2:
        raise InputError("num_classes", f"must be >= 2, got {num_classes}")
    for key in ("hidden", "channels"):
        if key in kwargs and kwargs[key] is not None:
            kwargs[key] = tuple(int(v) for v in kwargs[key])  # type: ignore[attr-defined]
    model = ARCHITECTURES[arch](tuple(input_shape), num_classes, **kwargs)
    return model if generator is None else init_parameters(model, generator)

"""One unit-seed scheme: every unit of work draws from a generator of (run seed, unit key).

A run is split into units (a trained model, a table cell, a shard of test points). Each
unit seeds its own generator from the run's seed and the unit's key alone, so a unit gives
the same bits whether it runs first or last, on rank 0 or rank 3, in a fresh run or in one
resumed after an interruption:

    unit_seed(seed, key) = (seed * 1_000_003 + k(key)) mod 2^62,
    k(key) = crc32(key) for a text key, k(key) = key for an integer key (a shard index).

Library functions never seed anything themselves: they take a ``torch.Generator``; the
experiments build those generators here.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["init_parameters", "seeded_init", "unit_generator", "unit_seed"]

_MOD = 2 ** 62


def unit_seed(seed: int, key: str | int) -> int:
    """The seed of one unit: ``(seed * 1_000_003 + k(key)) mod 2^62`` (module docstring).

    Example:
        >>> unit_seed(0, "a") == unit_seed(0, "a") != unit_seed(1, "a")
        True
        >>> unit_seed(2, 5)
        2000011
    """
    k = zlib.crc32(key.encode()) if isinstance(key, str) else int(key)
    return (int(seed) * 1_000_003 + k) % _MOD


def unit_generator(seed: int, key: str | int, device: torch.device | str | None = None
                   ) -> torch.Generator:
    """A fresh generator on ``device`` (default CPU) seeded by :func:`unit_seed`.

    Example:
        >>> a = torch.rand(2, generator=unit_generator(0, "k"))
        >>> bool((a == torch.rand(2, generator=unit_generator(0, "k"))).all())
        True
    """
    dev = torch.device("cpu" if device is None else device)
    g = torch.Generator(device=dev) if dev.type != "cpu" else torch.Generator()
    return g.manual_seed(unit_seed(seed, key))


@contextlib.contextmanager
def seeded_init(seed: int, key: str) -> Iterator[None]:
    """Build modules under torch's global RNG seeded by ``unit_seed(seed, "init-" + key)``,
    then restore the global RNG (for constructors that draw their initial weights from it).

    Example:
        >>> with seeded_init(0, "net"):
        ...     a = nn.Linear(3, 2)
        >>> with seeded_init(0, "net"):
        ...     b = nn.Linear(3, 2)
        >>> bool((a.weight == b.weight).all())
        True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(unit_seed(seed, "init-" + key))
        yield


def init_parameters(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialize every Linear / Conv layer as PyTorch does by default, from ``generator``.

    Weights ~ kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and
    biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the generator must live on the
    parameters' device (build on the CPU, initialize, then move). Returns ``module``.

    Example:
        >>> a = init_parameters(nn.Linear(3, 2), torch.Generator().manual_seed(0))
        >>> b = init_parameters(nn.Linear(3, 2), torch.Generator().manual_seed(0))
        >>> bool((a.weight == b.weight).all())
        True
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                if m.bias is not None:
                    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
                    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    m.bias.uniform_(-bound, bound, generator=generator)
    return module

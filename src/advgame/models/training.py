"""Supervised training and evaluation of classifiers (clean or with an input transform).

``train`` runs mini-batch SGD/Adam on cross-entropy; an optional ``perturb(model, x, y)``
callback maps each batch to the inputs actually trained on (adversarial training), so that
attack code stays in ``advgame.attacks`` and training stays here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from advgame.errors import InputError
from advgame.progress import progress_bar
from advgame.validate import check_labels, check_positive_int, check_tensor

Perturb = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Training hyper-parameters.

    Attributes:
        epochs: passes over the training set.
        batch_size: mini-batch size.
        lr: Adam learning rate.
        weight_decay: L2 penalty.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0


@dataclass
class TrainHistory:
    """Per-epoch mean training loss and accuracy."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)


def train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor,
    config: TrainConfig,
    *,
    generator: torch.Generator,
    perturb: Perturb | None = None,
    keep_clean: bool = False,
    progress: bool | Callable[[int, float], None] | None = False,
    data_parallel: bool = False,
) -> TrainHistory:
    """Train ``model`` in place on (x, y) with Adam and cross-entropy.

    Args:
        model: classifier (N, ...) -> (N, K) logits.
        x: (N, ...) inputs. y: (N,) labels in [0, K).
        config: :class:`TrainConfig`.
        generator: shuffles the batches (CPU generator).
        perturb: optional map of a batch to the inputs trained on (e.g. FGSM examples).
        keep_clean: with ``perturb``, train on the clean and perturbed batch together.
        progress: ``True`` reports the batches done (with the epoch and its mean loss)
            on stderr -- a tqdm bar on a terminal, a plain line every 10% in a log file
            (:func:`advgame.progress.progress_bar`; under torchrun on rank 0 only); a
            callable is called as ``progress(epoch, mean_loss)`` after each epoch;
            ``False``/``None`` (default): silent.
        data_parallel: under torchrun, train with ``DistributedDataParallel``: every rank
            draws the same batch order (same generator seed) and takes rows
            ``rank::world_size`` of each batch; DDP averages the gradients, which equals
            the one-process gradient when the batch size is a multiple of world_size.

    Returns:
        :class:`TrainHistory`.

    Example:
        >>> from advgame.models import build_model
        >>> x, y = torch.rand(64, 1, 4, 4), torch.arange(64) % 2
        >>> model = build_model("mlp", (1, 4, 4), 2, hidden=(8,))
        >>> hist = train(model, x, y, TrainConfig(epochs=2, batch_size=16),
        ...              generator=torch.Generator().manual_seed(0))
        >>> len(hist.loss), model.training
        (2, False)
    """
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise InputError("progress", f"must be True, False or a callable, got {progress!r}")
    check_tensor("x", x, min_ndim=2)
    check_labels("y", y, x.shape[0])
    check_positive_int("epochs", config.epochs, minimum=0)
    check_positive_int("batch_size", config.batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    hist = TrainHistory()
    rank, world = 0, 1
    net: nn.Module = model
    if data_parallel and dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        if world > 1:
            net = DistributedDataParallel(model)
    n = x.shape[0]
    batches = -(-n // config.batch_size)
    bar = progress_bar(config.epochs * batches, "train", unit="batches",
                       enabled=progress is True and rank == 0)
    with bar:
        for epoch in range(config.epochs):
            order = torch.randperm(n, generator=generator).to(x.device)
            tot_loss, tot_correct = 0.0, 0
            for start in range(0, n, config.batch_size):
                idx = order[start:start + config.batch_size][rank::world]
                if idx.numel() == 0:  # more ranks than rows in this last batch
                    idx = order[start:start + 1]
                xb, yb = x[idx], y[idx]
                if perturb is not None:
                    xa = perturb(model, xb, yb).detach()
                    if keep_clean:
                        xb, yb = torch.cat([xb, xa]), torch.cat([yb, yb])
                    else:
                        xb = xa
                model.train()
                logits = net(xb)
                loss = F.cross_entropy(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot_loss += loss.item() * xb.shape[0]
                tot_correct += int((logits.argmax(1) == yb).sum())
                if start + config.batch_size < n:  # the epoch's last batch: with its loss
                    bar.update(1)
            seen = float(n * (2 if (perturb is not None and keep_clean) else 1))
            if world > 1:
                stats = torch.tensor([tot_loss, float(tot_correct)], dtype=torch.float64)
                dist.all_reduce(stats)
                tot_loss, tot_correct = float(stats[0]), int(stats[1])
            hist.loss.append(tot_loss / seen)
            hist.accuracy.append(tot_correct / seen)
            bar.set_postfix_str(f"epoch {epoch + 1}/{config.epochs} loss {hist.loss[-1]:.4f}")
            bar.update(1)
            if callable(progress):
                progress(epoch, hist.loss[-1])
    model.eval()
    return hist


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the block; afterwards every submodule gets back the mode
    it had. (``model.train(was_training)`` would not do: a wrapper built around an
    eval-mode network -- a fresh :class:`advgame.defenses.Defense` is in training mode --
    would pass its training mode down to the network.)

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).eval()
        >>> wrapper = nn.Sequential(net)          # a new module: training mode
        >>> with eval_mode(wrapper):
        ...     _ = wrapper(torch.rand(3, 2))
        >>> wrapper.training, net.training
        (True, False)
    """
    modes = module_modes(model)
    model.eval()
    try:
        yield model
    finally:
        restore_modes(modes)


def module_modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    """The training flag of every submodule of ``model`` (itself included), for
    :func:`restore_modes`."""
    return [(m, m.training) for m in model.modules()]


def restore_modes(modes: list[tuple[nn.Module, bool]]) -> None:
    """Give every submodule recorded by :func:`module_modes` its training flag back."""
    for m, training in modes:
        m.training = training


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Predicted class (N,) of ``model`` on x (N, ...), in eval mode, batched."""
    with eval_mode(model):
        out = [model(x[i:i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Fraction of x classified as y."""
    return float((predict(model, x, batch_size) == y).float().mean())


def frozen(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with ``requires_grad`` off for every parameter (a fixed
    player of a game: attacked, never trained). Returns ``model``.

    Example:
        >>> m = frozen(nn.Linear(2, 1))
        >>> m.training, any(p.requires_grad for p in m.parameters())
        (False, False)
    """
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()

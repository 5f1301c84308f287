"""Readers for the standard on-disk formats of MNIST, Fashion-MNIST and CIFAR-10.

- IDX (LeCun's format, MNIST and Fashion-MNIST): big-endian header ``0x00 0x00 dtype ndim``,
  ``ndim`` big-endian uint32 sizes, then the raw array. Files may be gzipped (``.gz``).
- CIFAR-10 "python version": pickled dicts with ``b"data"`` (N, 3072) uint8 in CHW order and
  ``b"labels"``; files ``data_batch_1..5`` and ``test_batch`` under ``cifar-10-batches-py``.

The CIFAR batches are pickles; they are read with a restricted unpickler that only builds
dicts, lists, strings, bytes, numbers and numpy arrays, so a crafted file cannot run code.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from advgame.errors import InputError

_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}


def _open_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise InputError(str(path), f"corrupt gzip file ({e})") from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a numpy array.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> f = write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8),
        ...               compress=True)
        >>> images = read_idx(f)  # e.g. MNIST's train-images-idx3-ubyte.gz: (60000, 28, 28)
        >>> images.shape, images.dtype
        ((3, 28, 28), dtype('uint8'))
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(str(p), "IDX file not found")
    data = _open_bytes(p)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise InputError(str(p), "not an IDX file (bad magic number)")
    dtype = _IDX_DTYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(str(p), "truncated IDX header")
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    count = int(np.prod(shape)) if shape else 1
    if len(data) - header != count * dtype.itemsize:
        raise InputError(
            str(p), f"IDX payload has {len(data) - header} bytes, header promises "
            f"{count * dtype.itemsize} for shape {shape}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(
        dtype.newbyteorder("=")
    )


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool = False) -> Path:
    """Write ``array`` in IDX format (used to make test fixtures and exports)."""
    codes = {np.dtype(v).newbyteorder("=").str: k for k, v in _IDX_DTYPES.items()}
    a = np.ascontiguousarray(array)
    key = a.dtype.newbyteorder("=").str
    if key not in codes:
        raise InputError("array", f"dtype {a.dtype} has no IDX code")
    code = codes[key]
    big = a.astype(_IDX_DTYPES[code])
    payload = bytes([0, 0, code, a.ndim]) + struct.pack(">" + "I" * a.ndim, *a.shape)
    payload += big.tobytes()
    p = Path(path)
    p.write_bytes(gzip.compress(payload) if compress else payload)
    return p


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(root: Path, stem: str, argument: str = "data_dir") -> Path:
    for cand in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        for base in (root, root / "raw"):
            if (base / cand).is_file():
                return base / cand
    raise InputError(argument, f"{root} has no file {stem}[.gz]")


def _cifar_root(root: Path) -> Path:
    return root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root


def check_data_files(fmt: str, root: str | Path, argument: str = "data_dir") -> None:
    """Check, without reading them, that ``root`` holds the files of ``fmt`` (``"idx"``:
    the four MNIST-format files; ``"cifar10"``: the test batch and a training batch), so
    that a wrong directory fails before any work instead of when it is first read.

    Raises:
        InputError: argument ``argument``, naming the missing directory or file.
    """
    r = Path(root)
    if not r.is_dir():
        raise InputError(argument, f"{r} is not a directory")
    if fmt == "idx":
        for stem in (*_MNIST_FILES["train"], *_MNIST_FILES["test"]):
            _find(r, stem, argument)
        return
    c = _cifar_root(r)
    for names in (["test_batch"], [f"data_batch_{i}" for i in range(1, 6)]):
        if not any((c / n).is_file() for n in names):
            raise InputError(argument, f"{c} has no CIFAR-10 batch {names[0]}")


def load_idx_dataset(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST / Fashion-MNIST from a directory of the four standard IDX files.

    Returns images (N, 28, 28) uint8 and labels (N,) int64.
    """
    r = Path(root)
    if not r.is_dir():
        raise InputError("data_dir", f"{r} is not a directory")
    img_name, lab_name = _MNIST_FILES[split]
    images = read_idx(_find(r, img_name))
    labels = read_idx(_find(r, lab_name))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise InputError(
            "data_dir", f"IDX images {images.shape} and labels {labels.shape} do not match"
        )
    return images, labels.astype(np.int64)


class _SafeUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("builtins", "bytes"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> images (N, 3, 32, 32) uint8, labels (N,) int64."""
    p = Path(path)
    if not p.is_file():
        raise InputError(str(p), "CIFAR-10 batch file not found")
    try:
        d = _SafeUnpickler(io.BytesIO(p.read_bytes()), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise InputError(str(p), f"not a CIFAR-10 python batch ({e})") from None
    if not isinstance(d, dict):
        raise InputError(str(p), "not a CIFAR-10 python batch (no dict)")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise InputError(str(p), "CIFAR-10 batch lacks 'data' or 'labels'")
    arr = np.asarray(data, dtype=np.uint8)
    if arr.ndim != 2 or arr.shape[1] != 3072 or arr.shape[0] != len(labels):
        raise InputError(str(p), f"CIFAR-10 data has shape {arr.shape}, expected (N, 3072)")
    return arr.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def load_cifar10(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 from ``root`` or ``root/cifar-10-batches-py``: (N, 3, 32, 32) uint8, (N,)."""
    r = Path(root)
    if not r.is_dir():
        raise InputError("data_dir", f"{r} is not a directory")
    r = _cifar_root(r)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    present = [r / n for n in names if (r / n).is_file()]
    if not present:
        raise InputError("data_dir", f"{r} has no CIFAR-10 batch {names[0]}")
    parts = [read_cifar_batch(p) for p in present]
    return (np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts]))

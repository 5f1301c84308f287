from __future__ import annotations

from pathlib import Path

import pytest
import torch

from advgame.errors import InputError
from advgame.models import (
    TrainConfig,
    accuracy,
    build_model,
    load_checkpoint,
    save_checkpoint,
    train,
)


def test_checkpoint_roundtrip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = build_model("cnn", (1, 8, 8), 3, channels=(4, 4), head=8)
    save_checkpoint(tmp_path / "m.pt", m, arch="cnn", input_shape=(1, 8, 8), num_classes=3,
                    kwargs={"channels": (4, 4), "head": 8}, meta={"note": "x"})
    m2, ck = load_checkpoint(tmp_path / "m.pt")
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(m(x), m2(x))
    assert ck["meta"]["note"] == "x" and not m2.training


def test_checkpoint_with_pickle_payload_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    torch.save({"format": "advgame-checkpoint-v1", "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(InputError, match="refused"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a valid checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"some": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not an advgame checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_training_learns_separable_data() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(400, 1, 4, 4, generator=g)
    y = (x.flatten(1)[:, 0] > 0.5).long()
    torch.manual_seed(0)
    m = build_model("mlp", (1, 4, 4), 2, hidden=(16,))
    hist = train(m, x, y, TrainConfig(epochs=30, batch_size=32, lr=1e-2), generator=g)
    assert hist.loss[-1] < hist.loss[0]
    assert accuracy(m, x, y) > 0.95


def test_build_model_errors() -> None:
    with pytest.raises(InputError, match="arch"):
        build_model("resnet", (1, 8, 8), 2)
    with pytest.raises(InputError, match="arch"):
        build_model("cnn", (64,), 2)

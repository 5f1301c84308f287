"""`advgame paper1` end to end on tiny data, checked against what the theory makes exact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advgame.cli import main
from advgame.errors import InputError
from advgame.experiments.paper1 import Paper1Config
from advgame.experiments.s1_eval import (
    Defense,
    adaptive_model,
    clean_thresholds,
    evaluate,
    game_constraints,
    outside_box,
    vc_gap_bound,
)
from advgame.linear import linearize
from advgame.models import LinearModel

TINY = """
dataset = "{dataset}"
arch = "{arch}"
hidden = [16]
epochs = 8
n_synthetic = 400
eps_a = [0.1]
eps_d = [0.05]
sweep_eps_a = [0.0, 0.1]
sweep_eps_d = [0.05]
n_noise = 64
pgd_steps = 5
adaptive_eot = 2
exact_time_limit = 5.0
num_maximizers = 2
restarts = 2
refine_checks = 3
convergence_ns = [10, 40]
convergence_draws = 2
diag_eps = [0.05, 0.1]
diag_samples = 2
certify_n = 100
certify_n0 = 10
certify_points = 20
pairs = "none"
"""


def run_tiny(tmp_path: Path, dataset: str, arch: str) -> dict:
    cfg = tmp_path / "c.toml"
    cfg.write_text(TINY.format(dataset=dataset, arch=arch).replace("n_synthetic = 400\n", ""))
    out = tmp_path / "out"
    assert main(["paper1", "--config", str(cfg), "--out", str(out)]) == 0
    return json.loads((out / "results.json").read_text())


def table(res: dict, prefix: str) -> dict:
    t = next(t for t in res["tables"] if t["name"].startswith(prefix))
    return {r[0]: dict(zip(t["columns"][1:], r[1:], strict=True)) for r in t["rows"]}


def test_linear_classifier_true_equals_approx(tmp_path: Path) -> None:
    """For an affine network the linearization is the network: no gap anywhere."""
    res = run_tiny(tmp_path, "linear", "linear")
    t1 = table(res, "table1")
    for name, row in t1.items():
        if "Gauss" not in name:  # deterministic defenses: exactly equal
            assert row["FGM true"] == row["FGM approx"], name
            assert row["PGD true"] == row["PGD approx"], name
            assert row["clean"] == row["clean approx"], name
    none = next(v for k, v in t1.items() if k.startswith("none"))
    assert none["FGM true"] == none["FGM approx"]
    assert none["clean"] == pytest.approx(res["data"]["classifier"]["clean_accuracy"])
    for key, shift in res["data"]["table1"][0]["shifts"].items():
        assert shift["count"] >= shift["count_at_zero"], key
    # the linear game is exactly the linear model: the attacker cannot beat FGM there
    games = res["data"]["payoff_games"]
    assert {g["which"] for g in games} == {"approx", "true"}
    for g in games:
        assert g["attacker_gain"] == pytest.approx(0.0, abs=1e-12)
    diag = {d["eps"]: d for d in res["data"]["diagnostics"]}
    # an affine model is faithful everywhere (same hyperplane in the whole ball)
    assert all(d["labels_agree"] == 1.0 and d["sampled_disagree"] == 0.0 for d in diag.values())
    assert all(d["same_region"] == 1.0 for d in diag.values())
    out = tmp_path / "out"
    for f in res["figures"]:
        assert (out / f["file"]).stat().st_size > 0
    html = (out / "report.html").read_text()
    assert html.count('id="table-') >= len(res["tables"])


def test_relu_network_outputs_and_resume(tmp_path: Path) -> None:
    res = run_tiny(tmp_path, "gaussians", "mlp")
    names = {t["name"] for t in res["tables"]}
    assert {"sweep", "convergence", "linearity", "certification", "pairs"} <= names
    assert any(n.startswith("table1") for n in names)
    assert {f["name"] for f in res["figures"]} >= {
        "sweep_eps_a", "sweep_eps_d", "convergence_gap", "convergence_tail", "linearity",
        "certified"}
    sweep = {(s["eps_a"], s["eps_d"]): s for s in res["data"]["sweep"]}
    zero = sweep[(0.0, 0.05)]
    # without an attack the linearization at x is exact at x
    assert zero["none_fgm_true"] == zero["none_fgm_approx"]
    # FGM on a two-logit network is the exact best response of its linearization, so in
    # the linearized payoff game no attack column beats it (up to a rounding tie)
    for row in res["data"]["table1"][0]["rows"]:  # the worst case is below every attack
        vals = [v for v in row["true"] if v is not None]
        vals += [v for v in (row["aa_true"], row["bpda_true"]) if v is not None]
        assert row["worst_true"] <= min(vals) + 1e-9, row["defense"]
    n_test = res["data"]["n_test"]
    lin = next(g for g in res["data"]["payoff_games"] if g["which"] == "approx")
    assert lin["attacker_gain"] <= 1.0 / n_test + 1e-12
    assert res["data"]["class_counts"] and sum(res["data"]["class_counts"].values()) == n_test
    # rerunning the same command resumes from the stored units: identical tables
    again = run_tiny(tmp_path, "gaussians", "mlp")
    assert again["tables"] == res["tables"]


def test_evaluate_shift_and_payoff_closed_forms() -> None:
    torch.manual_seed(0)
    model = LinearModel((3,), 2).double()
    x = torch.rand(50, 3, dtype=torch.float64)
    w, b = linearize(model, x)
    ys = torch.where(torch.rand(50) > 0.5, 1, -1)
    v = torch.tensor([[0.05, -0.02, 0.01]], dtype=torch.float64)
    true, approx = evaluate(Defense("v", "shift", v), model, w, b, x, ys)
    assert torch.equal(true, approx)
    expected = ((ys * ((x + v) @ w[0] + b[0])) > 0).double()
    assert torch.equal(true, expected)
    # the Gaussian payoff of a linear model is Phi(margin / (sigma ||w||))
    g = torch.Generator().manual_seed(0)
    t, a = evaluate(Defense("g", "gaussian_payoff", sigma=0.3), model.float(), w.float(),
                    b.float(), x.float(), ys, n_noise=4000, generator=g)
    assert float((t - a).abs().max()) < 0.04


def test_game_constraints_match_fgm_margin_drop() -> None:
    w = torch.tensor([[1.0, -2.0]])
    b = torch.tensor([0.5])
    x = torch.tensor([[0.2, 0.1]])
    ys = torch.tensor([1])
    margin = 0.2 - 0.2 + 0.5
    for box in ((0.0, 1.0), None):  # the box does not bind here: both are the FGM drop
        a, c = game_constraints(w, b, x, ys, 0.1, "inf", box=box)
        np.testing.assert_allclose(c, [0.1 * 3.0 - margin])
        np.testing.assert_allclose(a, [[1.0, -2.0]])
    # at a zero pixel the clipped attacker cannot lower x_0: the drop is only 2 * 0.1
    x0 = torch.tensor([[0.0, 0.1]])
    m0 = 0.0 - 0.2 + 0.5
    _, c_box = game_constraints(w, b, x0, ys, 0.1, "inf")
    _, c_free = game_constraints(w, b, x0, ys, 0.1, "inf", box=None)
    np.testing.assert_allclose(c_box, [0.2 - m0], atol=1e-7)
    np.testing.assert_allclose(c_free, [0.3 - m0], atol=1e-7)
    np.testing.assert_allclose(clean_thresholds(w, b, x0, ys), [-m0], atol=1e-7)


def test_clipped_defense_and_outside_box() -> None:
    torch.manual_seed(0)
    model = LinearModel((4,), 2).double()
    x = torch.rand(40, 4, dtype=torch.float64)
    x[:, 0] = 0.0
    w, b = linearize(model, x)
    ys = torch.where(torch.rand(40) > 0.5, 1, -1)
    v = torch.tensor([[-0.1, 0.05, 0.0, 0.0]], dtype=torch.float64)
    plain, clipped = Defense("v", "shift", v), Defense("v", "shift", v, clip=True)
    t_clip, a_clip = evaluate(clipped, model, w, b, x, ys)
    expected = ((ys * ((x + v).clamp(0, 1) @ w[0] + b[0])) > 0).double()
    assert torch.equal(t_clip, expected) and torch.equal(a_clip, expected)
    frac = float(((x + v < 0) | (x + v > 1)).double().mean())
    assert outside_box(plain, x) == pytest.approx(frac) and frac >= 0.25
    assert outside_box(clipped, x) == 0.0
    # Gaussian noise: the closed form against Monte Carlo
    g = torch.Generator().manual_seed(1)
    noise = 0.25 * torch.randn((2000, *x.shape), generator=g, dtype=torch.float64)
    mc = float(((x + noise < 0) | (x + noise > 1)).double().mean())
    assert outside_box(Defense("g", "gaussian_payoff", sigma=0.25), x) == pytest.approx(
        mc, abs=0.005)
    # the adaptive attacker differentiates the clip straight through (BPDA), not zero
    target = adaptive_model(clipped, model)
    xr = x.clone().requires_grad_(True)
    out = target(xr)
    (grad,) = torch.autograd.grad((out[:, 1] - out[:, 0]).sum(), xr)
    torch.testing.assert_close(grad, w)


def test_adaptive_models_are_the_deployed_defenses_expectations() -> None:
    """The S1 strategies as library Defenses: a mixture's attack model is log sum_j p_j
    softmax(model(x + v_j)) exactly, Gaussian smoothing's is the EOT average over draws
    shared by the batch, and a transform is attacked as the deployed TransformDefense."""
    from advgame.defenses import MixedDefense, SmoothingDefense, TransformDefense
    from advgame.defenses.preprocessing import BitDepthReduction

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    x = torch.rand(6, 4, dtype=torch.float64)
    shifts = 0.1 * torch.randn(3, 4, dtype=torch.float64)
    probs = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    mix = Defense("m", "mixture", shifts, probs)
    assert isinstance(mix.deployed(model), MixedDefense)
    expected = torch.log(sum(p * torch.softmax(model(x + v), 1)
                             for v, p in zip(shifts, probs, strict=True)))
    torch.testing.assert_close(adaptive_model(mix, model)(x), expected)
    gauss = Defense("g", "gaussian_payoff", sigma=0.3)
    target = adaptive_model(gauss, model, eot=5, generator=torch.Generator().manual_seed(2))
    assert isinstance(target, SmoothingDefense)
    noise = 0.3 * torch.randn((5, 4), generator=torch.Generator().manual_seed(2),
                              dtype=torch.float64)
    manual = torch.log(sum(torch.softmax(model(x + e), 1) for e in noise) / 5)
    torch.testing.assert_close(target(x), manual)
    bits = Defense("b", "transform", transform=BitDepthReduction(3))
    deployed = bits.deployed(model)
    assert isinstance(deployed, TransformDefense)
    torch.testing.assert_close(adaptive_model(bits, model)(x),
                               model(BitDepthReduction(3)(x)))


def test_vc_bound_decreases_and_is_vacuous_in_high_dimension() -> None:
    n = np.array([100, 1000, 10_000, 100_000])
    bound = vc_gap_bound(n, 785)
    assert np.all(np.diff(bound) < 0)
    assert bound[0] > 1.0


def test_config_rejects_bad_values() -> None:
    with pytest.raises(InputError, match="classes"):
        Paper1Config(classes=(0, 1, 2))
    with pytest.raises(InputError, match="eps_a"):
        Paper1Config(eps_a=(-0.1,))
    with pytest.raises(InputError, match="solver"):
        Paper1Config(solver="magic")
    with pytest.raises(InputError, match="norm_d"):
        Paper1Config(norm_d="1")
    with pytest.raises(InputError, match="objective"):
        Paper1Config(objective="unbounded")
    for bad in (-0.01, 1.5, float("nan")):
        with pytest.raises(InputError, match="max_clean_drop"):
            Paper1Config(max_clean_drop=bad)


@pytest.mark.parametrize("flags", [["--objective", "nobox"], ["--max-clean-drop", "2"],
                                   ["--max-clean-drop", "x"]])
def test_cli_bad_s1_game_options_exit_2(tmp_path: Path, flags: list[str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    try:  # argparse exits for a value of the wrong type; the config check returns 2
        code = main(["paper1", "--quick", "--out", str(out), *flags])
    except SystemExit as e:
        code = e.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_fashion_and_cifar_pairs_from_directories(tmp_path: Path) -> None:
    """--fashion-dir / --cifar-dir add rows for pairs read from the real file formats."""
    from tests.test_data import write_cifar_dir, write_mnist_dir

    fashion = tmp_path / "fashion"
    fashion.mkdir()
    write_mnist_dir(fashion, n_train=200, n_test=60)
    cifar = tmp_path / "cifar"
    cifar.mkdir()
    write_cifar_dir(cifar)
    cfg = tmp_path / "c.toml"
    cfg.write_text(TINY.format(dataset="gaussians", arch="mlp").replace("n_synthetic = 400\n", "")
                   + f'fashion_dir = "{fashion}"\nfashion_pairs = [[0, 1]]\n'
                   f'cifar_dir = "{cifar}"\ncifar_pairs = [[0, 1]]\n')
    out = tmp_path / "out"
    assert main(["paper1", "--config", str(cfg), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    pairs = next(t for t in res["tables"] if t["name"] == "pairs")
    datasets = [r[0] for r in pairs["rows"]]
    assert datasets == ["gaussians", "fashion-mnist", "cifar10"]
    for row in pairs["rows"]:
        assert all(v is None or 0.0 <= v <= 1.0 for v in row[2:])

"""The empirical game over real strategies: payoff cells, worst case, mixed defense, LP and
double oracle on tiny data (CPU)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advgame.attacks.strategy import Attack, AttNetAttack, GradientAttack, TransferAttack
from advgame.defenses.base import (
    ClassifierDefense,
    Defense,
    ExpectedMixture,
    MixedDefense,
    SmoothingDefense,
)
from advgame.errors import InputError
from advgame.experiments.runtime import UnitStore
from advgame.game import exploitability, solve_zero_sum
from advgame.game.build import BuildContext, Fit, build_attackers, build_defenders, fit_in_memory
from advgame.game.oracle import GameOracles, OracleConfig, run_double_oracle
from advgame.game.payoff import (
    CellEvaluator,
    MemoryStore,
    compute_payoff,
    decode_flags,
    encode_flags,
    evaluate_mixed_defense,
    worst_case,
    worst_case_accuracy,
)
from advgame.game.specs import parse_strategies
from advgame.models import TrainConfig, build_model, train
from advgame.rng import init_parameters, unit_generator


def linear_net(seed: int, d: int = 16, k: int = 2) -> nn.Module:
    net = nn.Sequential(nn.Flatten(), nn.Linear(d, k))
    return init_parameters(net, torch.Generator().manual_seed(seed))


class CountingAttack(Attack):
    """Wraps an attack and counts its craft calls."""

    def __init__(self, inner: Attack, adaptive: bool = True) -> None:
        super().__init__(inner.name, inner.eps, inner.norm, key=inner.key)
        self.inner = inner
        self.adaptive = adaptive
        self.calls = 0

    def craft(self, target: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
        self.calls += 1
        return self.inner.craft(target, x, y, generator=generator)


@pytest.fixture(scope="module")
def blobs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (400,), generator=g)
    x = (0.5 + 0.15 * (2 * y[:, None].float() - 1) * torch.linspace(-1, 1, 16)
         + 0.2 * torch.randn(400, 16, generator=g)).clamp(0, 1)
    return x.reshape(400, 1, 4, 4), y


@pytest.fixture(scope="module")
def trained(blobs: tuple[torch.Tensor, torch.Tensor]) -> dict[str, nn.Module]:
    x, y = blobs
    out = {}
    for s in range(3):
        m = linear_net(s)
        train(m, x[:300], y[:300], TrainConfig(epochs=2 + 3 * s, lr=3e-2),
              generator=torch.Generator().manual_seed(s))
        out[f"m{s}"] = m.eval()
    return out


def test_flags_roundtrip() -> None:
    t = torch.rand(1001, generator=torch.Generator().manual_seed(0)) > 0.3
    assert torch.equal(decode_flags(encode_flags(t), 1001), t)


def test_cells_computed_once_and_resumed_from_the_store(
    tmp_path: Path, blobs: tuple[torch.Tensor, torch.Tensor], trained: dict[str, nn.Module]
) -> None:
    x, y = blobs[0][300:], blobs[1][300:]
    defenses = {n: ClassifierDefense(n, m) for n, m in trained.items()}
    pgd = CountingAttack(GradientAttack("PGD", "pgd", 0.1, steps=3, key="pgd-k"))
    fixed = CountingAttack(TransferAttack("T", trained["m0"], GradientAttack("T", "fgm", 0.2),
                                          key="t-k"), adaptive=False)
    attacks = {"PGD": pgd, "T": fixed}
    m1 = compute_payoff(defenses, attacks, x, y, store=UnitStore(tmp_path), seed=3)
    assert pgd.calls == 3  # one per defender
    assert fixed.calls == 1  # a fixed map is crafted once and replayed against every row
    assert m1.accuracy.shape == (3, 2) and m1.success.shape == (3, 2, 100)
    np.testing.assert_allclose(m1.accuracy, 1 - m1.success.float().mean(-1).numpy())
    # the same evaluator never recomputes; a fresh one reads everything from the files
    ev = CellEvaluator(x, y, store=UnitStore(tmp_path), seed=3)
    m2 = compute_payoff(defenses, attacks, x, y, evaluator=ev)
    assert (pgd.calls, fixed.calls, ev.computed) == (3, 1, 0)
    np.testing.assert_array_equal(m1.accuracy, m2.accuracy)
    assert torch.equal(m1.success, m2.success)
    # a new cell (new attack) is computed, the old ones are not
    extra = CountingAttack(GradientAttack("F", "fgm", 0.05, key="f-k"))
    compute_payoff(defenses, {**attacks, "F": extra}, x, y, evaluator=ev)
    assert (pgd.calls, extra.calls, ev.computed) == (3, 3, 3)


def test_resumed_cells_equal_uninterrupted(
    tmp_path: Path, blobs: tuple[torch.Tensor, torch.Tensor], trained: dict[str, nn.Module]
) -> None:
    """Each cell has its own generator: computing cells in another order (as after an
    interruption) gives the same flags for a randomized attack."""
    x, y = blobs[0][300:], blobs[1][300:]
    defenses = {n: ClassifierDefense(n, m) for n, m in trained.items()}
    atk = {"PGD": GradientAttack("PGD", "pgd", 0.1, steps=2, key="p")}
    full = compute_payoff(defenses, atk, x, y, store=MemoryStore(), seed=1)
    store = MemoryStore()
    compute_payoff({"m2": defenses["m2"]}, atk, x, y, store=store, seed=1)
    resumed = compute_payoff(defenses, atk, x, y, store=store, seed=1)
    assert torch.equal(full.success, resumed.success)


def test_worst_case_is_the_or_of_success_flags(
    blobs: tuple[torch.Tensor, torch.Tensor], trained: dict[str, nn.Module]
) -> None:
    f = [torch.tensor([1, 0, 0, 1, 0], dtype=torch.bool),
         torch.tensor([0, 0, 1, 1, 0], dtype=torch.bool)]
    assert worst_case(f).tolist() == [True, False, True, True, False]
    assert worst_case_accuracy(torch.stack(f)) == pytest.approx(0.4)
    x, y = blobs[0][300:], blobs[1][300:]
    defenses = {n: ClassifierDefense(n, m) for n, m in trained.items()}
    attacks = {f"e{e}": GradientAttack(f"e{e}", "fgm", e) for e in (0.0, 0.1, 0.3)}
    m = compute_payoff(defenses, attacks, x, y)
    wc = m.worst_case_accuracy()
    for i in range(3):
        manual = 1 - (m.success[i, 0] | m.success[i, 1] | m.success[i, 2]).float().mean()
        assert wc[i] == pytest.approx(float(manual))
        assert wc[i] <= m.accuracy[i].min() + 1e-12
    assert m.worst_case_accuracy(["e0.0"]) == pytest.approx(m.accuracy[:, 0])
    with pytest.raises(InputError, match="success"):
        worst_case(torch.zeros(5, dtype=torch.bool))


def test_mixed_defense_accuracy_matches_mixture_weighted_payoff(
    blobs: tuple[torch.Tensor, torch.Tensor], trained: dict[str, nn.Module]
) -> None:
    x0, y = blobs
    comps = [ClassifierDefense(n, m) for n, m in trained.items()]
    x = GradientAttack("F", "fgm", 0.1).craft(comps[0], x0, y)  # fixed inputs, m0 attacked
    accs = np.array([float((c.predict(x) == y).float().mean()) for c in comps])
    assert accs.max() - accs.min() > 0.02  # the components differ
    p = np.array([0.2, 0.5, 0.3])
    mix = MixedDefense("mix", comps, p.tolist())
    expected = float(p @ accs)
    g = torch.Generator().manual_seed(0)
    runs = [float((mix.predict(x, g) == y).float().mean()) for _ in range(20)]
    # per run: mean of independent Bernoulli(sum_i p_i c_i(x_k)), variance <= 1/(4N)
    se = math.sqrt(0.25 / x.shape[0])
    assert all(abs(r - expected) < 4.5 * se for r in runs)
    assert abs(np.mean(runs) - expected) < 4.5 * se / math.sqrt(len(runs))
    # sampling frequencies follow p; zero-probability components are dropped
    counts = torch.bincount(mix.sample(30000, torch.Generator().manual_seed(1)), minlength=3)
    np.testing.assert_allclose(counts.numpy() / 30000, p, atol=0.015)
    assert len(MixedDefense("m", comps, [0.0, 1.0, 0.0]).components) == 1
    # the EOT model is the exact expectation over components
    em = mix.attack_model()
    assert isinstance(em, ExpectedMixture)
    with torch.no_grad():
        ref = sum(pi * torch.softmax(c(x[:5]), 1) for pi, c in zip(p, comps, strict=True))
        assert torch.allclose(em(x[:5]).exp(), ref.float(), atol=1e-6)
    with pytest.raises(InputError, match="probs"):
        MixedDefense("bad", comps, [0.5, 0.6, 0.1])


def test_evaluate_mixed_defense_expected_sampled_and_eot(
    blobs: tuple[torch.Tensor, torch.Tensor], trained: dict[str, nn.Module]
) -> None:
    x, y = blobs
    defenses = {n: ClassifierDefense(n, m) for n, m in trained.items()}
    attacks: dict[str, Attack] = {
        "PGD": GradientAttack("PGD", "pgd", 0.15, steps=3),
        "T": TransferAttack("T", trained["m1"], GradientAttack("T", "fgm", 0.15)),
    }
    ev = CellEvaluator(x, y, seed=2)
    m = compute_payoff(defenses, attacks, x, y, evaluator=ev)
    mix = MixedDefense("mix", list(defenses.values()), [0.3, 0.3, 0.4])
    res = {r.attacker: r for r in evaluate_mixed_defense(mix, m, attacks, ev)}
    for r in res.values():
        assert r.expected == pytest.approx(float(np.array([0.3, 0.3, 0.4]) @ m.column(
            r.attacker)))
        assert abs(r.sampled - r.expected) < 4.5 * math.sqrt(0.25 / x.shape[0])
    assert res["PGD"].eot is not None and res["PGD"].naive is not None
    assert res["T"].eot is None and not res["T"].adaptive
    # stored: a second evaluation reads the same numbers
    again = {r.attacker: r for r in evaluate_mixed_defense(mix, m, attacks, ev)}
    assert again["PGD"] == res["PGD"]


def test_lp_equilibrium_of_a_computed_payoff_matrix(
    blobs: tuple[torch.Tensor, torch.Tensor], trained: dict[str, nn.Module]
) -> None:
    x, y = blobs[0][300:], blobs[1][300:]
    defenses: dict[str, Defense] = {n: ClassifierDefense(n, m) for n, m in trained.items()}
    defenses["smooth"] = SmoothingDefense("smooth", trained["m2"], 0.2, votes=16, eot=4)
    attacks: dict[str, Attack] = {f"FGM-{e}": GradientAttack(f"FGM-{e}", "fgm", e)
                                  for e in (0.05, 0.15)}
    attacks["PGD"] = GradientAttack("PGD", "pgd", 0.1, steps=3)
    attacks["L2"] = GradientAttack("L2", "pgd", 0.5, "2", steps=3)
    m = compute_payoff(defenses, attacks, x, y, seed=4)
    value, p, q = solve_zero_sum(m.accuracy)
    assert exploitability(m.accuracy, p, q) <= 1e-9
    assert m.accuracy.min() - 1e-12 <= value <= m.accuracy.max() + 1e-12


def test_smoothing_defense_votes_and_eot_scores(trained: dict[str, nn.Module]) -> None:
    d = SmoothingDefense("s", trained["m2"], 0.1, votes=50, eot=6)
    x = torch.rand(7, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    a = d.predict(x, torch.Generator().manual_seed(1))
    b = d.predict(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (7,)
    d.set_generator(torch.Generator().manual_seed(2))
    s = d(x)
    assert s.shape == (7, 2) and torch.allclose(s.exp().sum(1), torch.ones(7), atol=1e-5)


def test_parse_strategies_rejects_bad_tables() -> None:
    ok = [{"name": "clean", "kind": "clean"}]
    atk = [{"name": "F", "kind": "fgsm", "eps": 0.1}]
    with pytest.raises(InputError, match="unknown strategy kind 'magic'"):
        parse_strategies([{"name": "x", "kind": "magic"}], atk)
    with pytest.raises(InputError, match=r"unknown key\(s\) \['sigmaa'\]"):
        parse_strategies([*ok, {"name": "s", "kind": "smoothing", "sigmaa": 1}], atk)
    with pytest.raises(InputError, match="unique"):
        parse_strategies(ok + ok, atk)
    with pytest.raises(InputError, match="unknown defender 'nope'"):
        parse_strategies([*ok, {"name": "s", "kind": "smoothing", "sigma": 0.1,
                                "base": "nope"}], atk)
    with pytest.raises(InputError, match="eps"):
        parse_strategies(ok, [{"name": "F", "kind": "pgd", "eps": -1}])
    with pytest.raises(InputError, match="L-inf"):
        parse_strategies(ok, [{"name": "F", "kind": "fgsm", "eps": 0.1, "norm": "2"}])
    with pytest.raises(InputError, match="cycle"):
        parse_strategies([*ok, {"name": "a", "kind": "mixture", "components": ["b"]},
                          {"name": "b", "kind": "mixture", "components": ["a"]}], atk)


def test_build_strategies_and_skip_missing_library(blobs: tuple[torch.Tensor, torch.Tensor],
                                                   trained: dict[str, nn.Module]) -> None:
    x, y = blobs
    ctx = BuildContext(x[:300], y[:300], 2, trained["m2"], arch="mlp",
                       arch_kwargs={"hidden": (8,)}, train_config=TrainConfig(epochs=1))
    ds, at = parse_strategies(
        [{"name": "clean", "kind": "clean"},
         {"name": "adv", "kind": "adversarial", "eps": 0.1, "attack": "pgd", "steps": 2},
         {"name": "shift", "kind": "shift", "eps": 0.05, "direction": "plus"},
         {"name": "ref", "kind": "reformer", "autoencoder": "mlp", "epochs": 1},
         {"name": "mix", "kind": "mixture", "components": ["clean", "adv"],
          "probs": [0.25, 0.75]}],
        [{"name": "A", "kind": "attnet", "eps": 0.1, "hidden": [8], "epochs": 1,
          "against": "adv"},
         {"name": "T", "kind": "transfer", "eps": 0.1, "method": "fgm", "surrogate": "mix"},
         {"name": "TA", "kind": "torchattacks", "attack": "PGD", "eps": 0.1}])
    defenses = build_defenders(ds, ctx)
    assert list(defenses) == ["clean", "adv", "shift", "ref", "mix"]
    assert all(not p.requires_grad for d in defenses.values() for p in d.parameters())
    shift = defenses["shift"]
    assert torch.allclose(shift.v, torch.full((1, 4, 4), 0.05))  # type: ignore[arg-type]
    attacks, skipped = build_attackers(at, ctx, defenses)
    assert isinstance(attacks["A"], AttNetAttack) and not attacks["A"].adaptive
    if "TA" in skipped:
        assert "torchattacks" in skipped["TA"]
    m = compute_payoff(defenses, attacks, x[300:], y[300:])
    assert np.all((m.accuracy >= 0) & (m.accuracy <= 1))
    for a in attacks.values():  # every attack stays in the box and the eps ball
        xa = a.craft(defenses["adv"], x[300:], y[300:],
                     generator=torch.Generator().manual_seed(0))
        assert float((xa - x[300:]).abs().max()) <= a.eps + 1e-6
        assert float(xa.min()) >= 0 and float(xa.max()) <= 1
    # the same keys with the same config: a rebuilt strategy has the same key
    again = build_defenders(ds, ctx)
    assert [d.key for d in again.values()] == [d.key for d in defenses.values()]


def test_attnet_loaded_from_weights(tmp_path: Path, blobs: tuple[torch.Tensor, torch.Tensor],
                                    trained: dict[str, nn.Module]) -> None:
    x, y = blobs
    proto = AttNetAttack("A", 0.1, hidden=(8,), epochs=1, x_train=x, y_train=y)
    net = proto.train_against(trained["m0"], x[:100], y[:100], torch.Generator().manual_seed(0))
    path = tmp_path / "attnet.pt"
    torch.save({"state_dict": net.state_dict()}, path)

    def load_state(p: str, module: nn.Module) -> nn.Module:
        module.load_state_dict(torch.load(p, weights_only=True)["state_dict"])
        return module

    ctx = BuildContext(x, y, 2, trained["m0"], load_state=load_state)
    _, at = parse_strategies([{"name": "clean", "kind": "clean"}], [
        {"name": "A", "kind": "attnet", "eps": 0.1, "hidden": [8], "path": str(path)}])
    attacks, _ = build_attackers(at, ctx, {})
    a = attacks["A"]
    assert not a.adaptive
    ref = proto.craft(trained["m0"], x[:10], y[:10])  # adaptive: trains a new net
    loaded = a.craft(trained["m1"], x[:10], y[:10])
    with torch.no_grad():
        assert torch.allclose(loaded, (x[:10] + 0.1 * net(x[:10])).clamp(0, 1), atol=1e-6)
    assert ref.shape == loaded.shape


@pytest.mark.slow
def test_art_adapter_white_box(blobs: tuple[torch.Tensor, torch.Tensor],
                               trained: dict[str, nn.Module]) -> None:
    pytest.importorskip("art")
    x, y = blobs[0][300:], blobs[1][300:]
    ctx = BuildContext(x, y, 2, trained["m1"])
    _, at = parse_strategies([{"name": "clean", "kind": "clean"}], [
        {"name": "APGD", "kind": "art", "attack": "AutoProjectedGradientDescent", "eps": 0.1,
         "params": {"max_iter": 5, "nb_random_init": 1}}])
    attacks, skipped = build_attackers(at, ctx, {})
    assert not skipped
    d = ClassifierDefense("clean", trained["m1"])
    xa = attacks["APGD"].craft(d, x, y)
    assert float((xa - x).abs().max()) <= 0.1 + 1e-6
    ours = GradientAttack("PGD", "pgd", 0.1, steps=5).craft(d, x, y,
                                                            generator=unit_generator(0, "p"))
    acc_art = float((d.predict(xa) == y).float().mean())
    acc_pgd = float((d.predict(ours) == y).float().mean())
    assert acc_art <= float((d.predict(x) == y).float().mean())
    assert abs(acc_art - acc_pgd) < 0.15  # two PGD variants on a linear model agree roughly


@pytest.mark.parametrize("attacker", ["attnet", "pgd"])
def test_double_oracle_with_real_training_oracles_meets_bounds(
    blobs: tuple[torch.Tensor, torch.Tensor], attacker: str
) -> None:
    x, y = blobs
    base = build_model("mlp", (1, 4, 4), 2, hidden=(8,))
    init_parameters(base, torch.Generator().manual_seed(0))
    train(base, x[:300], y[:300], TrainConfig(epochs=3, lr=1e-2),
          generator=torch.Generator().manual_seed(0))
    base.eval()
    trainings: list[str] = []
    ctx = BuildContext(x[:300], y[:300], 2, base, arch="mlp", arch_kwargs={"hidden": (8,)},
                       train_config=TrainConfig(epochs=1, lr=3e-2),
                       fit=_counting_fit(trainings))
    defenses = {"clean": ClassifierDefense("clean", base, "clean-k")}
    attacks: dict[str, Attack] = {"FGSM": GradientAttack("FGSM", "fgm", 0.15, key="f-k")}
    store = MemoryStore()
    ev = CellEvaluator(x[300:], y[300:], store=store, seed=0)
    tol = 0.05
    config = OracleConfig(attacker=attacker, eps=0.15, attnet_hidden=(8,), attnet_epochs=10,
                          attnet_lr=3e-2, pgd_steps=5, defender_epochs=10)
    oracles = GameOracles(defenses, attacks, ev, ctx, config)
    res = run_double_oracle(oracles, tol=tol, max_iters=6)
    assert res.converged and res.gap <= tol
    assert len(res.rows) + len(res.cols) > 2  # the oracles' candidates were kept
    assert res.value > res.values[0]  # adversarial training raised the restricted value
    assert np.all(res.lower_bounds <= res.values + 1e-12)
    assert np.all(res.values <= res.upper_bounds + 1e-12)
    assert len(oracles.calls) == 2 * res.iterations
    # one trained candidate per player and iteration (the PGD oracle trains nothing)
    assert len(trainings) == res.iterations * (2 if attacker == "attnet" else 1)
    assert exploitability(res.payoff, res.defender_strategy, res.attacker_strategy) <= 1e-9
    # rerun from the same store and model cache: nothing is trained or evaluated again
    ev2 = CellEvaluator(x[300:], y[300:], store=store, seed=0)
    res2 = run_double_oracle(GameOracles(defenses, attacks, ev2, ctx, config), tol=tol,
                             max_iters=6)
    assert ev2.computed == 0 and len(trainings) == res.iterations * (2 if attacker ==
                                                                     "attnet" else 1)
    assert res2.rows == res.rows and res2.cols == res.cols
    np.testing.assert_array_equal(res2.upper_bounds, res.upper_bounds)


def _counting_fit(record: list[str]) -> Fit:
    """An in-memory fit that records the keys it actually trains."""
    inner = fit_in_memory()

    def fit(key: str, module: nn.Module, fn: Callable[[nn.Module], None]) -> nn.Module:
        def counted(m: nn.Module) -> None:
            record.append(key)
            fn(m)
        return inner(key, module, counted)
    return fit

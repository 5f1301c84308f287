"""Training defenses of S2 (learning-based minimax, Hamm & Mehra): cat-and-mouse, Sens-FGSM,
minimax / maximin against an attack network.

Notation: classifier h(x; u), cross-entropy l, L-inf budget eps (the paper's eta, the name
``advgame paper2`` shows its users), inputs in [0, 1].

1. **Cat-and-mouse** (adversarial retraining against a moving FGSM attacker):
   u_0 is trained on clean data; for k = 1..K, FGSM-k are the examples
   z = clip(x + eps sign grad_x l(h(x; u_(k-1)), y), 0, 1) against the previous model
   (train and test sets) and u_k is retrained on FGSM-k (warm start from u_(k-1) or from
   scratch, with or without the clean data). ``cat_and_mouse_errors`` gives the matrix
   E[k][j] = test error of u_k on FGSM-j, the clean error and FGSM-curr (FGSM computed
   against the model being evaluated); ``detect_oscillation`` decides, from the data,
   whether a series such as FGSM-curr oscillates.

2. **Sens-FGSM**: the fixed point of the cat-and-mouse, optimized directly,

       min_u  E l(h(z(u); u), y),   z(u) = clip(x + eps s(grad_x l(h(x; u), y)), 0, 1),

   with z differentiated *through* u (double backprop, ``create_graph=True``). sign has a
   zero derivative, so s is a surrogate: tanh(g / tau) (tau relative to the mean |g| of
   each example by default) or the normalized gradient g / ||g||_inf. The first-order
   form replaces l(z) by its linearization l(x) + eps ||grad_x l(x)||_1 (the value of
   l(x) + eps grad.sign(grad)). Plain online adversarial training is the same loop with z
   detached (the dz/du term ignored).

3. **Minimax / maximin** between a classifier u and an attack network v with payoff
   f(u, v) = E l(h(z_v(x); u), y): ``alternating_gradient`` is a generic, pure solver of
   min_u max_v f (``leader="min"``: the attacker follows, ``k_max`` ascent steps then
   ``k_min`` descent steps per iteration) or max_v min_u f (``leader="max"``: the defender
   follows). With ``rho > 0`` the defender's step minimizes the sensitivity-penalized
   objective f(u, v) + rho ||grad_v f(u, v)||^2 (a look-ahead of the attacker's
   response). ``learned_minimax`` applies it to a classifier and an AttNet.

Modules: ``cat_and_mouse``, ``sens_fgsm``, ``adversarial``, ``minimax``.
"""

from __future__ import annotations

from advgame.defenses.training.adversarial import adversarial_training
from advgame.defenses.training.cat_and_mouse import (
    CatMouseErrors,
    Oscillation,
    cat_and_mouse,
    cat_and_mouse_errors,
    cat_and_mouse_round,
    detect_oscillation,
    error_rate,
    fgsm_examples,
)
from advgame.defenses.training.minimax import (
    AlternatingHistory,
    alternating_gradient,
    attnet_payoff,
    learned_minimax,
)
from advgame.defenses.training.sens_fgsm import (
    SensForm,
    SensObjective,
    SensScale,
    Surrogate,
    sens_fgsm_inputs,
    sens_fgsm_loss,
    sens_fgsm_train,
    surrogate_direction,
)

__all__ = [
    "AlternatingHistory", "CatMouseErrors", "Oscillation", "SensForm", "SensObjective",
    "SensScale", "Surrogate", "adversarial_training", "alternating_gradient", "attnet_payoff",
    "cat_and_mouse", "cat_and_mouse_errors", "cat_and_mouse_round", "detect_oscillation",
    "error_rate", "fgsm_examples", "learned_minimax", "sens_fgsm_inputs", "sens_fgsm_loss",
    "sens_fgsm_train", "surrogate_direction",
]

"""Built-in optimizers and learning-rate schedulers, with NVIDIA NeMo 1.x names and semantics.

``OPTIMIZERS`` maps a YAML ``optim.name`` to ``f(params, *, lr, ...)``; ``SCHEDULERS`` maps
``optim.sched.name`` to ``f(optimizer, *, max_steps, ...)``. Every factory has an explicit keyword
signature, so the checker can validate YAML keys against ``inspect.signature(f)``, and every one
raises ``UserError`` (a ``ValueError``) saying what must hold for a bad argument.

Schedulers are stepped once per optimizer step. As in NeMo, a schedule has up to four phases:

- warmup, steps ``0..W``: ``lr = base_lr * (step + 1) / (W + 1)``, reaching ``base_lr`` at ``W``;
- hold (hold schedulers only), steps ``W+1 .. W+hold-1``: ``lr = base_lr``;
- decay, up to ``max_steps``: the scheduler's own curve, ending at ``min_lr``;
- after ``max_steps``: ``lr = min_lr``.

``W`` is ``warmup_steps``, or ``int(warmup_ratio * max_steps)``; likewise for ``hold_*``. The LR
is a closed-form function of the step (``lr_at``), so ``state_dict``/``load_state_dict`` resume
exactly. Deliberate differences from NeMo, all where NeMo's curve is discontinuous or mixes
parameter groups: ``SquareRootAnnealing`` decays over ``max_steps - W`` steps counted from the
end of warmup (NeMo counts from step 0); ``PolynomialHoldDecayAnnealing`` without hold decays from
the end of warmup (NeMo jumps down after warmup); every scheduler uses each parameter group's own
base LR (NeMo's ``WarmupAnnealing`` uses the first group's); ``CosineAnnealing`` with
``constant_steps`` keeps the common warmup (NeMo switches to Megatron's ``step / W``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.optimizer import ParamsT

from neuralgraph.errors import UserError
from neuralgraph.validators import ParameterError, Validator, boolean, check, ge, gt, le, lt, number

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "Novograd",
    "adam",
    "adamw",
    "sgd",
    "novograd",
    "rmsprop",
    "adagrad",
    "adamax",
    "adadelta",
    "radam",
    "WarmupPolicy",
    "WarmupHoldPolicy",
    "WarmupAnnealing",
    "SquareAnnealing",
    "SquareRootAnnealing",
    "CosineAnnealing",
    "InverseSquareRootAnnealing",
    "NoamAnnealing",
    "NoamHoldAnnealing",
    "PolynomialDecayAnnealing",
    "PolynomialHoldDecayAnnealing",
]


# --- argument checks ------------------------------------------------------------------------


# Each raises a ParameterError (a UserError) naming the argument; a range is checked one bound
# at a time, so that the message names the bound that is broken ("'lr' must be >= 0").
_INTEGER = Validator("an integer", types=(int,))


def _number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float, or raise saying which range it must lie in."""
    check(name, value, number)
    if low is not None:
        check(name, value, gt(low) if low_open else ge(low))
    if high is not None:
        check(name, value, lt(high) if high_open else le(high))
    return float(value)


def _integer(name: str, value: Any, *, low: int) -> int:
    """``value`` as an int >= ``low`` (integral floats such as ``1.0e4`` are accepted)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return check(name, check(name, value, _INTEGER), ge(low))


def _flag(name: str, value: Any) -> bool:
    return check(name, value, boolean)


def _betas(value: Any, name: str = "betas") -> tuple[float, float]:
    """Two coefficients in [0, 1); YAML gives a list, Python code a tuple."""
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ParameterError(name, "a pair of numbers in [0, 1)", value)
    first, second = (_number(f"{name}.{i}", v, low=0.0, high=1.0, high_open=True)
                     for i, v in enumerate(value))
    return first, second


def _common(lr: Any, eps: Any, weight_decay: Any) -> tuple[float, float, float]:
    return (_number("lr", lr, low=0.0), _number("eps", eps, low=0.0),
            _number("weight_decay", weight_decay, low=0.0))


# --- Novograd -------------------------------------------------------------------------------


class Novograd(Optimizer):
    """NovoGrad (Ginsburg et al., 2019, arXiv:1905.11286), as in NeMo.

    Adam-like, but the second moment is one scalar per parameter tensor ("layer"): the running
    average of the squared gradient norm, initialised with the first non-zero norm. Each step,
    for a parameter ``p`` with gradient ``g``::

        v = |g|^2 if v == 0 else beta2 * v + (1 - beta2) * |g|^2
        u = g / (sqrt(v) + eps) + weight_decay * p       # times (1 - beta1) if grad_averaging
        m = beta1 * m + u
        p = p - lr * m

    ``amsgrad`` normalises by the running maximum of ``v``; ``luc`` (layer-wise update clipping)
    replaces ``lr`` by ``min(lr, luc_trust * |p| / (|m| + luc_eps))``. Unlike NeMo's
    implementation, gradients are left unchanged.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: Sequence[float] = (0.95, 0.98),
                 eps: float = 1e-8, weight_decay: float = 0.0, grad_averaging: bool = False,
                 amsgrad: bool = False, luc: bool = False, luc_trust: float = 1e-3,
                 luc_eps: float = 1e-8) -> None:
        lr, eps, weight_decay = _common(lr, eps, weight_decay)
        defaults = {
            "lr": lr, "betas": _betas(betas), "eps": eps, "weight_decay": weight_decay,
            "grad_averaging": _flag("grad_averaging", grad_averaging),
            "amsgrad": _flag("amsgrad", amsgrad),
        }
        self.luc = _flag("luc", luc)
        self.luc_trust = _number("luc_trust", luc_trust, low=0.0)
        self.luc_eps = _number("luc_eps", luc_eps, low=0.0)
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("grad_averaging", False)

    # torch declares step() with overloads on the closure type; ours is the common union.
    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Update every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group)
        return loss

    def _update(self, param: torch.Tensor, group: dict[str, Any]) -> None:
        grad = param.grad
        assert grad is not None
        if grad.is_sparse:
            raise RuntimeError("Novograd does not support sparse gradients")
        beta1, beta2 = group["betas"]
        state = self._state_for(param, group["amsgrad"])
        state["step"] += 1
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        norm_sq = torch.linalg.vector_norm(grad, dtype=torch.float32).square()
        # Without a host sync: take the norm itself while the average is still 0 (as NeMo).
        blended = exp_avg_sq * beta2 + norm_sq * (1.0 - beta2)
        exp_avg_sq.copy_(torch.where(exp_avg_sq == 0, norm_sq, blended))
        second = exp_avg_sq
        if group["amsgrad"]:
            torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            second = state["max_exp_avg_sq"]
        update = grad / (second.sqrt() + group["eps"])
        if group["weight_decay"] != 0:
            update.add_(param, alpha=group["weight_decay"])
        if group["grad_averaging"]:
            update.mul_(1.0 - beta1)
        exp_avg.mul_(beta1).add_(update)
        if self.luc:
            trust = self.luc_trust * torch.linalg.vector_norm(param)
            factor = (trust / (torch.linalg.vector_norm(exp_avg) + self.luc_eps))
            param.sub_(exp_avg * factor.clamp(max=group["lr"]))
        else:
            param.add_(exp_avg, alpha=-group["lr"])

    def _state_for(self, param: torch.Tensor, amsgrad: bool) -> dict[str, Any]:
        state = self.state[param]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros((), dtype=torch.float32, device=param.device)
        if amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = torch.zeros((), dtype=torch.float32, device=param.device)
        return state


# --- optimizer factories --------------------------------------------------------------------


def adam(params: ParamsT, *, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999),
         eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> Optimizer:
    """Adam (torch.optim.Adam); ``weight_decay`` is an L2 penalty added to the gradient."""
    lr, eps, weight_decay = _common(lr, eps, weight_decay)
    return torch.optim.Adam(params, lr=lr, betas=_betas(betas), eps=eps,
                            weight_decay=weight_decay, amsgrad=_flag("amsgrad", amsgrad))


def adamw(params: ParamsT, *, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999),
          eps: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False) -> Optimizer:
    """AdamW (torch.optim.AdamW): Adam with decoupled weight decay."""
    lr, eps, weight_decay = _common(lr, eps, weight_decay)
    return torch.optim.AdamW(params, lr=lr, betas=_betas(betas), eps=eps,
                             weight_decay=weight_decay, amsgrad=_flag("amsgrad", amsgrad))


def sgd(params: ParamsT, *, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
        weight_decay: float = 0.0, nesterov: bool = False) -> Optimizer:
    """SGD (torch.optim.SGD) with optional (Nesterov) momentum; Nesterov needs momentum > 0."""
    lr = _number("lr", lr, low=0.0)
    momentum = _number("momentum", momentum, low=0.0)
    dampening = _number("dampening", dampening)
    if _flag("nesterov", nesterov) and (momentum <= 0 or dampening != 0):
        raise UserError("nesterov: true needs 'momentum' > 0 and 'dampening' == 0 "
                        f"(got momentum={momentum}, dampening={dampening})")
    return torch.optim.SGD(params, lr=lr, momentum=momentum, dampening=dampening,
                           weight_decay=_number("weight_decay", weight_decay, low=0.0),
                           nesterov=nesterov)


def novograd(params: ParamsT, *, lr: float = 1e-3, betas: Sequence[float] = (0.95, 0.98),
             eps: float = 1e-8, weight_decay: float = 0.0, grad_averaging: bool = False,
             amsgrad: bool = False, luc: bool = False, luc_trust: float = 1e-3,
             luc_eps: float = 1e-8) -> Optimizer:
    """NovoGrad as in NeMo: Adam-like with one second-moment scalar per layer (see Novograd)."""
    return Novograd(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                    grad_averaging=grad_averaging, amsgrad=amsgrad, luc=luc,
                    luc_trust=luc_trust, luc_eps=luc_eps)


def rmsprop(params: ParamsT, *, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
            weight_decay: float = 0.0, momentum: float = 0.0,
            centered: bool = False) -> Optimizer:
    """RMSprop (torch.optim.RMSprop); ``alpha`` is the squared-gradient smoothing constant."""
    lr, eps, weight_decay = _common(lr, eps, weight_decay)
    return torch.optim.RMSprop(params, lr=lr, alpha=_number("alpha", alpha, low=0.0, high=1.0),
                               eps=eps, weight_decay=weight_decay,
                               momentum=_number("momentum", momentum, low=0.0),
                               centered=_flag("centered", centered))


def adagrad(params: ParamsT, *, lr: float = 1e-2, lr_decay: float = 0.0,
            weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
            eps: float = 1e-10) -> Optimizer:
    """Adagrad (torch.optim.Adagrad): per-element LR scaled by accumulated squared gradients."""
    lr, eps, weight_decay = _common(lr, eps, weight_decay)
    return torch.optim.Adagrad(
        params, lr=lr, lr_decay=_number("lr_decay", lr_decay, low=0.0),
        weight_decay=weight_decay, eps=eps,
        initial_accumulator_value=_number("initial_accumulator_value",
                                          initial_accumulator_value, low=0.0))


def adamax(params: ParamsT, *, lr: float = 2e-3, betas: Sequence[float] = (0.9, 0.999),
           eps: float = 1e-8, weight_decay: float = 0.0) -> Optimizer:
    """Adamax (torch.optim.Adamax): Adam with the infinity norm of past gradients."""
    lr, eps, weight_decay = _common(lr, eps, weight_decay)
    return torch.optim.Adamax(params, lr=lr, betas=_betas(betas), eps=eps,
                              weight_decay=weight_decay)


def adadelta(params: ParamsT, *, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
             weight_decay: float = 0.0) -> Optimizer:
    """Adadelta (torch.optim.Adadelta); ``lr`` scales the delta (1.0 is the paper's method)."""
    lr, eps, weight_decay = _common(lr, eps, weight_decay)
    return torch.optim.Adadelta(params, lr=lr, rho=_number("rho", rho, low=0.0, high=1.0),
                                eps=eps, weight_decay=weight_decay)


def radam(params: ParamsT, *, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999),
          eps: float = 1e-8, weight_decay: float = 0.0) -> Optimizer:
    """RAdam (torch.optim.RAdam): Adam with a rectified variance estimate early in training."""
    lr, eps, weight_decay = _common(lr, eps, weight_decay)
    return torch.optim.RAdam(params, lr=lr, betas=_betas(betas), eps=eps,
                             weight_decay=weight_decay)


OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "adam": adam,
    "adamw": adamw,
    "sgd": sgd,
    "novograd": novograd,
    "rmsprop": rmsprop,
    "adagrad": adagrad,
    "adamax": adamax,
    "adadelta": adadelta,
    "radam": radam,
}


# --- schedulers -----------------------------------------------------------------------------


def _phase_steps(kind: str, steps: Any, ratio: Any, max_steps: int) -> int:
    """Steps of a phase from ``{kind}_steps`` or ``{kind}_ratio * max_steps`` (0 if neither)."""
    if steps is not None and ratio is not None:
        raise UserError(f"'{kind}_steps' and '{kind}_ratio' are exclusive: give one of them")
    if steps is not None:
        return _integer(f"{kind}_steps", steps, low=0)
    if ratio is not None:
        return int(_number(f"{kind}_ratio", ratio, low=0.0, high=1.0) * max_steps)
    return 0


def _check_phases(max_steps: int, **phases: int) -> None:
    if sum(phases.values()) > max_steps:
        names = " + ".join(phases)
        values = " + ".join(str(v) for v in phases.values())
        raise UserError(f"{names} must be <= max_steps (got {values} > {max_steps})")


def _check_min_lr(optimizer: Optimizer, min_lr: float, last_epoch: int) -> None:
    """NeMo refuses an initial LR below ``min_lr``; we say so before the first step."""
    key = "lr" if last_epoch == -1 else "initial_lr"
    for i, group in enumerate(optimizer.param_groups):
        lr = float(group.get(key, group["lr"]))
        if lr < min_lr:
            raise UserError(f"'min_lr' must be <= the optimizer's lr (got min_lr={min_lr} > "
                            f"lr={lr} in parameter group {i})")


class WarmupPolicy(LRScheduler):
    """Linear warmup to the optimizer's lr, then constant; ``min_lr`` after ``max_steps``.

    Warmup: ``lr = base_lr * (step + 1) / (W + 1)`` for ``step <= W``, where ``W`` is
    ``warmup_steps`` or ``int(warmup_ratio * max_steps)`` (exclusive; 0 if neither).
    Subclasses replace the constant part by a decay curve (``_decay``).
    """

    def __init__(self, optimizer: Optimizer, *, max_steps: int, warmup_steps: int | None = None,
                 warmup_ratio: float | None = None, min_lr: float = 0.0,
                 last_epoch: int = -1) -> None:
        self._setup(optimizer, max_steps=max_steps, warmup_steps=warmup_steps,
                    warmup_ratio=warmup_ratio, min_lr=min_lr, last_epoch=last_epoch)
        super().__init__(optimizer, last_epoch)

    def _setup(self, optimizer: Optimizer, *, max_steps: Any, warmup_steps: Any,
               warmup_ratio: Any, min_lr: Any, last_epoch: Any, hold_steps: Any = None,
               hold_ratio: Any = None) -> None:
        """Validate and store the phase boundaries (before ``LRScheduler`` takes its first step)."""
        if not isinstance(optimizer, Optimizer):
            raise ParameterError("optimizer", "a torch Optimizer", optimizer, show_type=True)
        self.max_steps = _integer("max_steps", max_steps, low=1)
        self.warmup_steps = _phase_steps("warmup", warmup_steps, warmup_ratio, self.max_steps)
        hold = _phase_steps("hold", hold_steps, hold_ratio, self.max_steps)
        if hold:
            _check_phases(self.max_steps, warmup_steps=self.warmup_steps, hold_steps=hold)
        else:
            _check_phases(self.max_steps, warmup_steps=self.warmup_steps)
        self.hold_end = self.warmup_steps + hold  # first step after the hold phase
        self.min_lr = _number("min_lr", min_lr, low=0.0)
        _check_min_lr(optimizer, self.min_lr, _integer("last_epoch", last_epoch, low=-1))

    def get_lr(self) -> list[float]:
        """The LR of every parameter group at step ``self.last_epoch``."""
        return [self.lr_at(self.last_epoch, float(base)) for base in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

    def lr_at(self, step: int, base_lr: float) -> float:
        """The LR at ``step`` (0-based optimizer steps) for a group whose peak LR is ``base_lr``."""
        warmup = self.warmup_steps
        if warmup > 0 and step <= warmup:
            return base_lr * (step + 1) / (warmup + 1)
        if step < self.hold_end:
            return base_lr
        if step > self.max_steps:
            return self.min_lr
        return self._decay(step, base_lr)

    def _decay(self, step: int, base_lr: float) -> float:
        """The LR after warmup (and hold), for ``step <= max_steps``: constant here."""
        return base_lr

    def _decay_fraction(self, step: int) -> float:
        """How far ``step`` is through the decay phase, 0 at its start and 1 at ``max_steps``."""
        span = self.max_steps - self.hold_end
        return 1.0 if span == 0 else (step - self.hold_end) / span


class WarmupHoldPolicy(WarmupPolicy):
    """Linear warmup, then the optimizer's lr held until ``max_steps``; ``min_lr`` after.

    ``hold_steps`` / ``hold_ratio`` (exclusive) give the hold phase after warmup; here the LR
    stays at its peak after the hold too. Subclasses decay after the hold.
    """

    def __init__(self, optimizer: Optimizer, *, max_steps: int, warmup_steps: int | None = None,
                 warmup_ratio: float | None = None, hold_steps: int | None = None,
                 hold_ratio: float | None = None, min_lr: float = 0.0,
                 last_epoch: int = -1) -> None:
        self._setup(optimizer, max_steps=max_steps, warmup_steps=warmup_steps,
                    warmup_ratio=warmup_ratio, hold_steps=hold_steps, hold_ratio=hold_ratio,
                    min_lr=min_lr, last_epoch=last_epoch)
        LRScheduler.__init__(self, optimizer, last_epoch)


class WarmupAnnealing(WarmupPolicy):
    """Linear warmup, then linear decay from the optimizer's lr to ``min_lr`` at ``max_steps``."""

    def _decay(self, step: int, base_lr: float) -> float:
        return self.min_lr + (1.0 - self._decay_fraction(step)) * (base_lr - self.min_lr)


class SquareAnnealing(WarmupPolicy):
    """Linear warmup, then ``lr = max(base_lr * (1 - t)^2, min_lr)``, ``t`` from 0 to 1 at
    ``max_steps``. NeMo's default ``min_lr`` here is 1e-5."""

    def __init__(self, optimizer: Optimizer, *, max_steps: int, warmup_steps: int | None = None,
                 warmup_ratio: float | None = None, min_lr: float = 1e-5,
                 last_epoch: int = -1) -> None:
        super().__init__(optimizer, max_steps=max_steps, warmup_steps=warmup_steps,
                         warmup_ratio=warmup_ratio, min_lr=min_lr, last_epoch=last_epoch)

    def _decay(self, step: int, base_lr: float) -> float:
        return max(base_lr * (1.0 - self._decay_fraction(step)) ** 2, self.min_lr)


class SquareRootAnnealing(WarmupPolicy):
    """Linear warmup, then ``lr = max(base_lr * sqrt(1 - t), min_lr)``, ``t`` from 0 to 1 at
    ``max_steps``."""

    def _decay(self, step: int, base_lr: float) -> float:
        return max(base_lr * (1.0 - self._decay_fraction(step)) ** 0.5, self.min_lr)


class CosineAnnealing(WarmupPolicy):
    """Linear warmup, then half a cosine from the optimizer's lr to ``min_lr``.

    ``lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * t)) / 2``, ``t`` from 0 at the end of
    warmup to 1 at ``max_steps - C``, then ``min_lr``. ``C`` is ``constant_steps`` or
    ``int(constant_ratio * max_steps)`` (exclusive; 0 if neither): steps held at ``min_lr``
    at the end of training.
    """

    def __init__(self, optimizer: Optimizer, *, max_steps: int, warmup_steps: int | None = None,
                 warmup_ratio: float | None = None, constant_steps: int | None = None,
                 constant_ratio: float | None = None, min_lr: float = 0.0,
                 last_epoch: int = -1) -> None:
        self._setup(optimizer, max_steps=max_steps, warmup_steps=warmup_steps,
                    warmup_ratio=warmup_ratio, min_lr=min_lr, last_epoch=last_epoch)
        constant = _phase_steps("constant", constant_steps, constant_ratio, self.max_steps)
        _check_phases(self.max_steps, warmup_steps=self.warmup_steps, constant_steps=constant)
        self.decay_end = self.max_steps - constant
        LRScheduler.__init__(self, optimizer, last_epoch)

    def _decay(self, step: int, base_lr: float) -> float:
        span = self.decay_end - self.hold_end
        if step >= self.decay_end:
            return self.min_lr
        fraction = (step - self.hold_end) / span
        return self.min_lr + (base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * fraction))


class InverseSquareRootAnnealing(WarmupPolicy):
    """Linear warmup, then ``lr = base_lr / sqrt((step + 1) / (W + 1))`` up to ``max_steps``
    (not clamped to ``min_lr`` before it, as in NeMo); ``min_lr`` after."""

    def _decay(self, step: int, base_lr: float) -> float:
        return base_lr / math.sqrt((step + 1) / (self.warmup_steps + 1))


class NoamAnnealing(WarmupPolicy):
    """The Transformer schedule (Vaswani et al., 2017); the optimizer's lr is a scale factor.

    ``lr = base_lr * d_model^-0.5 * min(s^-0.5, s * W^-1.5)`` with ``s = max(1, step)``
    (``s^-0.5`` alone when ``W`` is 0), at least ``min_lr`` after warmup. As in NeMo there is no
    cut-off at ``max_steps``; it only resolves ``warmup_ratio``.
    """

    def __init__(self, optimizer: Optimizer, *, max_steps: int, d_model: int,
                 warmup_steps: int | None = None, warmup_ratio: float | None = None,
                 min_lr: float = 0.0, last_epoch: int = -1) -> None:
        self.d_model = _integer("d_model", d_model, low=1)
        super().__init__(optimizer, max_steps=max_steps, warmup_steps=warmup_steps,
                         warmup_ratio=warmup_ratio, min_lr=min_lr, last_epoch=last_epoch)

    def lr_at(self, step: int, base_lr: float) -> float:
        step = max(1, step)
        if self.warmup_steps > 0:
            mult = min(step ** -0.5, step * self.warmup_steps ** -1.5)
        else:
            mult = step ** -0.5
        lr = base_lr * self.d_model ** -0.5 * mult
        return max(lr, self.min_lr) if step > self.warmup_steps else lr


class NoamHoldAnnealing(WarmupHoldPolicy):
    """Warmup, hold, then Noam-like decay (Squeezeformer): the peak LR is the optimizer's lr.

    After warmup ``W`` and ``hold`` steps: ``lr = max(base_lr * max(1, W^r) /
    max(1, (step - hold)^r), min_lr)`` with ``r = decay_rate`` (0.5 is Noam's decay, 1.0
    Squeezeformer's). Needs warmup.
    """

    def __init__(self, optimizer: Optimizer, *, max_steps: int, warmup_steps: int | None = None,
                 warmup_ratio: float | None = None, hold_steps: int | None = None,
                 hold_ratio: float | None = None, decay_rate: float = 0.5, min_lr: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.decay_rate = _number("decay_rate", decay_rate, low=0.0, low_open=True)
        super().__init__(optimizer, max_steps=max_steps, warmup_steps=warmup_steps,
                         warmup_ratio=warmup_ratio, hold_steps=hold_steps, hold_ratio=hold_ratio,
                         min_lr=min_lr, last_epoch=last_epoch)

    def _setup(self, optimizer: Optimizer, **kwargs: Any) -> None:
        super()._setup(optimizer, **kwargs)
        if self.warmup_steps == 0:
            raise UserError("NoamHoldAnnealing needs a warmup: 'warmup_steps' (or "
                            "'warmup_ratio * max_steps') must be >= 1")

    def _decay(self, step: int, base_lr: float) -> float:
        hold = self.hold_end - self.warmup_steps
        peak = max(1.0, self.warmup_steps ** self.decay_rate)
        return max(base_lr * peak / max(1.0, (step - hold) ** self.decay_rate), self.min_lr)


def _poly_decay(base_lr: float, min_lr: float, step: int, span: int, power: float,
                cycle: bool) -> float:
    """``(base_lr - min_lr) * (1 - step / span)^power + min_lr``, optionally restarting."""
    if span == 0:
        return min_lr
    if cycle:
        span *= 1 if step == 0 else math.ceil(step / span)
    else:
        step = min(step, span)
    return (base_lr - min_lr) * (1.0 - step / span) ** power + min_lr


class PolynomialDecayAnnealing(WarmupPolicy):
    """Linear warmup, then ``lr = (base_lr - min_lr) * (1 - t)^power + min_lr``, ``t`` from 0
    to 1 at ``max_steps``. ``cycle`` is accepted for NeMo configs; since the LR is ``min_lr``
    after ``max_steps``, it changes nothing."""

    def __init__(self, optimizer: Optimizer, *, max_steps: int, warmup_steps: int | None = None,
                 warmup_ratio: float | None = None, power: float = 1.0, cycle: bool = False,
                 min_lr: float = 0.0, last_epoch: int = -1) -> None:
        self.power = _number("power", power, low=0.0, low_open=True)
        self.cycle = _flag("cycle", cycle)
        super().__init__(optimizer, max_steps=max_steps, warmup_steps=warmup_steps,
                         warmup_ratio=warmup_ratio, min_lr=min_lr, last_epoch=last_epoch)

    def _decay(self, step: int, base_lr: float) -> float:
        return _poly_decay(base_lr, self.min_lr, step - self.hold_end,
                           self.max_steps - self.hold_end, self.power, self.cycle)


class PolynomialHoldDecayAnnealing(WarmupHoldPolicy):
    """Warmup, hold at the optimizer's lr, then polynomial decay to ``min_lr`` at ``max_steps``
    (as PolynomialDecayAnnealing, with ``t`` counted from the end of the hold)."""

    def __init__(self, optimizer: Optimizer, *, max_steps: int, warmup_steps: int | None = None,
                 warmup_ratio: float | None = None, hold_steps: int | None = None,
                 hold_ratio: float | None = None, power: float = 1.0, cycle: bool = False,
                 min_lr: float = 0.0, last_epoch: int = -1) -> None:
        self.power = _number("power", power, low=0.0, low_open=True)
        self.cycle = _flag("cycle", cycle)
        super().__init__(optimizer, max_steps=max_steps, warmup_steps=warmup_steps,
                         warmup_ratio=warmup_ratio, hold_steps=hold_steps, hold_ratio=hold_ratio,
                         min_lr=min_lr, last_epoch=last_epoch)

    _decay = PolynomialDecayAnnealing._decay  # noqa: SLF001 (the same decay, shared by name)


SCHEDULERS: dict[str, Callable[..., LRScheduler]] = {
    "WarmupPolicy": WarmupPolicy,
    "WarmupHoldPolicy": WarmupHoldPolicy,
    "WarmupAnnealing": WarmupAnnealing,
    "SquareAnnealing": SquareAnnealing,
    "SquareRootAnnealing": SquareRootAnnealing,
    "CosineAnnealing": CosineAnnealing,
    "InverseSquareRootAnnealing": InverseSquareRootAnnealing,
    "NoamAnnealing": NoamAnnealing,
    "Noam": NoamAnnealing,
    "NoamHoldAnnealing": NoamHoldAnnealing,
    "PolynomialDecayAnnealing": PolynomialDecayAnnealing,
    "PolynomialHoldDecayAnnealing": PolynomialHoldDecayAnnealing,
}

"""Tests for neuralgraph.optim: built-in optimizers and NeMo-style LR schedulers."""

from __future__ import annotations

import inspect
import io
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim.lr_scheduler import LRScheduler

from neuralgraph import optim
from neuralgraph.optim import OPTIMIZERS, SCHEDULERS, Novograd

MAX, WARM, LR, MIN = 100, 10, 0.5, 0.01
KEY_STEPS = (0, 5, WARM, 55, 99, MAX, MAX + 1, MAX + 20)


def _param(*values: float) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float32))


def _quadratic(param: torch.Tensor) -> torch.Tensor:
    return ((param - torch.tensor([1.0, -2.0, 3.0])) ** 2).sum()


def _scheduler(name: str, lr: float = LR, groups: int = 1, **kwargs: Any) -> LRScheduler:
    params = [{"params": [_param(0.0)], "lr": lr * (i + 1)} for i in range(groups)]
    return SCHEDULERS[name](torch.optim.SGD(params, lr=lr), **kwargs)


def _curve(scheduler: LRScheduler, steps: int, group: int = 0) -> list[float]:
    """The LR the optimizer uses at each of steps 0..steps-1."""
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.optimizer.param_groups[group]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return lrs


def _warm(step: int, base: float = LR, warmup: int = WARM) -> float:
    return base * (step + 1) / (warmup + 1)


def _default_kwargs(name: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_steps": MAX, "warmup_steps": WARM}
    if name in ("NoamAnnealing", "Noam"):
        kwargs["d_model"] = 16
    if "Hold" in name:
        kwargs["hold_steps"] = 20
    return kwargs


class TestOptimizerFactories:
    def test_names(self) -> None:
        """The registry offers NeMo's optimizer names."""
        assert {"adam", "adamw", "sgd", "novograd", "rmsprop", "adagrad"} <= set(OPTIMIZERS)

    @pytest.mark.parametrize("name", sorted(OPTIMIZERS))
    def test_signature_is_explicit(self, name: str) -> None:
        """Every factory names its keyword arguments (no **kwargs) and has a docstring."""
        params = inspect.signature(OPTIMIZERS[name]).parameters
        assert "lr" in params and "weight_decay" in params
        kinds = {p.kind for p in params.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds
        assert OPTIMIZERS[name].__doc__

    @pytest.mark.parametrize("name", sorted(OPTIMIZERS))
    def test_lowers_quadratic_loss(self, name: str) -> None:
        """Thirty steps lower a quadratic loss."""
        param = _param(0.0, 0.0, 0.0)
        opt = OPTIMIZERS[name]([param], lr=20.0 if name == "adadelta" else 0.05)
        start = _quadratic(param).item()
        for _ in range(30):
            opt.zero_grad()
            _quadratic(param).backward()
            opt.step()
        assert _quadratic(param).item() < 0.9 * start

    def test_betas_as_list(self) -> None:
        """``betas`` given as a YAML list becomes the optimizer's tuple."""
        opt = OPTIMIZERS["adamw"]([_param(0.0)], betas=[0.8, 0.9])
        assert opt.param_groups[0]["betas"] == (0.8, 0.9)

    def test_sgd_nesterov(self) -> None:
        """SGD passes momentum and nesterov through."""
        opt = OPTIMIZERS["sgd"]([_param(0.0)], lr=0.1, momentum=0.9, nesterov=True)
        assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.9

    @pytest.mark.parametrize(("name", "kwargs", "match"), [
        ("adam", {"lr": -1.0}, "'lr' must be >= 0"),
        ("adam", {"lr": "1e-3"}, "'lr' must be a number"),
        ("adamw", {"betas": [0.9]}, "'betas' must be a pair"),
        ("novograd", {"betas": (0.9, 1.0)}, r"'betas\[1\]' must be < 1"),
        ("sgd", {"nesterov": True}, "needs 'momentum' > 0"),
        ("rmsprop", {"weight_decay": -0.1}, "'weight_decay' must be >= 0"),
        ("adagrad", {"eps": -1.0}, "'eps' must be >= 0"),
        ("sgd", {"nesterov": "yes"}, "'nesterov' must be true or false"),
    ])
    def test_bad_arguments(self, name: str, kwargs: dict[str, Any], match: str) -> None:
        """A bad argument raises ValueError saying what must hold."""
        with pytest.raises(ValueError, match=match):
            OPTIMIZERS[name]([_param(0.0)], **kwargs)


def _novograd_reference(p: list[float], steps: int, lr: float, betas: tuple[float, float],
                        eps: float, wd: float, averaging: bool) -> list[float]:
    """NovoGrad by hand for the loss 0.5 * |p|^2 (gradient = p), in plain Python floats."""
    m, v = [0.0] * len(p), 0.0
    for _ in range(steps):
        g = list(p)
        norm_sq = sum(x * x for x in g)
        v = norm_sq if v == 0 else betas[1] * v + (1 - betas[1]) * norm_sq
        u = [gi / (math.sqrt(v) + eps) + wd * pi for gi, pi in zip(g, p, strict=True)]
        if averaging:
            u = [(1 - betas[0]) * ui for ui in u]
        m = [betas[0] * mi + ui for mi, ui in zip(m, u, strict=True)]
        p = [pi - lr * mi for pi, mi in zip(p, m, strict=True)]
    return p


class TestNovograd:
    def _run(self, steps: int, **kwargs: Any) -> tuple[torch.Tensor, Novograd]:
        param = _param(3.0, 4.0)
        opt = Novograd([param], **kwargs)
        for _ in range(steps):
            opt.zero_grad()
            (0.5 * (param**2).sum()).backward()
            opt.step()
        return param.detach(), opt

    def test_defaults_as_nemo(self) -> None:
        """Defaults are NeMo's: betas (0.95, 0.98), eps 1e-8, no decay or averaging."""
        group = Novograd([_param(0.0)]).param_groups[0]
        assert group["betas"] == (0.95, 0.98) and group["eps"] == 1e-8
        assert group["weight_decay"] == 0 and not group["grad_averaging"]
        assert not group["amsgrad"]

    def test_two_steps_by_hand(self) -> None:
        """Two steps match the hand computation: p1 = [2.94, 3.92], then the blended moment."""
        param, _ = self._run(1, lr=0.1)
        torch.testing.assert_close(param, torch.tensor([2.94, 3.92]))
        param, _ = self._run(2, lr=0.1)
        v = 0.98 * 25.0 + 0.02 * (2.94**2 + 3.92**2)
        m = [0.95 * 0.6 + 2.94 / (math.sqrt(v) + 1e-8), 0.95 * 0.8 + 3.92 / (math.sqrt(v) + 1e-8)]
        expected = torch.tensor([2.94 - 0.1 * m[0], 3.92 - 0.1 * m[1]])
        torch.testing.assert_close(param, expected)

    def test_weight_decay_and_averaging(self) -> None:
        """Weight decay and gradient averaging follow the reference formulas."""
        kwargs = {"lr": 0.05, "betas": (0.9, 0.5), "eps": 1e-6, "weight_decay": 0.1}
        param, _ = self._run(2, grad_averaging=True, **kwargs)
        expected = _novograd_reference([3.0, 4.0], 2, kwargs["lr"], kwargs["betas"],
                                       kwargs["eps"], kwargs["weight_decay"], averaging=True)
        torch.testing.assert_close(param, torch.tensor(expected))

    def test_second_moment_per_layer(self) -> None:
        """The second moment is one scalar per parameter tensor."""
        _, opt = self._run(1, amsgrad=True)
        state = next(iter(opt.state.values()))
        assert state["exp_avg_sq"].shape == () and state["max_exp_avg_sq"].shape == ()
        assert state["exp_avg_sq"].item() == pytest.approx(25.0)

    def test_gradient_left_unchanged(self) -> None:
        """A step does not modify the gradient (NeMo's does)."""
        param = _param(3.0, 4.0)
        opt = Novograd([param], lr=0.1, weight_decay=0.5)
        (0.5 * (param**2).sum()).backward()
        opt.step()
        torch.testing.assert_close(param.grad, torch.tensor([3.0, 4.0]))

    def test_luc_limits_update(self) -> None:
        """Layer-wise update clipping keeps the step below luc_trust * |p|."""
        param, _ = self._run(1, lr=1.0, luc=True, luc_trust=1e-3)
        step = torch.linalg.vector_norm(param - torch.tensor([3.0, 4.0])).item()
        assert step == pytest.approx(1e-3 * 5.0, rel=1e-4)

    def test_state_dict_resume(self) -> None:
        """Reloading the optimizer state continues exactly."""
        ref, _ = self._run(4, lr=0.1)
        param = _param(3.0, 4.0)
        opt = Novograd([param], lr=0.1)
        for i in range(4):
            if i == 2:
                saved = opt.state_dict()
                opt = Novograd([param], lr=0.1)
                opt.load_state_dict(saved)
            opt.zero_grad()
            (0.5 * (param**2).sum()).backward()
            opt.step()
        torch.testing.assert_close(param.detach(), ref)


def _nemo_expected(name: str, step: int) -> float:
    """NeMo's formulas with max_steps=100, warmup=10, hold=20, lr=0.5, min_lr=0.01."""
    if step <= WARM and name != "NoamAnnealing":
        return _warm(step)
    if step > MAX and name != "NoamAnnealing":
        return MIN
    t = (step - WARM) / (MAX - WARM)
    held = (step - 30) / (MAX - 30)  # the hold schedulers decay from step warmup + hold = 30
    curves: dict[str, Callable[[], float]] = {
        "WarmupPolicy": lambda: LR,
        "WarmupHoldPolicy": lambda: LR,
        "WarmupAnnealing": lambda: MIN + (1 - t) * (LR - MIN),
        "SquareAnnealing": lambda: max(LR * (1 - t) ** 2, MIN),
        "SquareRootAnnealing": lambda: max(LR * (1 - t) ** 0.5, MIN),
        "CosineAnnealing": lambda: MIN + (LR - MIN) * 0.5 * (1 + math.cos(math.pi * t)),
        "InverseSquareRootAnnealing": lambda: LR / math.sqrt((step + 1) / (WARM + 1)),
        "NoamAnnealing": lambda: _noam(step),
        "NoamHoldAnnealing": lambda: (LR if step < 30 else
                                      max(LR * WARM**0.5 / (step - 20) ** 0.5, MIN)),
        "PolynomialDecayAnnealing": lambda: (LR - MIN) * (1 - t) ** 2 + MIN,
        "PolynomialHoldDecayAnnealing": lambda: (LR if step < 30 else
                                                 (LR - MIN) * (1 - held) ** 2 + MIN),
    }
    return curves[name]()


def _noam(step: int, d_model: int = 16) -> float:
    s = max(1, step)
    lr = LR * d_model**-0.5 * min(s**-0.5, s * WARM**-1.5)
    return max(lr, MIN) if s > WARM else lr


class TestSchedulerCurves:
    def test_names(self) -> None:
        """The registry offers NeMo's scheduler names and the Noam alias."""
        assert {"CosineAnnealing", "WarmupAnnealing", "WarmupHoldPolicy", "SquareAnnealing",
                "SquareRootAnnealing", "InverseSquareRootAnnealing", "NoamAnnealing", "Noam",
                "PolynomialDecayAnnealing", "PolynomialHoldDecayAnnealing"} <= set(SCHEDULERS)

    @pytest.mark.parametrize("name", sorted(SCHEDULERS))
    def test_signature_is_explicit(self, name: str) -> None:
        """Every factory takes keyword-only max_steps, warmup and min_lr, no **kwargs."""
        params = inspect.signature(SCHEDULERS[name]).parameters
        for key in ("max_steps", "warmup_steps", "warmup_ratio", "min_lr", "last_epoch"):
            assert params[key].kind is inspect.Parameter.KEYWORD_ONLY
        assert inspect.Parameter.VAR_KEYWORD not in {p.kind for p in params.values()}
        assert SCHEDULERS[name].__doc__

    @pytest.mark.parametrize("name", sorted(set(SCHEDULERS) - {"Noam"}))
    def test_key_steps(self, name: str) -> None:
        """The LR at steps 0, in warmup, end of warmup, middle, max_steps and beyond is NeMo's."""
        kwargs = _default_kwargs(name) | {"min_lr": MIN}
        if name.startswith("Polynomial"):
            kwargs["power"] = 2.0
        lrs = _curve(_scheduler(name, **kwargs), MAX + 21)
        for step in KEY_STEPS:
            assert lrs[step] == pytest.approx(_nemo_expected(name, step)), step

    def test_decay_ends_at_min_lr(self) -> None:
        """Annealing schedulers reach min_lr exactly at max_steps."""
        for name in ("CosineAnnealing", "WarmupAnnealing", "PolynomialDecayAnnealing",
                     "PolynomialHoldDecayAnnealing", "SquareAnnealing", "SquareRootAnnealing"):
            kwargs = _default_kwargs(name) | {"min_lr": MIN}
            assert _curve(_scheduler(name, **kwargs), MAX + 1)[MAX] == pytest.approx(MIN), name

    def test_warmup_ratio(self) -> None:
        """warmup_ratio gives int(ratio * max_steps) warmup steps."""
        sched = _scheduler("CosineAnnealing", max_steps=MAX, warmup_ratio=0.105)
        assert sched.warmup_steps == 10
        assert _curve(sched, WARM + 1)[WARM] == pytest.approx(LR)

    def test_no_warmup_starts_at_peak(self) -> None:
        """Without warmup the first step uses the optimizer's lr."""
        assert _curve(_scheduler("CosineAnnealing", max_steps=MAX), 1)[0] == pytest.approx(LR)

    def test_cosine_constant_steps(self) -> None:
        """constant_steps hold min_lr at the end: the cosine ends at max_steps - constant_steps."""
        sched = _scheduler("CosineAnnealing", max_steps=MAX, warmup_steps=WARM,
                           constant_steps=40, min_lr=MIN)
        lrs = _curve(sched, MAX + 2)
        mid = MIN + (LR - MIN) * 0.5 * (1 + math.cos(math.pi * 25 / 50))
        assert lrs[35] == pytest.approx(mid)
        assert lrs[60] == pytest.approx(MIN) and lrs[MAX] == pytest.approx(MIN)

    def test_parameter_groups_keep_their_base_lr(self) -> None:
        """Each parameter group is scaled from its own lr."""
        sched = _scheduler("WarmupAnnealing", groups=2, max_steps=MAX, warmup_steps=WARM)
        _curve(sched, 55)
        at_55 = [group["lr"] for group in sched.optimizer.param_groups]
        expected = (1 - 45 / 90) * LR
        assert at_55 == pytest.approx([expected, 2 * expected])


class TestSchedulerResume:
    @pytest.mark.parametrize("name", sorted(SCHEDULERS))
    def test_state_dict_round_trip(self, name: str) -> None:
        """Saving at step 37 and resuming in new objects gives the same LR curve."""
        kwargs = _default_kwargs(name)
        reference = _curve(_scheduler(name, **kwargs), MAX + 5)
        sched = _scheduler(name, **kwargs)
        head = _curve(sched, 37)
        buffer = io.BytesIO()
        torch.save({"opt": sched.optimizer.state_dict(), "sched": sched.state_dict()}, buffer)
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)
        resumed = _scheduler(name, **kwargs)
        resumed.optimizer.load_state_dict(saved["opt"])
        resumed.load_state_dict(saved["sched"])
        assert head + _curve(resumed, MAX + 5 - 37) == pytest.approx(reference)


class TestSchedulerArguments:
    @pytest.mark.parametrize(("name", "kwargs", "match"), [
        ("CosineAnnealing", {"max_steps": 0}, "'max_steps' must be >= 1"),
        ("CosineAnnealing", {"max_steps": "100"}, "'max_steps' must be an integer"),
        ("CosineAnnealing", {"max_steps": MAX, "warmup_steps": 5, "warmup_ratio": 0.1},
         "'warmup_steps' and 'warmup_ratio' are exclusive"),
        ("WarmupHoldPolicy", {"max_steps": MAX, "hold_steps": 5, "hold_ratio": 0.1},
         "'hold_steps' and 'hold_ratio' are exclusive"),
        ("CosineAnnealing", {"max_steps": MAX, "warmup_steps": -1}, "'warmup_steps' must be >= 0"),
        ("CosineAnnealing", {"max_steps": MAX, "warmup_ratio": 1.5}, "'warmup_ratio' must be <= 1"),
        ("WarmupAnnealing", {"max_steps": MAX, "warmup_steps": 101},
         "warmup_steps must be <= max_steps"),
        ("PolynomialHoldDecayAnnealing", {"max_steps": MAX, "warmup_steps": 60, "hold_steps": 50},
         r"warmup_steps \+ hold_steps must be <= max_steps"),
        ("CosineAnnealing", {"max_steps": MAX, "warmup_steps": 60, "constant_steps": 50},
         r"warmup_steps \+ constant_steps must be <= max_steps"),
        ("CosineAnnealing", {"max_steps": MAX, "min_lr": 1.0}, "'min_lr' must be <= the optimizer"),
        ("NoamAnnealing", {"max_steps": MAX, "d_model": 0}, "'d_model' must be >= 1"),
        ("NoamHoldAnnealing", {"max_steps": MAX}, "NoamHoldAnnealing needs a warmup"),
        ("PolynomialDecayAnnealing", {"max_steps": MAX, "power": 0.0}, "'power' must be > 0"),
    ])
    def test_bad_arguments(self, name: str, kwargs: dict[str, Any], match: str) -> None:
        """A bad argument raises ValueError saying what must hold."""
        with pytest.raises(ValueError, match=match):
            _scheduler(name, **kwargs)

    def test_integral_float_steps(self) -> None:
        """An integral float such as 1.0e2 from YAML is accepted as a step count."""
        assert _scheduler("CosineAnnealing", max_steps=1.0e2).max_steps == 100

    def test_not_an_optimizer(self) -> None:
        """Passing something other than an optimizer says what is expected."""
        with pytest.raises(ValueError, match="'optimizer' must be a torch Optimizer"):
            optim.CosineAnnealing(object(), max_steps=10)  # type: ignore[arg-type]  # deliberately wrong

"""The training half of the static check: what ``neuralgraph train`` reads beside the graph.

:func:`neuralgraph.checker.check`, the one entry point, checks the graph's structure and calls
these for the run options (``seed``, ``nonfinite_loss``, ``checkpoint``), the optimizer and its
scheduler (``optim``) and the Lightning Trainer's arguments (``trainer``). The precision must be
one Lightning knows, and no node or metric may declare that it cannot run with it on the
accelerator Lightning will pick. Nothing here imports Lightning: the Trainer's argument names
are read from its source.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from collections.abc import Mapping
from typing import Any

from neuralgraph._problems import _check_params, _mapping, _Problems, _suggest
from neuralgraph.errors import UserError
from neuralgraph.registry import Registry
from neuralgraph.validators import (
    Validator,
    and_,
    between,
    boolean,
    finite,
    ge,
    gt,
    in_,
    instance_of,
    non_negative_int,
    number,
    optional,
    positive_int,
    satisfies,
)

__all__ = ["PRECISIONS", "PRECISION_ALIASES", "normalize_precision", "resolve_accelerator",
           "unsupported_precision", "trainer_parameters"]

CHECKPOINT_KEYS = ("every_n_train_steps", "save_top_k", "monitor", "mode")
_SEED = and_(instance_of(int), between(0, 2**32, high_open=True))
_SAVE_TOP_K = and_(instance_of(int), ge(-1))


# --- run options -----------------------------------------------------------------------------


def _check_run_options(config: Mapping[str, Any], problems: _Problems) -> None:
    """``seed``, ``nonfinite_loss`` and ``checkpoint``: read by ``neuralgraph train``."""
    seed = config.get("seed")
    if seed is not None and not _SEED.accepts(seed):
        problems.error(f"'seed' must be an int in [0, 2**32) (got {seed!r})", "seed")
    policy = config.get("nonfinite_loss")
    if policy is not None and policy not in ("skip", "stop"):
        problems.error(f"'nonfinite_loss' must be 'skip' (count the step and go on) or 'stop' "
                       f"(got {policy!r})", "nonfinite_loss")
    ckpt = _mapping(config.get("checkpoint"), problems, "'checkpoint'", "checkpoint")
    for key, value in ckpt.items():
        if key not in CHECKPOINT_KEYS:
            problems.error(f"'{key}' is not a key of 'checkpoint'"
                           f"{_suggest(str(key), CHECKPOINT_KEYS)} "
                           f"(keys: {', '.join(CHECKPOINT_KEYS)})", "checkpoint", key)
        elif key == "every_n_train_steps" and value is not None and \
                not positive_int.accepts(value):
            problems.error(f"checkpoint.every_n_train_steps must be a positive int (got {value!r})",
                           "checkpoint", key)
        elif key == "save_top_k" and not _SAVE_TOP_K.accepts(value):
            problems.error(f"checkpoint.save_top_k must be an int >= -1 (got {value!r})",
                           "checkpoint", key)
        elif key == "monitor" and value is not None and not isinstance(value, str):
            problems.error(f"checkpoint.monitor must be a logged metric's name, e.g. val_loss "
                           f"(got {value!r})", "checkpoint", key)
        elif key == "mode" and value not in ("min", "max"):
            problems.error(f"checkpoint.mode must be 'min' or 'max' (got {value!r})",
                           "checkpoint", key)

# --- optimizer and trainer ---------------------------------------------------------------

_LR = and_(number, finite, gt(0))


def _devices(value: Any) -> bool:
    """Lightning's ``devices``: a positive count, -1 (all), "auto", a count or indices as text
    ("2", "0,1", "-1"), or a non-empty list of device indices."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0 or value == -1
    if isinstance(value, str):
        text = value.strip()
        if text in ("auto", "-1"):
            return True
        parts = [p.strip() for p in text.split(",") if p.strip()]
        return bool(parts) and all(p.isdigit() for p in parts) and (
            "," in text or int(parts[0]) > 0)
    if isinstance(value, list):
        return bool(value) and all(non_negative_int.accepts(i) for i in value)
    return False


def _batches(value: Any) -> bool:
    """A number of batches (an int >= 0) or a fraction of them (a float in [0, 1])."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, float) and 0.0 <= value <= 1.0


def _interval(value: Any) -> bool:
    """``val_check_interval``: batches (an int > 0), a fraction of the epoch (a float in
    (0, 1]), or a time (a string or a mapping, Lightning's to read)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    if isinstance(value, float):
        return 0.0 < value <= 1.0
    return isinstance(value, (str, Mapping))


def _int_or_minus_one(meaning: str) -> Validator:
    return satisfies(lambda v: v >= -1, f"an int >= 0 or -1 ({meaning})", types=(int,))


_BATCHES = satisfies(_batches, "an int >= 0 (batches) or a float in [0, 1] (a fraction)")
_OPTIONAL_FLAG = optional(boolean)
# What Lightning accepts for each Trainer argument a graph file can give (a YAML value: never
# an object); Lightning itself would refuse the rest only when `train` builds the Trainer.
TRAINER_VALUES: dict[str, Validator] = {
    "max_epochs": optional(_int_or_minus_one("no limit")),
    "min_epochs": optional(non_negative_int),
    "max_steps": _int_or_minus_one("no limit"),
    "min_steps": optional(non_negative_int),
    "devices": satisfies(_devices, "a positive int, -1 (every device), 'auto', or a "
                                   "non-empty list of device indices"),
    "num_nodes": positive_int,
    "accumulate_grad_batches": positive_int,
    "check_val_every_n_epoch": optional(positive_int),
    "num_sanity_val_steps": optional(_int_or_minus_one("every batch")),
    "log_every_n_steps": optional(non_negative_int),
    "reload_dataloaders_every_n_epochs": non_negative_int,
    "gradient_clip_val": optional(and_(number, finite, ge(0))),
    "gradient_clip_algorithm": optional(in_(("norm", "value"))),
    "limit_train_batches": optional(_BATCHES),
    "limit_val_batches": optional(_BATCHES),
    "limit_test_batches": optional(_BATCHES),
    "limit_predict_batches": optional(_BATCHES),
    "overfit_batches": _BATCHES,
    "val_check_interval": optional(satisfies(
        _interval, "an int > 0 (batches), a float in (0, 1] (a fraction of the epoch) or a "
                   "time")),
    "fast_dev_run": satisfies(lambda v: isinstance(v, bool) or non_negative_int.accepts(v),
                              "true or false, or an int >= 0 (batches)"),
    "deterministic": optional(satisfies(lambda v: isinstance(v, bool) or v == "warn",
                                        "true, false or 'warn'")),
    "accelerator": instance_of(str),
    "strategy": instance_of(str),
    "default_root_dir": optional(instance_of(str)),
    **{flag: _OPTIONAL_FLAG for flag in ("enable_checkpointing", "enable_progress_bar",
                                         "enable_model_summary", "benchmark")},
    **{flag: boolean for flag in ("inference_mode", "use_distributed_sampler", "detect_anomaly",
                                  "barebones", "sync_batchnorm", "enable_autolog_hparams")},
}


def _check_optim(optim: Any, registry: Registry, problems: _Problems) -> dict[str, Any]:
    cfg = _mapping(optim, problems, "'optim'", "optim")
    if not cfg:
        return {}
    name = cfg.get("name")
    if not isinstance(name, str):
        problems.error("'optim' needs 'name' (adam, adamw, sgd, novograd, ...)", "optim")
        return cfg
    try:
        factory = registry.get("optimizer", name).obj
    except UserError as exc:
        problems.error(str(exc), "optim", "name")
        return cfg
    params = {k: v for k, v in cfg.items() if k not in ("name", "sched")}
    _check_params(params, factory, problems, f"optimizer '{name}'", ("optim",), skip=("params",),
                  params_key=None)
    if "lr" in params:
        error = _LR.problem("lr", params["lr"])
        if error is not None:
            problems.error(str(error), "optim", "lr")
    sched = cfg.get("sched")
    if sched is not None:
        sched_cfg = _mapping(sched, problems, "'optim.sched'", "optim", "sched")
        sched_name = sched_cfg.get("name")
        if not isinstance(sched_name, str):
            problems.error("'optim.sched' needs 'name' (CosineAnnealing, ...)", "optim", "sched")
            return cfg
        try:
            sched_factory = registry.get("scheduler", sched_name).obj
        except UserError as exc:
            problems.error(str(exc), "optim", "sched", "name")
            return cfg
        sched_params = {k: v for k, v in sched_cfg.items() if k not in ("name", "max_steps")}
        max_steps = sched_cfg.get("max_steps")
        if max_steps is not None and not positive_int.accepts(max_steps):
            problems.error(f"optim.sched.max_steps must be a positive int (got {max_steps!r})",
                           "optim", "sched", "max_steps")
        _check_params(sched_params, sched_factory, problems, f"scheduler '{sched_name}'",
                      ("optim", "sched"), skip=("optimizer", "max_steps"), params_key=None)
    return cfg


def _check_trainer(trainer: Any, classes: Mapping[str, Mapping[str, type | None]],
                   problems: _Problems) -> dict[str, Any]:
    """The Trainer's arguments and its precision; ``classes`` maps "node" and "metric" to each
    one's class (None where it has a problem of its own)."""
    cfg = _mapping(trainer, problems, "'trainer'", "trainer")
    accepted = trainer_parameters()
    for key, value in cfg.items():
        if accepted and key not in accepted:
            problems.error(f"'{key}' is not a Lightning Trainer argument"
                           f"{_suggest(key, accepted)}", "trainer", key)
        elif key in TRAINER_VALUES:
            error = TRAINER_VALUES[key].problem(key, value)
            if error is not None:
                problems.error(str(error), "trainer", key)
    _check_precision(cfg, classes, problems)
    return cfg


# --- precision -------------------------------------------------------------------------------

PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true",
              "transformer-engine", "transformer-engine-float16")
PRECISION_ALIASES = {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed", "64": "64-true"}


def normalize_precision(value: Any) -> str | None:
    """Lightning's name of a precision ("16" -> "16-mixed"); None when it is not one."""
    text = str(value).strip()
    text = PRECISION_ALIASES.get(text, text)
    return text if text in PRECISIONS else None


def resolve_accelerator(value: Any) -> str:
    """The device type Lightning will train on: "cpu", "cuda", "mps"... ("auto" without a GPU
    is "cpu"). Decided with torch alone, without importing Lightning."""
    name = str(value).strip().lower()
    if name not in ("auto", "gpu"):
        return name
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu" if name == "auto" else "cuda"


def unsupported_precision(cls: type, precision: str, accelerator: str) -> str | None:
    """Why ``cls`` cannot run with ``precision`` on ``accelerator``, from its
    ``unsupported_precisions`` declaration; None when it can.

    A declaration maps a precision to a reason (on every accelerator) or to
    ``{accelerator: reason}`` (only there; "gpu" stands for "cuda").
    """
    declared = getattr(cls, "unsupported_precisions", None) or {}
    for key, value in dict(declared).items():
        if normalize_precision(key) != precision:
            continue
        if not isinstance(value, Mapping):
            if value:
                return str(value)
            continue
        by_device = {("cuda" if str(k).lower() == "gpu" else str(k).lower()): v
                     for k, v in value.items()}
        reason = by_device.get(accelerator)
        if reason:
            return str(reason)
    return None


def _check_precision(cfg: Mapping[str, Any], parts: Mapping[str, Mapping[str, type | None]],
                     problems: _Problems) -> None:
    """A known precision, and no node or metric that declares it cannot run with it here."""
    given = cfg.get("precision", "32-true")
    precision = normalize_precision(given)
    if precision is None:
        problems.error(f"precision {given!r} is not a Lightning precision"
                       f"{_suggest(str(given), [*PRECISIONS, *PRECISION_ALIASES])} (one of: "
                       f"{', '.join(PRECISIONS)})", "trainer", "precision")
        return
    accelerator = resolve_accelerator(cfg.get("accelerator", "auto"))
    effective, note = precision, ""
    if precision == "16-mixed" and accelerator == "cpu":
        effective, note = "bf16-mixed", " (Lightning runs it as bf16-mixed there)"
        problems.warn("precision 16-mixed needs a GPU: on cpu Lightning runs bf16-mixed instead "
                      "(fp16 autocast is GPU only); write bf16-mixed to say so",
                      "trainer", "precision")
    for kind, plans in parts.items():
        for name, cls in plans.items():
            if cls is None:
                continue
            reason = unsupported_precision(cls, effective, accelerator)
            if reason:
                problems.error(f"{kind} '{name}' ({cls.__name__}) cannot run with precision "
                               f"{precision} on {accelerator}{note}: {reason}",
                               "trainer", "precision", node=name)


@functools.lru_cache(maxsize=1)
def trainer_parameters() -> frozenset[str]:
    """Lightning Trainer's keyword arguments, read from its source without importing Lightning.

    Only the text of ``Trainer.__init__``'s signature is parsed (a few ms, where parsing all of
    trainer.py costs a third of a second on every ``check``); the whole file is the fallback.
    """
    spec = importlib.util.find_spec("pytorch_lightning")
    if spec is None or spec.origin is None:
        return frozenset()
    from pathlib import Path

    try:
        source = (Path(spec.origin).parent / "trainer" / "trainer.py").read_text(
            encoding="utf-8")
    except OSError:
        return frozenset()
    try:
        start = source.index("def __init__(", source.index("class Trainer"))
        end = source.index(") -> None:", start)
        func = ast.parse(source[start:end] + "): pass").body[0]
        assert isinstance(func, ast.FunctionDef)
        return _arg_names(func)
    except (ValueError, SyntaxError, AssertionError):
        pass
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return frozenset()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Trainer":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    return _arg_names(item)
    return frozenset()


def _arg_names(func: ast.FunctionDef) -> frozenset[str]:
    args = func.args
    return frozenset(a.arg for a in [*args.args, *args.kwonlyargs] if a.arg != "self")

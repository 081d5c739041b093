"""``neuralgraph info NAME``: a registered thing's docstring, parameters and typed ports."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from neuralgraph.errors import UserError
from neuralgraph.registry import KINDS, Entry, get_registry

__all__ = ["describe"]


def _find(name: str) -> Entry:
    registry = get_registry()
    errors = []
    for kind in KINDS:
        try:
            return registry.get(kind, name)
        except UserError as exc:
            errors.append(str(exc))
    ambiguous = [e for e in errors if "several plugins" in e]
    if ambiguous:
        raise UserError(ambiguous[0])
    raise UserError(f"nothing is registered as '{name}'{registry.suggest(KINDS, name)}")


def _signature_lines(obj: Any, skip: tuple[str, ...]) -> list[str]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    lines = []
    for pname, param in inspect.signature(target).parameters.items():
        if pname in ("self", *skip) or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = "" if param.annotation is param.empty else f": {_annotation(param)}"
        default = " (required)" if param.default is param.empty else f" = {param.default!r}"
        lines.append(f"  {pname}{annotation}{default}")
    return lines or ["  (none)"]


def _annotation(param: inspect.Parameter) -> str:
    text = param.annotation if isinstance(param.annotation, str) else getattr(
        param.annotation, "__name__", str(param.annotation))
    return str(text)


def _ports(entry: Entry, params: dict[str, Any]) -> list[str]:
    import torch

    try:
        with torch.device("meta"):
            instance = entry.obj(**params)
    except Exception as exc:  # required parameters missing or invalid: say how to see ports
        return [f"  (ports depend on parameters: {type(exc).__name__}: {exc}; "
                f"give them as key=value)"]
    lines = []
    for title, attr in (("inputs", "input_types"), ("outputs", "output_types")):
        types = getattr(instance, attr, None)
        if types is None:
            continue
        lines.append(f"{title}:")
        for port, ntype in dict(types).items():
            optional = " (optional)" if ntype.optional else ""
            lines.append(f"  {port}: {ntype}{optional}")
        if not types:
            lines.append("  (none)")
    return lines


def describe(name: str, param_args: Sequence[str] = ()) -> str:
    """Text describing the registered ``name``; ``param_args`` are ``key=value`` strings."""
    import yaml

    entry = _find(name)
    params: dict[str, Any] = {}
    for text in param_args:
        key, eq, value = text.partition("=")
        if not eq:
            raise UserError(f"parameters are key=value (got {text!r})")
        params[key] = yaml.safe_load(value)
    kind = entry.kind.replace("_", " ")
    doc = inspect.cleandoc(getattr(entry.obj if entry.kind != "command" else entry.obj[1],
                                   "__doc__", None) or "") or entry.help or "(no docstring)"
    lines = [f"{entry.qualified} — {kind} from plugin '{entry.plugin}'", "", doc, ""]
    if entry.kind == "command":
        return "\n".join(lines)
    skip = {"optimizer": ("params",), "scheduler": ("optimizer", "max_steps")}.get(entry.kind,
                                                                                   ())
    lines += ["parameters:", *_signature_lines(entry.obj, skip)]
    if entry.kind in ("module", "loss", "metric", "data_source"):
        lines += _ports(entry, params)
        if entry.kind == "data_source":
            lines += ["split parameters (data.train, data.validation, ...):",
                      *_signature_lines(entry.obj.dataloader, ("self", "split"))]
    return "\n".join(lines)

"""``neuralgraph info NAME``: a registered thing's docstring, parameters and typed ports.

``key=value`` parameters are checked before anything is built: a name the constructor does
not take, or a value that its annotation rules out (``feat_in=abc`` for ``feat_in: int``), is
a UserError naming the parameter, what it must be and what it got; so is the constructor's own
refusal of a value once every required parameter is given.
"""

from __future__ import annotations

import collections.abc
import difflib
import inspect
import types
import typing
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


def _target(obj: Any) -> Any:
    return obj.__init__ if inspect.isclass(obj) else obj


def _hints(target: Any) -> dict[str, Any]:
    """The resolved annotations of ``target``'s parameters (those that resolve)."""
    try:
        return typing.get_type_hints(target)
    except Exception:  # a name only imported for type checking: resolve one by one
        hints = {}
        space = getattr(target, "__globals__", {})
        for name, param in inspect.signature(target).parameters.items():
            if isinstance(param.annotation, str):
                try:
                    hints[name] = eval(param.annotation, space, {})  # the plugin's own annotation
                except Exception:
                    continue
            elif param.annotation is not param.empty:
                hints[name] = param.annotation
        return hints


_SIMPLE = ((bool, "true or false"), (int, "an int"), (float, "a number"), (str, "a string"))
_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.MutableSequence)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def _requirement(hint: Any, value: Any) -> str | None:
    """What ``hint`` requires when ``value`` does not meet it ("an int"), else None (also for
    an annotation this check cannot judge: the constructor judges those)."""
    if hint is Any or hint is object:
        return None
    if hint is None or hint is type(None):
        return None if value is None else "null"
    origin = typing.get_origin(hint)
    if origin is typing.Union or isinstance(hint, types.UnionType):
        needs = [_requirement(arg, value) for arg in typing.get_args(hint)]
        return None if None in needs else " or ".join(dict.fromkeys(needs))
    if origin is typing.Literal:
        options = typing.get_args(hint)
        return None if value in options else "one of " + ", ".join(map(repr, options))
    if origin in _SEQUENCES or hint in _SEQUENCES:
        return None if isinstance(value, (list, tuple)) else "a list"
    if origin in _MAPPINGS or hint in _MAPPINGS:
        return None if isinstance(value, dict) else "a mapping"
    for kind, words in _SIMPLE:
        if hint is kind:
            fits = (isinstance(value, (int, float)) if kind is float else isinstance(value, kind))
            return None if fits and (kind is bool or not isinstance(value, bool)) else words
    return None


def _check_params(entry: Entry, params: dict[str, Any], texts: dict[str, str],
                  skip: tuple[str, ...]) -> None:
    """Refuse a parameter ``entry`` does not take or a value its annotation rules out."""
    from neuralgraph.validators import ParameterError

    target = _target(entry.obj)
    signature = inspect.signature(target).parameters
    if any(p.kind is p.VAR_KEYWORD for p in signature.values()):
        return
    names = [n for n, p in signature.items() if n not in ("self", *skip)
             and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    hints = _hints(target)
    for key, value in params.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"{texts[key]}: {entry.qualified} has no parameter '{key}'{hint}; "
                            f"its parameters: {', '.join(names) or 'none'}")
        needed = _requirement(hints[key], value) if key in hints else None
        if needed is not None:
            raise UserError(f"{texts[key]}: {ParameterError(key, needed, value, show_type=True)}")


def _ports(entry: Entry, params: dict[str, Any], texts: dict[str, str]) -> list[str]:
    import torch

    signature = inspect.signature(_target(entry.obj)).parameters
    missing = [n for n, p in signature.items() if n != "self" and p.default is p.empty
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in params]
    if missing:
        return [f"  (ports depend on parameters: give {', '.join(missing)} as key=value)"]
    try:
        with torch.device("meta"):
            instance = entry.obj(**params)
    except (UserError, ValueError, TypeError, KeyError, AssertionError) as exc:
        if not params:  # nothing of the user's to blame: show what the defaults give
            return [f"  (ports depend on parameters: {type(exc).__name__}: {exc}; "
                    f"give them as key=value)"]
        named = str(getattr(exc, "parameter", "")).split(".")[0]
        given = texts.get(named) or " ".join(texts.values())  # the argument to blame, if known
        raise UserError(f"{given}: bad parameter for {entry.qualified}: {exc}") from None
    except Exception as exc:  # a constructor that cannot run on the meta device
        return [f"  (ports could not be built: {type(exc).__name__}: {exc})"]
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
    texts: dict[str, str] = {}
    for text in param_args:
        key, eq, value = text.partition("=")
        if not eq or not key:
            raise UserError(f"parameters are key=value (got {text!r})")
        try:
            params[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            reason = str(getattr(exc, "problem", None) or exc).splitlines()[0]
            raise UserError(f"{text}: the value must be a YAML value, e.g. 64, true, [1, 2] "
                            f"or a string ({reason})") from None
        texts[key] = text
    kind = entry.kind.replace("_", " ")
    doc = inspect.cleandoc(getattr(entry.obj if entry.kind != "command" else entry.obj[1],
                                   "__doc__", None) or "") or entry.help or "(no docstring)"
    lines = [f"{entry.qualified} — {kind} from plugin '{entry.plugin}'", "", doc, ""]
    if entry.kind == "command":
        return "\n".join(lines)
    skip = {"optimizer": ("params",), "scheduler": ("optimizer", "max_steps")}.get(entry.kind,
                                                                                   ())
    _check_params(entry, params, texts, skip)
    lines += ["parameters:", *_signature_lines(entry.obj, skip)]
    if entry.kind in ("module", "loss", "metric", "data_source"):
        lines += _ports(entry, params, texts)
        if entry.kind == "data_source":
            lines += ["split parameters (data.train, data.validation, ...):",
                      *_signature_lines(entry.obj.dataloader, ("self", "split"))]
    return "\n".join(lines)

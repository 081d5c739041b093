"""Validators as values: what a constructor argument must be, checked by one call.

Modelled on attrs' ``validators``: a validator is a value (``positive_int``, ``in_(("avg",
"max"))``, ``between(0, 1)``...) and :func:`check` applies one or more of them to an argument::

    from neuralgraph.validators import between, check, in_, odd, positive_int

    kernel = check("kernel", kernel, positive_int, odd)
    pooling = check("pooling", pooling, in_(("avg", "max")))
    prob = check("prob", prob, between(0, 1))

A value that fails raises :class:`ParameterError`, worded as attrs words its errors::

    'kernel' must be an odd positive int (got 4)
    'prob' must be in [0, 1] (got '0.5' that is a str)

The value's class is named when the value is not of the type the validator needs. The error
carries the parameter's name, the requirement and the value as fields, so that ``neuralgraph
check`` reports it at the parameter's own line of the graph file. A name may be a dotted path
into a nested parameter (``jasper.3.kernel``, ``augmentor.speed.prob``): a part that is a
number is a list index, shown as ``jasper[3].kernel`` in the message.

``bool`` is never an int nor a number here (YAML's ``true`` is not a kernel size). Validators
given together (``check(name, v, positive_int, odd)`` or ``and_(positive_int, odd)``) must all
hold, and a failure states their combined requirement.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from neuralgraph.errors import UserError

__all__ = [
    "ParameterError",
    "Validator",
    "and_",
    "between",
    "boolean",
    "check",
    "each",
    "finite",
    "ge",
    "gt",
    "in_",
    "instance_of",
    "le",
    "lt",
    "non_empty",
    "non_negative_int",
    "number",
    "odd",
    "optional",
    "positive_int",
    "satisfies",
    "sequence",
]

T = TypeVar("T")

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8


class ParameterError(UserError):
    """A constructor argument that breaks a requirement: a ``ValueError`` (and a
    :class:`~neuralgraph.UserError`, printed without a traceback) with structured fields.

    ``parameter`` is the argument's name, or a dotted path into it (``jasper.3.kernel``);
    ``requirement`` what must hold ("an odd positive int"); ``got`` the value found. The message
    is ``'kernel' must be an odd positive int (got 4)``; ``show_type`` adds the value's class
    (``(got '4' that is a str)``) when the value is not of the type required.
    """

    def __init__(self, parameter: str, requirement: str, got: Any, *,
                 show_type: bool = False) -> None:
        self.parameter = parameter
        self.requirement = requirement
        self.got = got
        self.show_type = show_type
        shown = _REPR.repr(got)
        if show_type:
            shown += f" that is {_article(type(got).__name__)}"
        super().__init__(f"'{_display_name(parameter)}' must be {requirement} (got {shown})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.parameter, self.requirement, self.got, self.show_type))

    def within(self, prefix: str) -> ParameterError:
        """The same error for a parameter nested under ``prefix`` (``speed.prob`` ->
        ``augmentor.speed.prob``)."""
        return ParameterError(f"{prefix}.{self.parameter}", self.requirement, self.got,
                              show_type=self.show_type)


def _rebuild(parameter: str, requirement: str, got: Any, show_type: bool) -> ParameterError:
    return ParameterError(parameter, requirement, got, show_type=show_type)


def _display_name(parameter: str) -> str:
    """A dotted parameter path as messages show it: ``jasper.3.kernel`` -> ``jasper[3].kernel``."""
    first, *rest = parameter.split(".")
    return first + "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in rest)


def _article(phrase: str) -> str:
    vowel = phrase[:1].lower() in "aeio" or (phrase[:1].lower() == "u"
                                             and not phrase.lower().startswith(("uni", "us")))
    return f"{'an' if vowel else 'a'} {phrase}"


def _is_instance(value: Any, types: tuple[type, ...]) -> bool:
    """``isinstance``, except that a bool is not an int (nor a number) unless bool is asked."""
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


# --- the validator value ---------------------------------------------------------------------


@attrs.frozen
class Validator:
    """What a value must be: its ``requirement`` in words, the ``types`` it must have (None:
    any) and a ``test`` it must pass once it has them.

    ``form`` says how the requirement combines with others in :func:`and_`: a ``noun``
    ("a positive int"), an ``adjective`` put before the noun ("odd" -> "an odd positive int")
    or a ``qualifier`` put after it (">= 0" -> "a number >= 0").
    """

    requirement: str
    types: tuple[type, ...] | None = None
    test: Callable[[Any], bool] | None = None
    form: str = attrs.field(default="noun",
                            validator=attrs.validators.in_(("noun", "adjective", "qualifier")))

    def problem(self, name: str, value: Any) -> ParameterError | None:
        """The error ``value`` (the parameter ``name``) raises, or None when it passes."""
        if self.types is not None and not _is_instance(value, self.types):
            return ParameterError(name, self.requirement, value, show_type=True)
        if self.test is not None:
            try:
                passed = bool(self.test(value))
            except (TypeError, ValueError):
                passed = False
            if not passed:
                return ParameterError(name, self.requirement, value)
        return None

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` passes."""
        return self.problem("value", value) is None


@attrs.frozen
class _All(Validator):
    parts: tuple[Validator, ...] = ()

    def problem(self, name: str, value: Any) -> ParameterError | None:
        for part in self.parts:
            found = part.problem(name, value)
            if found is not None:
                if found.parameter != name:  # an item of a list: its own, precise error
                    return found
                return ParameterError(name, self.requirement, value, show_type=found.show_type)
        return None


@attrs.frozen
class _Optional(Validator):
    inner: Validator | None = None

    def problem(self, name: str, value: Any) -> ParameterError | None:
        if value is None or self.inner is None:
            return None
        found = self.inner.problem(name, value)
        if found is not None and found.parameter == name:
            return ParameterError(name, self.requirement, value, show_type=found.show_type)
        return found


@attrs.frozen
class _Each(Validator):
    item: Validator | None = None

    def problem(self, name: str, value: Any) -> ParameterError | None:
        if not _is_sequence(value):
            return ParameterError(name, self.requirement, value, show_type=True)
        if self.item is not None:
            for i, item in enumerate(value):
                found = self.item.problem(f"{name}.{i}", item)
                if found is not None:
                    return found
        return None


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _combine(parts: Sequence[Validator]) -> str:
    """The requirement of validators that must all hold, as one phrase where the words allow:
    (positive_int, odd) -> "an odd positive int"; (number, ge(0)) -> "a number >= 0"."""
    nouns = [p for p in parts if p.form == "noun"]
    if len(nouns) == 1 and nouns[0].requirement.startswith(("a ", "an ")):
        body = nouns[0].requirement.split(" ", 1)[1]
        adjectives = [p.requirement for p in parts if p.form == "adjective"]
        phrase = _article(" ".join([*adjectives, body]))
        qualifiers = [p.requirement for p in parts if p.form == "qualifier"]
        return " ".join([phrase, " and ".join(qualifiers)]) if qualifiers else phrase
    return " and ".join(p.requirement for p in parts)


def _number_text(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _show(choice: Any) -> str:
    return "null" if choice is None else repr(choice)


# --- validators ------------------------------------------------------------------------------

_TYPE_WORDS: dict[type, str] = {bool: "true or false", int: "an int", float: "a float",
                                str: "a string", list: "a list", tuple: "a tuple",
                                dict: "a mapping", Mapping: "a mapping"}


def instance_of(*types: type) -> Validator:
    """An instance of one of ``types`` (a bool is an int only if ``bool`` is among them)."""
    words = " or ".join(_TYPE_WORDS.get(t) or _article(t.__name__) for t in types)
    return Validator(words, types=types)


def in_(choices: Iterable[Any]) -> Validator:
    """One of ``choices`` (a mapping's keys for a mapping); None is written ``null``."""
    options = tuple(choices)
    bools = any(isinstance(c, bool) for c in options)

    def test(value: Any) -> bool:  # True == 1, yet true is not a choice of 1
        return value in options and (bools or not isinstance(value, bool))

    return Validator(f"one of {', '.join(_show(c) for c in options)}", test=test)


def _bound(op: str, bound: float, test: Callable[[Any], bool]) -> Validator:
    return Validator(f"{op} {_number_text(bound)}", types=(int, float), test=test,
                     form="qualifier")


def ge(bound: float) -> Validator:
    """A number ``>= bound``."""
    return _bound(">=", bound, lambda value: value >= bound)


def gt(bound: float) -> Validator:
    """A number ``> bound``."""
    return _bound(">", bound, lambda value: value > bound)


def le(bound: float) -> Validator:
    """A number ``<= bound``."""
    return _bound("<=", bound, lambda value: value <= bound)


def lt(bound: float) -> Validator:
    """A number ``< bound``."""
    return _bound("<", bound, lambda value: value < bound)


def between(low: float, high: float, *, low_open: bool = False,
            high_open: bool = False) -> Validator:
    """A number in ``[low, high]``; ``low_open`` / ``high_open`` leave out that end."""
    def test(value: Any) -> bool:
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        return above and below

    interval = (f"{'(' if low_open else '['}{_number_text(low)}, {_number_text(high)}"
                f"{')' if high_open else ']'}")
    return Validator(f"in {interval}", types=(int, float), test=test, form="qualifier")


def satisfies(test: Callable[[Any], bool], requirement: str, *,
              types: tuple[type, ...] | None = None, form: str = "noun") -> Validator:
    """A validator of your own: ``test(value)`` must be true; ``requirement`` says so in words
    ("a power of two"). A test that raises TypeError or ValueError fails."""
    return Validator(requirement, types=types, test=test, form=form)


def and_(*validators: Validator) -> Validator:
    """All of ``validators`` hold; a failure states their combined requirement."""
    if len(validators) == 1:
        return validators[0]
    form = "noun" if any(v.form == "noun" for v in validators) else validators[0].form
    return _All(_combine(validators), form=form, parts=tuple(validators))


def optional(validator: Validator) -> Validator:
    """None (YAML's ``null``), or a value that ``validator`` accepts."""
    return _Optional(f"{validator.requirement} or null", inner=validator)


def each(validator: Validator) -> Validator:
    """A list (or tuple) whose every item ``validator`` accepts; an item that fails is reported
    as ``name.i`` (shown ``name[i]``)."""
    return _Each(f"a list, each item {validator.requirement}", item=validator)


positive_int = Validator("a positive int", types=(int,), test=lambda value: value > 0)
"""An int > 0 (not a bool)."""
non_negative_int = Validator("an int >= 0", types=(int,), test=lambda value: value >= 0)
"""An int >= 0 (not a bool)."""
odd = Validator("odd", types=(int,), test=lambda value: value % 2 == 1, form="adjective")
"""An odd int: with ``positive_int``, "an odd positive int"."""
number = Validator("a number", types=(int, float), test=lambda value: not math.isnan(value))
"""An int or a float, not NaN (not a bool)."""
finite = Validator("finite", types=(int, float), test=math.isfinite, form="adjective")
"""A number that is neither infinite nor NaN: with ``number``, "a finite number"."""
boolean = Validator("true or false", types=(bool,))
"""A bool: YAML's ``true`` / ``false`` (not 0 / 1, not a string)."""
sequence = Validator("a list", types=(Sequence,), test=_is_sequence)
"""A list or a tuple (not a string)."""
non_empty = Validator("non-empty", test=lambda value: len(value) > 0, form="adjective")
"""Something with a length > 0: with ``sequence``, "a non-empty list"."""


# --- applying them ---------------------------------------------------------------------------


def check(name: str, value: T, *validators: Validator) -> T:
    """``value`` when every validator accepts it; else raise :class:`ParameterError` naming
    ``name`` (the parameter, or a dotted path into it), the requirement and the value."""
    for validator in validators:
        found = validator.problem(name, value)
        if found is not None:
            if len(validators) > 1 and found.parameter == name:
                found = ParameterError(name, _combine(validators), value,
                                       show_type=found.show_type)
            raise found
    return value

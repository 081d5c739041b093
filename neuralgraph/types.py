"""Neural types: axis kinds, element types and their comparison, with NeMo 1.x semantics.

A :class:`NeuralType` is a tuple of :class:`AxisType` (kind, optional size, list flag) plus an
:class:`ElementType` describing what the numbers mean. ``declared.compare(incoming)`` returns a
:class:`NeuralTypeComparisonResult`; a port accepts an edge when the result is ``SAME`` or
``GREATER`` (see :func:`accepts`).

Two deliberate departures from NeMo: an ``Any`` axis never hides a mismatch found on another axis,
and ``==`` returns a ``bool``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

__all__ = [
    "AcousticEncodedRepresentation",
    "AudioSignal",
    "AxisKind",
    "AxisKindAbstract",
    "AxisType",
    "BoolType",
    "CategoricalValuesType",
    "ChannelType",
    "ClassificationTarget",
    "ElementType",
    "EmbeddedTextType",
    "EncodedRepresentation",
    "FloatType",
    "Index",
    "IntType",
    "LabelsType",
    "Length",
    "LengthsType",
    "LogitsType",
    "LogprobsType",
    "LossType",
    "MFCCSpectrogramType",
    "MaskType",
    "MelSpectrogramType",
    "NeuralType",
    "NeuralTypeComparisonResult",
    "PredictionsType",
    "ProbsType",
    "RegressionValuesType",
    "SpectrogramType",
    "StringLabel",
    "StringType",
    "Target",
    "TokenDurationType",
    "TokenIndex",
    "TokenLogitsType",
    "VoidType",
    "accepts",
]


class AxisKindAbstract(enum.Enum):
    """Base of axis-kind enums; plugins may define their own kinds by subclassing it."""


class AxisKind(AxisKindAbstract):
    """The meaning of a tensor axis. ``Channel`` is the same kind as ``Dimension``, as in NeMo."""

    Batch = 0
    Time = 1
    Dimension = 2
    Channel = 2
    Width = 3
    Height = 4
    Any = 5
    Sequence = 6
    FlowGroup = 7
    Singleton = 8

    def __str__(self) -> str:
        return self.name

    @property
    def letter(self) -> str:
        """The short spelling used in shape strings (``B``, ``T``, ``D``...)."""
        return _KIND_LETTER[self]

    @classmethod
    def from_str(cls, label: str) -> AxisKind:
        """Parse an axis letter or name, case-insensitively (``"B"``, ``"time"``, ``"C"``...)."""
        key = str(label).strip().lower()
        try:
            return _LETTERS[key]
        except KeyError:
            known = ", ".join(sorted({k for k in _LETTERS if len(k) == 1}))
            raise ValueError(
                f"axis kind must be one of the letters {known} or a kind name "
                f"(got {label!r})"
            ) from None


_LETTERS: dict[str, AxisKind] = {
    "b": AxisKind.Batch,
    "n": AxisKind.Batch,
    "batch": AxisKind.Batch,
    "t": AxisKind.Time,
    "time": AxisKind.Time,
    "d": AxisKind.Dimension,
    "c": AxisKind.Dimension,
    "dimension": AxisKind.Dimension,
    "channel": AxisKind.Dimension,
    "w": AxisKind.Width,
    "width": AxisKind.Width,
    "h": AxisKind.Height,
    "height": AxisKind.Height,
    "any": AxisKind.Any,
    "s": AxisKind.Singleton,
    "singleton": AxisKind.Singleton,
    "sequence": AxisKind.Sequence,
    "seq": AxisKind.Sequence,
    "flowgroup": AxisKind.FlowGroup,
}
_KIND_LETTER: dict[AxisKind, str] = {
    AxisKind.Batch: "B",
    AxisKind.Time: "T",
    AxisKind.Dimension: "D",
    AxisKind.Width: "W",
    AxisKind.Height: "H",
    AxisKind.Any: "ANY",
    AxisKind.Sequence: "Seq",
    AxisKind.FlowGroup: "FlowGroup",
    AxisKind.Singleton: "S",
}


class AxisType:
    """One axis of a neural type: its kind, an optional fixed size and whether it is a list axis.

    ``size`` is an ``int`` when the module's parameters fix it (an encoder's output ``D`` is its
    last block's filters), else ``None`` (any size).
    """

    __slots__ = ("is_list", "kind", "size")

    def __init__(
        self, kind: AxisKindAbstract | str, size: int | None = None, is_list: bool = False
    ) -> None:
        if isinstance(kind, str):
            kind = AxisKind.from_str(kind)
        if not isinstance(kind, AxisKindAbstract):
            raise ValueError(f"axis kind must be an AxisKind or a letter (got {kind!r})")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise ValueError(f"axis size must be a non-negative int or None (got {size!r})")
            if is_list:
                raise ValueError("a list axis cannot have a size")
        self.kind = kind
        self.size = size
        self.is_list = is_list

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AxisType):
            return NotImplemented
        return (self.kind, self.size, self.is_list) == (other.kind, other.size, other.is_list)

    def __hash__(self) -> int:
        return hash((self.kind, self.size, self.is_list))

    def __repr__(self) -> str:
        letter = self.kind.letter if isinstance(self.kind, AxisKind) else str(self.kind)
        text = letter if self.size is None else f"{letter}={self.size}"
        return f"[{text}]" if self.is_list else text


class NeuralTypeComparisonResult(enum.Enum):
    """Outcome of ``a.compare(b)``, with NeMo's meanings."""

    SAME = 0
    LESS = 1  # a is a subtype of b
    GREATER = 2  # b is a subtype of a
    DIM_INCOMPATIBLE = 3  # same kinds, but a fixed size differs
    TRANSPOSE_SAME = 4  # the same axes in another order (or list vs tensor axes)
    CONTAINER_SIZE_MISMATCH = 5
    INCOMPATIBLE = 6
    SAME_TYPE_INCOMPATIBLE_PARAMS = 7  # same element class, a parameter differs
    UNCHECKED = 8  # not comparable before build (a size unknown until run time)


R = NeuralTypeComparisonResult


# ---------------------------------------------------------------------------------------------
# element types
# ---------------------------------------------------------------------------------------------


class ElementType:
    """What the numbers of a tensor mean. Subclasses form a hierarchy compared by ``issubclass``.

    ``type_parameters`` maps parameter names to values; ``None`` is a wildcard.
    """

    def __str__(self) -> str:
        params = {k: v for k, v in self.type_parameters.items() if v is not None}
        if not params:
            return type(self).__name__
        inner = ", ".join(f"{k}={v}" for k, v in params.items())
        return f"{type(self).__name__}({inner})"

    __repr__ = __str__

    @property
    def type_parameters(self) -> dict[str, Any]:
        """Parameters that distinguish instances of one class (``{}`` for most types)."""
        return {}

    @property
    def fields(self) -> tuple[str, ...] | None:
        """Names of a container's fields, else ``None``."""
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ElementType):
            return NotImplemented
        return type(self) is type(other) and self.type_parameters == other.type_parameters

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.type_parameters.items(), key=str))))

    def compare(self, second: ElementType) -> NeuralTypeComparisonResult:
        """Compare element types: subclass relation first, then parameters of the same class."""
        if isinstance(self, VoidType):
            return R.SAME
        if isinstance(second, VoidType):
            return R.INCOMPATIBLE
        if type(self) is type(second):
            mine, theirs = self.type_parameters, second.type_parameters
            if mine.keys() != theirs.keys():
                return R.SAME_TYPE_INCOMPATIBLE_PARAMS
            for key, value in mine.items():
                other = theirs[key]
                if value is not None and other is not None and value != other:
                    return R.SAME_TYPE_INCOMPATIBLE_PARAMS
            return R.SAME
        if isinstance(self, type(second)):
            return R.LESS
        if isinstance(second, type(self)):
            return R.GREATER
        return R.INCOMPATIBLE


class VoidType(ElementType):
    """Accepts any element type; nothing but Void is accepted by a port of another type."""


class BoolType(ElementType):
    """Booleans."""


class IntType(ElementType):
    """Integers."""


class FloatType(ElementType):
    """Floating-point numbers."""


class ChannelType(ElementType):
    """Features of a channel."""


class EmbeddedTextType(ChannelType):
    """Text embeddings."""


class LogitsType(ElementType):
    """Unnormalized scores."""


class TokenLogitsType(LogitsType):
    """Per-token logits."""


class LogprobsType(ElementType):
    """Log-probabilities."""


class ProbsType(ElementType):
    """Probabilities."""


class LossType(ElementType):
    """A loss value."""


class LengthsType(ElementType):
    """Lengths of sequences in a batch."""


class Length(LengthsType):
    """A length (NeMo's older name)."""


class EncodedRepresentation(ChannelType):
    """Hidden features produced by an encoder."""


class AcousticEncodedRepresentation(EncodedRepresentation):
    """Encoded acoustic features."""


class AudioSignal(ElementType):
    """A waveform sampled at ``freq`` Hz (``None`` accepts any rate)."""

    def __init__(self, freq: int | None = None) -> None:
        if freq is not None and (isinstance(freq, bool) or not isinstance(freq, int) or freq <= 0):
            raise ValueError(f"AudioSignal freq must be a positive int or None (got {freq!r})")
        self._freq = freq

    @property
    def type_parameters(self) -> dict[str, Any]:
        return {"freq": self._freq}


class SpectrogramType(ChannelType):
    """A spectrogram."""


class MelSpectrogramType(SpectrogramType):
    """A mel spectrogram."""


class MFCCSpectrogramType(SpectrogramType):
    """Mel-frequency cepstral coefficients."""


class LabelsType(ElementType):
    """Integer class labels drawn from a vocabulary of ``vocab_size`` (``None``: unknown)."""

    def __init__(self, vocab_size: int | None = None) -> None:
        if vocab_size is not None and (
            isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= 0
        ):
            raise ValueError(f"vocab_size must be a positive int or None (got {vocab_size!r})")
        self._vocab_size = vocab_size

    @property
    def type_parameters(self) -> dict[str, Any]:
        return {"vocab_size": self._vocab_size}


class TokenIndex(ElementType):
    """Indices of tokens in a vocabulary."""


class PredictionsType(LabelsType):
    """Predicted labels."""


class CategoricalValuesType(PredictionsType):
    """Predicted categories."""


class RegressionValuesType(PredictionsType):
    """Predicted real values."""


class MaskType(ElementType):
    """A mask."""


class Index(ElementType):
    """An index."""


class Target(ElementType):
    """A target."""


class ClassificationTarget(Target):
    """A classification target."""


class StringType(ElementType):
    """Strings."""


class StringLabel(StringType):
    """String labels."""


class TokenDurationType(ElementType):
    """Durations of tokens."""


# ---------------------------------------------------------------------------------------------
# neural types
# ---------------------------------------------------------------------------------------------

AxesSpec = Iterable["AxisType | str | AxisKindAbstract"] | str | None


class NeuralType:
    """The type of a port: axes (or ``None`` for any shape) and an element type.

    ``NeuralType(("B", "D", "T"), MelSpectrogramType())`` — axes may be letters, kinds or
    :class:`AxisType` instances. ``optional=True`` marks an input that may stay unconnected.
    """

    __slots__ = ("axes", "elements_type", "optional")

    def __init__(
        self,
        axes: AxesSpec = None,
        elements_type: ElementType | None = None,
        optional: bool = False,
    ) -> None:
        if elements_type is None:
            elements_type = VoidType()
        if isinstance(elements_type, type):
            raise ValueError(
                f"elements_type must be an ElementType instance, e.g. {elements_type.__name__}() "
                f"(got the class {elements_type.__name__})"
            )
        if not isinstance(elements_type, ElementType):
            raise ValueError(
                f"elements_type must be an ElementType instance (got {elements_type!r} "
                f"that is a {type(elements_type).__name__})"
            )
        if isinstance(axes, str):
            axes = tuple(axes) if all(len(part) == 1 for part in axes) else (axes,)
        self.axes: tuple[AxisType, ...] | None = (
            None if axes is None else tuple(_as_axis(a) for a in axes)
        )
        self.elements_type = elements_type
        self.optional = bool(optional)

    def __repr__(self) -> str:
        axes = "*" if self.axes is None else "(" + ", ".join(map(repr, self.axes)) + ")"
        opt = ", optional" if self.optional else ""
        return f"NeuralType({axes}, {self.elements_type}{opt})"

    def __str__(self) -> str:
        axes = "*" if self.axes is None else "(" + ",".join(map(repr, self.axes)) + ")"
        return f"{axes} {self.elements_type}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NeuralType):
            return NotImplemented
        return self.compare(other) is R.SAME

    def __hash__(self) -> int:
        return hash((self.axes, self.elements_type))

    def compare(self, second: NeuralType) -> NeuralTypeComparisonResult:
        """Compare this type (typically a declared input) with ``second`` (what arrives).

        Returns SAME, LESS (self is more specific), GREATER (self is more general),
        TRANSPOSE_SAME, DIM_INCOMPATIBLE, SAME_TYPE_INCOMPATIBLE_PARAMS or INCOMPATIBLE.
        """
        if not isinstance(second, NeuralType):
            raise TypeError(f"can only compare with a NeuralType (got {type(second).__name__})")
        if isinstance(self.elements_type, VoidType) and self.axes is None:
            return R.SAME
        if self.axes is None:
            if second.axes is None:
                return self.elements_type.compare(second.elements_type)
            return R.INCOMPATIBLE
        if second.axes is None:
            return R.INCOMPATIBLE
        axes_result = _compare_axes(self.axes, second.axes)
        element_result = self.elements_type.compare(second.elements_type)
        if axes_result is R.SAME:
            return element_result
        if axes_result in (R.TRANSPOSE_SAME, R.DIM_INCOMPATIBLE) and element_result is R.SAME:
            return axes_result
        return R.INCOMPATIBLE

    def sizes_unknown(self, second: NeuralType) -> list[int]:
        """Positions where this type fixes a size that ``second`` leaves open (known at run)."""
        if self.axes is None or second.axes is None or len(self.axes) != len(second.axes):
            return []
        return [
            i
            for i, (mine, theirs) in enumerate(zip(self.axes, second.axes))
            if mine.size is not None and theirs.size is None and mine.kind == theirs.kind
        ]

    def without_sizes(self, positions: Iterable[int]) -> NeuralType:
        """A copy whose axes at ``positions`` accept any size."""
        if self.axes is None:
            return self
        drop = set(positions)
        axes = [
            AxisType(a.kind, None, a.is_list) if i in drop else a for i, a in enumerate(self.axes)
        ]
        return NeuralType(axes, self.elements_type, self.optional)


def _as_axis(axis: AxisType | str | AxisKindAbstract) -> AxisType:
    if isinstance(axis, AxisType):
        return axis
    return AxisType(axis)


def _compare_axes(first: tuple[AxisType, ...], second: tuple[AxisType, ...]) -> R:
    """NeMo's axis rule; an ``Any`` axis matches its own position only and hides nothing else.

    Sizes are compared only where ``first`` is sized (an unsized axis accepts any size).
    """
    if len(first) != len(second):
        return R.INCOMPATIBLE
    same = True
    kinds_first: dict[AxisKindAbstract, list[int | None]] = {}
    kinds_second: dict[AxisKindAbstract, list[int | None]] = {}
    for mine, theirs in zip(first, second):
        if mine.kind is AxisKind.Any:
            continue
        kinds_first.setdefault(mine.kind, []).append(mine.size)
        kinds_second.setdefault(theirs.kind, []).append(theirs.size)
        if (
            mine.kind != theirs.kind
            or mine.is_list != theirs.is_list
            or (mine.size is not None and mine.size != theirs.size)
        ):
            same = False
    if same:
        return R.SAME
    if {k: len(v) for k, v in kinds_first.items()} != {k: len(v) for k, v in kinds_second.items()}:
        return R.INCOMPATIBLE
    for kind, sizes in kinds_first.items():
        for size, other in zip(sizes, kinds_second[kind]):
            if size is not None and size != other:
                return R.DIM_INCOMPATIBLE
    return R.TRANSPOSE_SAME


def accepts(declared: NeuralType, incoming: NeuralType) -> bool:
    """NeMo's port rule: the declared input accepts what arrives if compare is SAME or GREATER."""
    return declared.compare(incoming) in (R.SAME, R.GREATER)

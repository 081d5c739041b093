"""neuralgraph: typed graphs of neural modules, declared in YAML, checked before they run.

The public surface is this module's ``__all__``. Everything that needs torch or Lightning
(``NeuralModule``, ``Graph``, ``GraphModel``...) is imported lazily, so that
``import neuralgraph`` and the CLI's ``--help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neuralgraph.errors import GraphError, Location, Problem, UserError
from neuralgraph.hookspecs import hookimpl
from neuralgraph.types import (
    AcousticEncodedRepresentation,
    AudioSignal,
    AxisKind,
    AxisType,
    BoolType,
    CategoricalValuesType,
    ChannelType,
    ClassificationTarget,
    ElementType,
    EmbeddedTextType,
    EncodedRepresentation,
    FloatType,
    Index,
    IntType,
    LabelsType,
    Length,
    LengthsType,
    LogitsType,
    LogprobsType,
    LossType,
    MaskType,
    MelSpectrogramType,
    MFCCSpectrogramType,
    NeuralType,
    NeuralTypeComparisonResult,
    PredictionsType,
    ProbsType,
    RegressionValuesType,
    SpectrogramType,
    StringLabel,
    StringType,
    Target,
    TokenDurationType,
    TokenIndex,
    TokenLogitsType,
    VoidType,
    accepts,
)

if TYPE_CHECKING:
    from neuralgraph.graph import Graph
    from neuralgraph.metric import NeuralMetric
    from neuralgraph.model import ExecutionPlan, GraphModel, PlannedNode
    from neuralgraph.module import (
        DataSource,
        NeuralModule,
        TypecheckError,
        is_typecheck_enabled,
        set_typecheck,
        typecheck,
    )
    from neuralgraph.pretrained import PretrainedEntry
    from neuralgraph.registry import Registry
    from neuralgraph.validators import ParameterError

__version__ = "0.1.0"

_LAZY = {
    "DataSource": "neuralgraph.module",
    "NeuralModule": "neuralgraph.module",
    "TypecheckError": "neuralgraph.module",
    "is_typecheck_enabled": "neuralgraph.module",
    "set_typecheck": "neuralgraph.module",
    "typecheck": "neuralgraph.module",
    "Graph": "neuralgraph.graph",
    "GraphModel": "neuralgraph.model",
    "ExecutionPlan": "neuralgraph.model",
    "PlannedNode": "neuralgraph.model",
    "NeuralMetric": "neuralgraph.metric",
    "Progress": "neuralgraph.progress",
    "PretrainedEntry": "neuralgraph.pretrained",
    "Registry": "neuralgraph.registry",
    "get_registry": "neuralgraph.registry",
    "ParameterError": "neuralgraph.validators",
    "validators": "neuralgraph.validators",  # the module itself
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        value = module if module.__name__ == f"neuralgraph.{name}" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neuralgraph' has no attribute {name!r}")


__all__ = [
    "AcousticEncodedRepresentation",
    "AudioSignal",
    "AxisKind",
    "AxisType",
    "BoolType",
    "CategoricalValuesType",
    "ChannelType",
    "ClassificationTarget",
    "DataSource",
    "ElementType",
    "EmbeddedTextType",
    "EncodedRepresentation",
    "ExecutionPlan",
    "FloatType",
    "Graph",
    "GraphError",
    "GraphModel",
    "Index",
    "IntType",
    "LabelsType",
    "Length",
    "LengthsType",
    "Location",
    "LogitsType",
    "LogprobsType",
    "LossType",
    "MFCCSpectrogramType",
    "MaskType",
    "MelSpectrogramType",
    "NeuralMetric",
    "NeuralModule",
    "NeuralType",
    "NeuralTypeComparisonResult",
    "ParameterError",
    "PlannedNode",
    "PredictionsType",
    "PretrainedEntry",
    "Problem",
    "ProbsType",
    "Progress",
    "Registry",
    "RegressionValuesType",
    "SpectrogramType",
    "StringLabel",
    "StringType",
    "Target",
    "TokenDurationType",
    "TokenIndex",
    "TokenLogitsType",
    "TypecheckError",
    "UserError",
    "VoidType",
    "accepts",
    "get_registry",
    "hookimpl",
    "is_typecheck_enabled",
    "set_typecheck",
    "typecheck",
    "validators",
]

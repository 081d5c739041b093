"""The static checker: proves a graph well-formed and every edge type-compatible before build.

It looks every name up in the registry, validates parameters against the constructors'
signatures, instantiates modules on the ``meta`` device (no weights are allocated) to read their
port types, and compares each edge with NeMo's port rule. Every problem is collected with its
file:line; the result is a :class:`Plan` that :class:`~neuralgraph.model.GraphModel` executes.

This module checks the graph's structure: top-level keys, nodes, data, wiring, edge types,
``train_only`` nodes, the loss and the metrics. What a training run reads beside the graph (the
run options, ``optim`` and ``trainer`` with its precision) is checked by
:mod:`neuralgraph.trainer_checks`; :func:`check` calls both and is the one entry point.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import attrs
import networkx as nx

from neuralgraph._problems import (
    _check_params,
    _mapping,
    _Problems,
    _suggest,
    _value_problems,
)
from neuralgraph.config import LineIndex
from neuralgraph.errors import Problem, UserError
from neuralgraph.registry import NODE_KINDS, Registry
from neuralgraph.trainer_checks import _check_optim, _check_run_options, _check_trainer
from neuralgraph.types import AxisType, LossType, NeuralType, NeuralTypeComparisonResult, accepts
from neuralgraph.validators import (
    ParameterError,
    and_,
    ge,
    non_negative_int,
    number,
    positive_int,
)

__all__ = ["DataPlan", "NodePlan", "Plan", "check", "folder_name_problem"]

R = NeuralTypeComparisonResult
DATA = "data"
TOP_KEYS = ("name", "trainer", "data", "nodes", "loss", "metrics", "optim", "seed", "checkpoint",
            "nonfinite_loss")
NODE_KEYS = ("module", "params", "inputs", "train_only")
METRIC_KEYS = ("module", "params", "inputs")
DATA_KEYS = ("module", "params", "train", "validation", "test")
# What a split's well-known loader keys must be, whatever the data source annotates; the other
# keys are checked against the annotations of its dataloader method (int, float, bool, str).
SPLIT_KEYS = {"batch_size": positive_int, "num_workers": non_negative_int,
              "prefetch_factor": positive_int}
SPLIT_KEY_SUFFIXES = {"duration": and_(number, ge(0))}  # seconds: min_duration, max_duration


@attrs.frozen
class NodePlan:
    """A checked node: its class and parameters, where each input comes from, its port types."""

    name: str
    cls: type
    params: dict[str, Any]
    inputs: dict[str, str]  # input port -> source key ("data.audio_signal", "encoder.outputs")
    input_types: dict[str, NeuralType]
    output_types: dict[str, NeuralType]
    train_only: bool = False

    @property
    def skip_map(self) -> dict[str, str]:
        """For a train_only node: output port -> the source passed through when it is skipped."""
        sources = list(self.inputs.get(p) for p in self.input_types)
        return {out: src for out, src in zip(self.output_types, sources) if src is not None}


@attrs.frozen
class DataPlan:
    """The checked data source: class, parameters, output ports and each split's keys."""

    cls: type
    params: dict[str, Any]
    output_types: dict[str, NeuralType]
    splits: dict[str, dict[str, Any]]


@attrs.frozen
class Plan:
    """What a checked graph runs: nodes in topological order, metrics, data, loss, warnings."""

    nodes: dict[str, NodePlan]
    metrics: dict[str, NodePlan]
    data: DataPlan | None
    loss: str | None
    optim: dict[str, Any]
    trainer: dict[str, Any]
    warnings: list[Problem]

    def port_type(self, key: str) -> NeuralType | None:
        """The type of a source key (``data.X`` or ``node.port``)."""
        node, _, port = key.partition(".")
        if node == DATA:
            return self.data.output_types.get(port) if self.data else None
        plan = self.nodes.get(node)
        return plan.output_types.get(port) if plan else None


def check(config: Mapping[str, Any], index: LineIndex, registry: Registry) -> tuple[Plan | None,
                                                                                      list[Problem]]:
    """Check a resolved graph config; return the plan (None when there are errors) and problems."""
    problems = _Problems(index)
    _check_top(config, problems)
    _check_run_options(config, problems)
    data = _check_data(config.get("data"), registry, problems)
    specs = _node_specs(config.get("nodes"), problems)
    nodes: dict[str, NodePlan | None] = {
        name: _build_node(name, spec, registry, problems, ("nodes", name), NODE_KINDS, NODE_KEYS)
        for name, spec in specs.items()
    }
    order = _wire(nodes, data, problems, specs)
    metrics_cfg = config.get("metrics") or {}
    metrics: dict[str, NodePlan | None] = {}
    if not isinstance(metrics_cfg, Mapping):
        problems.error(f"'metrics' must be a mapping of name -> metric (found "
                       f"{type(metrics_cfg).__name__})", "metrics")
    else:
        for name, spec in metrics_cfg.items():
            if not isinstance(spec, Mapping):
                problems.error(f"metric '{name}' must be a mapping with 'module' and 'inputs'",
                               "metrics", name)
                continue
            metrics[name] = _build_node(name, spec, registry, problems, ("metrics", name),
                                        ("metric",), METRIC_KEYS)
    _check_train_only(nodes, problems)
    if order is not None:
        _propagate_pass_through_sizes(nodes, data, order)
    _type_edges(nodes, data, problems, "nodes")
    _type_edges({k: v for k, v in metrics.items() if v}, data, problems, "metrics",
                producers=nodes)
    loss = _check_loss(config.get("loss"), nodes, problems)
    optim = _check_optim(config.get("optim"), registry, problems)
    trainer = _check_trainer(config.get("trainer"), {"node": _classes(nodes),
                                                     "metric": _classes(metrics)}, problems)
    if problems.has_errors or order is None:
        return None, problems.items
    plan = Plan(
        nodes={name: nodes[name] for name in order if nodes[name] is not None},  # type: ignore
        metrics={k: v for k, v in metrics.items() if v is not None},
        data=data,
        loss=loss,
        optim=optim,
        trainer=trainer,
        warnings=problems.items,
    )
    return plan, problems.items


def _classes(plans: Mapping[str, NodePlan | None]) -> dict[str, type | None]:
    return {name: plan.cls if plan is not None else None for name, plan in plans.items()}


# --- structure -------------------------------------------------------------------------------


def _check_top(config: Mapping[str, Any], problems: _Problems) -> None:
    for key in config:
        if key in TOP_KEYS:
            continue
        close = difflib.get_close_matches(key, TOP_KEYS, n=1, cutoff=0.75)
        if close and close[0] not in config:
            problems.error(f"unknown top-level key '{key}'; did you mean '{close[0]}'?", key)
    if "nodes" not in config:
        problems.error("the graph has no 'nodes'", )
    name = config.get("name")
    if name is not None and not isinstance(name, str):
        problems.error(f"'name' must be a string (got {name!r})", "name")
    elif name and (why := folder_name_problem(name)):
        problems.error(f"'name' must be a single folder name, as it names the run folder and "
                       f"the archive under --exp-dir; {why} (found {name!r})", "name")


def folder_name_problem(text: str) -> str | None:
    """Why ``text`` cannot name one folder or file inside another (None when it can): a graph
    file's ``name`` or a ``--version`` must not choose where a run's files land."""
    if not text:
        return "it is empty"
    if "/" in text or "\\" in text:
        return "it has a '/' or '\\', which would make it a path"
    if text.startswith("."):
        return "it starts with '.' (as '.', '..' and hidden folders do)"
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "it has a NUL or another control character"
    if len(text.encode("utf-8", "surrogatepass")) > 200:
        return "it is longer than 200 bytes"
    return None


def _node_specs(nodes: Any, problems: _Problems) -> dict[str, Mapping[str, Any]]:
    specs: dict[str, Mapping[str, Any]] = {}
    for name, spec in _mapping(nodes, problems, "'nodes'", "nodes").items():
        if name == DATA:
            problems.error("a node cannot be named 'data': that name refers to the data source",
                           "nodes", name, node=name)
        elif not name.isidentifier():
            problems.error(f"node name '{name}' must be an identifier (letters, digits, _)",
                           "nodes", name, node=name)
        elif not isinstance(spec, Mapping):
            problems.error(f"node '{name}' must be a mapping with 'module', 'params', 'inputs'",
                           "nodes", name, node=name)
        else:
            specs[name] = spec
    return specs


# --- parameters and instantiation ------------------------------------------------------------


def _instantiate(cls: type, params: Mapping[str, Any], problems: _Problems, what: str,
                 path: tuple[str | int, ...], node: str | None) -> Any:
    """Build ``cls(**params)`` on the meta device; a constructor error becomes a problem (at
    the parameter's own line when the constructor names it with a ParameterError)."""
    import torch

    try:
        with torch.device("meta"):
            return cls(**params)
    except ParameterError as exc:
        _parameter_problem(exc, problems, (*path, "params"), node)
    except (ValueError, TypeError, KeyError, AssertionError, UserError) as exc:
        if not _annotation_problems(cls, params, problems, (*path, "params"), node):
            problems.error(f"bad parameter for {what}: {exc}", *path, "params", node=node)
    except Exception as exc:  # a constructor that cannot run on meta: report, don't crash
        if not _annotation_problems(cls, params, problems, (*path, "params"), node):
            problems.error(f"{what} could not be built with these parameters: "
                           f"{type(exc).__name__}: {exc}", *path, "params", node=node)
    return None


def _annotation_problems(cls: type, params: Mapping[str, Any], problems: _Problems,
                         path: tuple[str | int, ...], node: str | None = None) -> bool:
    """After a constructor failed without naming the parameter: report each value that is not
    of its annotated type (``in_features: int`` given 'abc') at its own key, where the bare
    exception ("'<=' not supported between 'str' and 'int'") would only say 'params'.
    Whether any was found."""
    found = _value_problems(params, cls)
    for exc in found:
        _parameter_problem(exc, problems, path, node)
    return bool(found)


def _parameter_problem(exc: ParameterError, problems: _Problems, params: tuple[str | int, ...],
                       node: str | None = None) -> None:
    """Report a constructor's ParameterError at the parameter's key under ``params`` (or at the
    deepest part of it that the file has: ``params`` itself for a default value)."""
    problems.error(str(exc), *problems.parameter_path(params, exc.parameter), node=node)


def _port_types(instance: Any, problems: _Problems, what: str, path: tuple[str | int, ...],
                node: str | None) -> tuple[dict[str, NeuralType], dict[str, NeuralType]] | None:
    try:
        inputs = dict(instance.input_types)
        outputs = dict(getattr(instance, "output_types", {}) or {})
    except Exception as exc:  # a plugin's property failed: say which
        problems.error(f"{what} could not declare its port types: {type(exc).__name__}: {exc}",
                       *path, node=node)
        return None
    return inputs, outputs


def _build_node(name: str, spec: Mapping[str, Any], registry: Registry, problems: _Problems,
                path: tuple[str, str], kinds: tuple[str, ...],
                allowed_keys: tuple[str, ...]) -> NodePlan | None:
    for key in spec:
        if key not in allowed_keys:
            problems.error(f"'{key}' is not a key of a node{_suggest(key, allowed_keys)} "
                           f"(keys: {', '.join(allowed_keys)})", *path, key, node=name)
    module_name = spec.get("module")
    inputs = _mapping(spec.get("inputs"), problems, f"inputs of '{name}'", *path, "inputs")
    params = _mapping(spec.get("params"), problems, f"params of '{name}'", *path, "params")
    train_only = spec.get("train_only", False)
    if not isinstance(train_only, bool):
        problems.error(f"train_only must be true or false (got {train_only!r})", *path,
                       "train_only", node=name)
    if not isinstance(module_name, str):
        problems.error(f"node '{name}' needs 'module: NAME' (a registered module)", *path,
                       node=name)
        return None
    try:
        entry = registry.get(kinds, module_name)
    except UserError as exc:
        problems.error(str(exc), *path, "module", node=name)
        return None
    what = f"{module_name} (node '{name}')"
    for port, ref in inputs.items():
        if not isinstance(ref, str):
            problems.error(f"input '{port}' of '{name}' must be a port reference 'node.port' "
                           f"(got {ref!r})", *path, "inputs", port, node=name, port=port)
    if not _check_params(params, entry.obj, problems, what, path, node=name):
        return None
    instance = _instantiate(entry.obj, params, problems, what, path, name)
    if instance is None:
        return None
    types = _port_types(instance, problems, what, path, name)
    if types is None:
        return None
    return NodePlan(name, entry.obj, params, {k: v for k, v in inputs.items()
                                              if isinstance(v, str)},
                    types[0], types[1], bool(train_only) and isinstance(train_only, bool))


def _check_data(data_cfg: Any, registry: Registry, problems: _Problems) -> DataPlan | None:
    if data_cfg is None:
        return None
    spec = _mapping(data_cfg, problems, "'data'", "data")
    if not spec:
        return None
    for key in spec:
        if key not in DATA_KEYS:
            problems.error(f"'{key}' is not a key of 'data'{_suggest(key, DATA_KEYS)} "
                           f"(keys: {', '.join(DATA_KEYS)})", "data", key)
    module_name = spec.get("module")
    if not isinstance(module_name, str):
        problems.error("'data' needs 'module: NAME' (a registered data source)", "data")
        return None
    try:
        entry = registry.get("data_source", module_name)
    except UserError as exc:
        problems.error(str(exc), "data", "module")
        return None
    params = _mapping(spec.get("params"), problems, "data params", "data", "params")
    what = f"data source {module_name}"
    if not _check_params(params, entry.obj, problems, what, ("data",)):
        return None
    splits: dict[str, dict[str, Any]] = {}
    for split in ("train", "validation", "test"):
        if spec.get(split) is None:
            continue
        split_cfg = _mapping(spec[split], problems, f"data.{split}", "data", split)
        _check_params(split_cfg, entry.obj.dataloader, problems, f"{what} ({split} split)",
                      ("data", split), skip=("split",), params_key=None)
        for exc in _value_problems(split_cfg, entry.obj.dataloader, SPLIT_KEYS,
                                   SPLIT_KEY_SUFFIXES):
            _parameter_problem(exc, problems, ("data", split))
        splits[split] = split_cfg
    try:
        instance = entry.obj(**params)
        output_types = dict(instance.output_types)
    except ParameterError as exc:
        _parameter_problem(exc, problems, ("data", "params"))
        return None
    except (ValueError, TypeError, KeyError, UserError) as exc:
        if not _annotation_problems(entry.obj, params, problems, ("data", "params")):
            problems.error(f"bad parameter for {what}: {exc}", "data", "params")
        return None
    return DataPlan(entry.obj, params, output_types, splits)


# --- wiring ----------------------------------------------------------------------------------


def _wire(nodes: Mapping[str, NodePlan | None], data: DataPlan | None,
          problems: _Problems, specs: Mapping[str, Mapping[str, Any]]) -> list[str] | None:
    """Check references and connections; return a topological order (None on a cycle)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    for name, plan in nodes.items():
        if plan is None:  # its own problem is reported; still follow its edges for cycles
            raw = specs[name].get("inputs")
            for ref in (raw.values() if isinstance(raw, Mapping) else ()):
                source = str(ref).partition(".")[0]
                if source in nodes:
                    graph.add_edge(source, name)
            continue
        for port, ref in plan.inputs.items():
            if port not in plan.input_types:
                problems.error(
                    f"{plan.cls.__name__} (node '{name}') has no input port '{port}'"
                    f"{_suggest(port, plan.input_types)} (inputs: "
                    f"{', '.join(plan.input_types) or 'none'})",
                    "nodes", name, "inputs", port, node=name, port=port)
            source = _resolve_ref(ref, nodes, data, problems, ("nodes", name, "inputs", port),
                                  name, port)
            if source is not None and source != DATA:
                graph.add_edge(source, name)
        for port, declared in plan.input_types.items():
            if port not in plan.inputs and not declared.optional:
                problems.error(f"required input '{port}' of '{name}' ({plan.cls.__name__}) is "
                               f"not connected; it expects {declared}", "nodes", name,
                               node=name, port=port)
    cycles = [c for c in nx.strongly_connected_components(graph)
              if len(c) > 1 or graph.has_edge(next(iter(c)), next(iter(c)))]
    for component in cycles:
        cycle = nx.find_cycle(graph.subgraph(component))
        path = " -> ".join([cycle[0][0], *(v for _, v in cycle)])
        first = sorted(component)[0]
        problems.error(f"the nodes form a cycle: {path}", "nodes", first, "inputs", node=first)
    if cycles:
        return None
    return list(nx.lexicographical_topological_sort(graph))


def _resolve_ref(ref: str, nodes: Mapping[str, NodePlan | None], data: DataPlan | None,
                 problems: _Problems, path: tuple[str | int, ...], node: str,
                 port: str) -> str | None:
    """Check that ``ref`` ("node.port" or "data.port") names an existing output port."""
    source, dot, out_port = ref.partition(".")
    if not dot or not source or not out_port:
        problems.error(f"'{ref}' is not a port reference; write 'node.port' or 'data.port'",
                       *path, node=node, port=port)
        return None
    if source == DATA:
        if data is None:
            problems.error(f"'{ref}' refers to the data source, but the graph has no valid "
                           "'data' section", *path, node=node, port=port)
            return None
        ports = data.output_types
    elif source in nodes:
        plan = nodes[source]
        if plan is None:
            return source  # the source node has its own problem already
        ports = plan.output_types
    else:
        problems.error(f"'{ref}' refers to an unknown node '{source}'"
                       f"{_suggest(source, [*nodes, DATA])}", *path, node=node, port=port)
        return None
    if out_port not in ports:
        problems.error(f"'{source}' has no output port '{out_port}'{_suggest(out_port, ports)} "
                       f"(outputs: {', '.join(ports) or 'none'})", *path, node=node, port=port)
        return None
    return source


def _type_edges(consumers: Mapping[str, NodePlan | None], data: DataPlan | None,
                problems: _Problems, section: str,
                producers: Mapping[str, NodePlan | None] | None = None) -> None:
    """Compare every connected input with what arrives, by NeMo's port rule."""
    producers = consumers if producers is None else producers
    for name, plan in consumers.items():
        if plan is None:
            continue
        for port, ref in plan.inputs.items():
            declared = plan.input_types.get(port)
            incoming = _source_type(ref, producers, data)
            if declared is None or incoming is None:
                continue
            _compare_edge(declared, incoming, ref, name, port, problems,
                          (section, name, "inputs", port))


def _source_type(ref: str, nodes: Mapping[str, NodePlan | None],
                 data: DataPlan | None) -> NeuralType | None:
    source, _, port = ref.partition(".")
    if source == DATA:
        return data.output_types.get(port) if data else None
    plan = nodes.get(source)
    return plan.output_types.get(port) if plan else None


def _compare_edge(declared: NeuralType, incoming: NeuralType, ref: str, node: str, port: str,
                  problems: _Problems, path: tuple[str | int, ...]) -> None:
    unknown = declared.sizes_unknown(incoming)
    if unknown:
        names = ", ".join(repr(declared.axes[i]) for i in unknown)  # type: ignore[index]
        problems.warn(f"size of axis {names} of '{ref}' is not known before build; "
                      f"{node}.{port} needs it: checked at run time only", *path,
                      node=node, port=port)
        declared = declared.without_sizes(unknown)
    result = declared.compare(incoming)
    if result in (R.SAME, R.GREATER):
        return
    reason = _explain(result, declared, incoming)
    source = ref.partition(".")[0]  # sizes come from the two ends' parameters
    params = [("data", "params") if source == DATA else ("nodes", source, "params"),
              (*path[:2], "params")]
    problems.error(
        f"{ref} {incoming} does not fit {node}.{port} {declared}: {reason}",
        *path, node=node, port=port, source=ref, expected=str(declared), found=str(incoming),
        related=params)


def _explain(result: NeuralTypeComparisonResult, declared: NeuralType,
             incoming: NeuralType) -> str:
    if result is R.DIM_INCOMPATIBLE:
        assert declared.axes is not None and incoming.axes is not None
        diffs = [f"{a.kind.letter if hasattr(a.kind, 'letter') else a.kind} is {b.size}, "
                 f"the port needs {a.size}"
                 for a, b in zip(declared.axes, incoming.axes)
                 if a.size is not None and b.size is not None and a.size != b.size]
        return "axis sizes differ (" + "; ".join(diffs or ["sizes differ"]) + ")"
    if result is R.TRANSPOSE_SAME:
        return "the same axes in another order; transpose the tensor first"
    if result is R.SAME_TYPE_INCOMPATIBLE_PARAMS:
        return (f"{incoming.elements_type} and {declared.elements_type} differ in a "
                "parameter")
    if result is R.LESS:
        return (f"the port needs {declared.elements_type}, a more specific type than the "
                f"{incoming.elements_type} it receives")
    if declared.axes is not None and incoming.axes is not None and \
            len(declared.axes) != len(incoming.axes):
        return f"rank differs ({len(incoming.axes)} axes arrive, the port needs " \
               f"{len(declared.axes)})"
    return "the element types or axes are incompatible"


def _check_train_only(nodes: Mapping[str, NodePlan | None], problems: _Problems) -> None:
    """A train_only node is skipped outside training: each output must equal its input k."""
    for name, plan in nodes.items():
        if plan is None or not plan.train_only:
            continue
        inputs = list(plan.input_types.items())
        for k, (out_port, out_type) in enumerate(plan.output_types.items()):
            if k >= len(inputs) or out_type.compare(inputs[k][1]) is not R.SAME:
                expected = inputs[k][1] if k < len(inputs) else None
                problems.error(
                    f"node '{name}' is train_only, so outside training its output '{out_port}' "
                    f"is replaced by its input; but output {out_type} is not the type of input "
                    f"{inputs[k][0] + ' ' + str(expected) if expected else '(none)'}",
                    "nodes", name, "train_only", node=name, port=out_port)


def _propagate_pass_through_sizes(nodes: dict[str, NodePlan | None], data: DataPlan | None,
                                  order: list[str]) -> None:
    """A train_only node's output k is its input k when skipped, so it carries that input's
    axis sizes: SpecAugment between a 64-feature preprocessor and an 80-feature encoder must not
    hide the mismatch."""
    for name in order:
        plan = nodes.get(name)
        if plan is None or not plan.train_only:
            continue
        refined = dict(plan.output_types)
        for (out_port, out_type), in_port in zip(plan.output_types.items(), plan.input_types):
            ref = plan.inputs.get(in_port)
            incoming = _source_type(ref, nodes, data) if ref else None
            if incoming is None or incoming.axes is None or out_type.axes is None or \
                    len(incoming.axes) != len(out_type.axes):
                continue
            if any(a.kind != b.kind for a, b in zip(out_type.axes, incoming.axes)):
                continue
            axes = [AxisType(a.kind, a.size if a.size is not None else b.size, a.is_list)
                    for a, b in zip(out_type.axes, incoming.axes)]
            refined[out_port] = NeuralType(axes, out_type.elements_type, out_type.optional)
        nodes[name] = attrs.evolve(plan, output_types=refined)


def _check_loss(loss: Any, nodes: Mapping[str, NodePlan | None],
                problems: _Problems) -> str | None:
    if loss is None:
        problems.warn("the graph has no 'loss': it can run but not train", "nodes")
        return None
    if not isinstance(loss, str) or "." not in loss:
        problems.error(f"'loss' must be a port reference 'node.port' (got {loss!r})", "loss")
        return None
    node, _, port = loss.partition(".")
    if node not in nodes:
        problems.error(f"loss '{loss}' refers to an unknown node '{node}'"
                       f"{_suggest(node, nodes)}", "loss")
        return None
    plan = nodes[node]
    if plan is None:
        return None
    if port not in plan.output_types:
        problems.error(f"loss '{loss}': '{node}' has no output port '{port}'"
                       f"{_suggest(port, plan.output_types)}", "loss")
        return None
    if not accepts(NeuralType(None, LossType()), plan.output_types[port]) and not isinstance(
            plan.output_types[port].elements_type, LossType):
        problems.error(f"loss '{loss}' must be a LossType port (it is "
                       f"{plan.output_types[port]})", "loss")
    return loss

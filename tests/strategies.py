"""Hypothesis strategies for the fuzz tests (tests/test_fuzz.py): random YAML documents, graph
configs near a valid one, Hydra overrides and NeMo manifest lines."""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml
from hypothesis import strategies as st

# Names the loader and checker give meaning to, so that random documents reach deep code paths.
GRAPH_KEYS = ["name", "nodes", "data", "loss", "metrics", "optim", "trainer", "seed",
              "checkpoint", "nonfinite_loss", "module", "params", "inputs", "train_only",
              "train", "validation", "test", "sched", "every_n_train_steps", "save_top_k",
              "monitor", "mode", "max_epochs", "precision", "devices", "batch_size", "dim",
              "in_features", "out_features", "x", "y", "pred", "target", "lr", "hidden", "head"]
MODULE_NAMES = ["Linear", "Dropout", "MSE", "Faults", "Scale", "MeanAbsError", "ToyRegression",
                "os.system", "ng_toy.Linear", "core.adam", "adam", "CosineAnnealing", ""]
PORT_REFS = ["data.x", "data.y", "hidden.y", "head.y", "mse.loss", "data", ".", "a.b.c", "x."]

TOY_GRAPH: dict[str, Any] = {
    "name": "toy",
    "seed": 0,
    "trainer": {"max_epochs": 1, "accelerator": "cpu"},
    "checkpoint": {"every_n_train_steps": 5},
    "data": {"module": "ToyRegression", "params": {"dim": 8, "out": 1},
             "train": {"batch_size": 16, "shuffle": True},
             "validation": {"batch_size": 32}},
    "nodes": {
        "hidden": {"module": "Linear", "params": {"in_features": 8, "out_features": 16},
                   "inputs": {"x": "data.x"}},
        "drop": {"module": "Dropout", "train_only": True, "params": {"p": 0.1},
                 "inputs": {"x": "hidden.y"}},
        "head": {"module": "Linear", "params": {"in_features": 16, "out_features": 1},
                 "inputs": {"x": "drop.y"}},
        "mse": {"module": "MSE", "inputs": {"pred": "head.y", "target": "data.y"}},
    },
    "loss": "mse.loss",
    "metrics": {"mae": {"module": "MeanAbsError", "inputs": {"pred": "head.y",
                                                             "target": "data.y"}}},
    "optim": {"name": "adam", "lr": 0.01, "sched": {"name": "CosineAnnealing", "min_lr": 0.0}},
}

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
interpolations = st.sampled_from(["${dim}", "${nodes.hidden}", "${oc.env:HOME}", "${}", "${a.",
                                  "${oc.decode:'[1,2]'}", "${foo:bar}", "$${x}", "${..x}"])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70),
    st.floats(allow_nan=True, allow_infinity=True), texts,
    st.sampled_from(GRAPH_KEYS + MODULE_NAMES + PORT_REFS), interpolations,
)
keys = st.one_of(st.sampled_from(GRAPH_KEYS), texts, st.integers(-3, 3), st.booleans(),
                 st.none())


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(children, max_size=4),
                     st.dictionaries(keys, children, max_size=5))


values = st.recursive(scalars, _containers, max_leaves=20)
documents = st.dictionaries(keys, values, max_size=8)


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    """A YAML document: random data dumped, raw random text, or a valid graph's text with
    characters inserted, deleted or swapped."""
    kind = draw(st.sampled_from(["dump", "raw", "mutated"]))
    if kind == "dump":
        return yaml.safe_dump(draw(st.one_of(documents, values)), allow_unicode=True)
    if kind == "raw":
        return draw(st.text(st.sampled_from(list("abc:-[]{},&*!%@#|>'\"\n\t ${}.01")),
                            max_size=80))
    text = yaml.safe_dump(TOY_GRAPH, sort_keys=False)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from([":", "-", "[", "]", "{", "}", "\n", "  ", "&a", "*a",
                                     "!!python/name:os.system", "${", "\t", "'", "#", ""]))
        cut = draw(st.integers(0, 3))
        text = text[:at] + piece + text[at + cut:]
    return text


def _paths(config: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(config, dict):
        for key, value in config.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(config, list):
        for i, value in enumerate(config):
            found.extend(_paths(value, (*prefix, i)))
    return found


@st.composite
def graph_configs(draw: st.DrawFn) -> dict[str, Any]:
    """The valid toy graph with a few random edits: a value replaced, a key deleted or
    added (the checker's deep paths see near-valid graphs)."""
    config = copy.deepcopy(TOY_GRAPH)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(config) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = config
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(keys)] = draw(values)
    return config


key_paths = st.lists(st.one_of(st.sampled_from(GRAPH_KEYS), st.sampled_from(["0", "1", "-1"]),
                               texts), min_size=1, max_size=4).map(".".join)
override_values = st.one_of(
    scalars.map(lambda v: json.dumps(v) if not isinstance(v, str) else v),
    st.sampled_from(["[1,2]", "{a: 1}", "a,b", "range(1,3)", "choice(1,2)", "interval(0,1)",
                     "null", "'quoted'", "\"x\"", "[", "}", "${dim}", "${oc.env:HOME}", "",
                     "glob(*)", "shuffle(a,b)", "sort(1,2)", "tag(a,b)", "1e400", "nan"]),
)


@st.composite
def overrides(draw: st.DrawFn) -> str:
    """One Hydra-grammar override (``a.b=1``, ``+a=...``, ``++a=...``, ``~a``) or junk."""
    kind = draw(st.sampled_from(["set", "add", "force", "delete", "delete_value", "raw"]))
    key = draw(key_paths)
    value = draw(override_values)
    if kind == "set":
        return f"{key}={value}"
    if kind == "add":
        return f"+{key}={value}"
    if kind == "force":
        return f"++{key}={value}"
    if kind == "delete":
        return f"~{key}"
    if kind == "delete_value":
        return f"~{key}={value}"
    return draw(st.text(st.sampled_from(list("ab.=+~-[]{},()${}:'\" 01")), max_size=20))


def manifest_lines(audio: list[str]) -> st.SearchStrategy[str]:
    """A manifest line: a JSON object with random or plausible keys and values (``audio``:
    the paths to choose from), other JSON, blank or broken text."""
    path_values = st.one_of(st.sampled_from(audio), texts, st.integers(), st.none())
    numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5),
                        texts, st.none(), st.booleans())
    entry = st.fixed_dictionaries(
        {},
        optional={"audio_filepath": path_values, "audio_filename": path_values,
                  "duration": numbers, "offset": numbers,
                  "text": st.one_of(texts, st.sampled_from(["one two", "", " ", "3 apples"]),
                                    st.integers()),
                  "label": st.one_of(texts, st.integers(), st.lists(st.integers())),
                  "speaker": values},
    ).map(lambda d: json.dumps(d, allow_nan=True))
    other = st.one_of(values.map(lambda v: json.dumps(v, allow_nan=True)),
                      texts.filter(lambda t: "\n" not in t and "\r" not in t),
                      st.just(""), st.just("{"), st.just('{"audio_filepath": '))
    return st.one_of(entry, entry, other)

"""Hypothesis strategies for the fuzz tests (tests/test_fuzz.py): random YAML documents (keys
written twice, aliases, interpolations that copy), graph files' bytes that may not be UTF-8,
graph configs near a valid one, Hydra overrides (numbers out of range among them) and NeMo
manifest lines."""

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
    """A YAML document: random data dumped, raw random text, a valid graph's text with
    characters inserted, deleted or swapped, with a key written twice, or with aliases (merge
    keys, alias bombs of random depth and width, an alias inside its own anchor) or
    interpolations that copy each other."""
    kind = draw(st.sampled_from(["dump", "raw", "mutated", "duplicate", "aliases",
                                 "interpolations"]))
    if kind == "dump":
        return yaml.safe_dump(draw(st.one_of(documents, values)), allow_unicode=True)
    if kind == "raw":
        return draw(st.text(st.sampled_from(list("abc:-[]{},&*!%@#|>'\"\n\t ${}.01")),
                            max_size=80))
    if kind == "duplicate":
        return draw(duplicated_keys())
    if kind == "aliases":
        return draw(aliased())
    if kind == "interpolations":
        return draw(copying_interpolations())
    text = yaml.safe_dump(TOY_GRAPH, sort_keys=False)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from([":", "-", "[", "]", "{", "}", "\n", "  ", "&a", "*a",
                                     "!!python/name:os.system", "${", "\t", "'", "#", ""]))
        cut = draw(st.integers(0, 3))
        text = text[:at] + piece + text[at + cut:]
    return text


def _block_text() -> str:
    return yaml.safe_dump(TOY_GRAPH, sort_keys=False, default_flow_style=False)


@st.composite
def duplicated_keys(draw: st.DrawFn) -> str:
    """The toy graph in block style with one of its ``key: ...`` lines copied right after
    itself or to the end of its mapping (a section, a node, a parameter written twice)."""
    lines = _block_text().splitlines()
    keyed = [i for i, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("-")]
    i = draw(st.sampled_from(keyed))
    line = lines[i]
    indent = len(line) - len(line.lstrip())
    key = line.split(":", 1)[0]
    value = draw(st.sampled_from([line.split(":", 1)[1], " 1", " null", " {}", " [a]", " x"]))

    def indent_of(n: int) -> int:
        return len(lines[n]) - len(lines[n].lstrip())

    end = i + 1  # after the key's own value (its block, or a list at the key's indent)
    while end < len(lines) and (indent_of(end) > indent or (indent_of(end) == indent
                                and lines[end].lstrip().startswith("- "))):
        end += 1
    if draw(st.booleans()):  # after the sibling keys: to the end of the mapping that holds it
        while end < len(lines) and indent_of(end) >= indent:
            end += 1
    lines.insert(end, f"{key}:{value}")
    return "\n".join(lines) + "\n"


@st.composite
def aliased(draw: st.DrawFn) -> str:
    """The toy graph followed by anchors and aliases: a "billion laughs" bomb of random depth
    and width (small ones are fine, large ones must be refused), merge keys, an alias inside
    its own anchor, or an alias of nothing."""
    text = _block_text()
    kind = draw(st.sampled_from(["bomb", "bomb", "merge", "recursive", "undefined"]))
    if kind == "bomb":
        levels, width = draw(st.integers(1, 9)), draw(st.integers(1, 12))
        flow = draw(st.booleans())
        lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
        for i in range(1, levels + 1):
            if flow:
                lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
            else:
                lines.append(f"l{i}: &l{i}")
                lines += [f"- *l{i - 1}"] * width
        return text + "\n".join(lines) + "\n"
    if kind == "merge":
        return text.replace("nodes:\n", "base: &base {module: Linear}\nnodes:\n").replace(
            "    module: Linear\n", "    <<: *base\n")
    if kind == "recursive":
        return text + draw(st.sampled_from(["r: &r [*r]\n", "r: &r {a: *r}\n",
                                            "r: &r [1, [2, *r]]\n", "r: &r\n  <<: *r\n"]))
    return text + "u: *nowhere\n"


@st.composite
def copying_interpolations(draw: st.DrawFn) -> str:
    """The toy graph followed by keys whose interpolations copy the key before them, whole
    (``[${k}, ${k}]``) or as text (``"${k}${k}"``), level after level."""
    levels, width = draw(st.integers(1, 9)), draw(st.integers(1, 12))
    as_text = draw(st.booleans())
    if as_text:
        lines = ['k0: "' + "lol" * draw(st.integers(1, 40)) + '"']
        lines += [f'k{i}: "' + f"${{k{i - 1}}}" * width + '"' for i in range(1, levels + 1)]
    else:
        lines = ["k0: [" + ", ".join(["lol"] * width) + "]"]
        lines += [f"k{i}: [" + ", ".join([f"'${{k{i - 1}}}'"] * width) + "]"
                  for i in range(1, levels + 1)]
    return _block_text() + "\n".join(lines) + "\n"


@st.composite
def graph_bytes(draw: st.DrawFn) -> bytes:
    """A graph file's bytes that may not be UTF-8: the toy graph with random bytes written in,
    or in another encoding (UTF-16, Latin-1 with accents), or random binary data."""
    kind = draw(st.sampled_from(["inserted", "encoding", "binary"]))
    text = _block_text()
    if kind == "binary":
        return draw(st.binary(max_size=200))
    if kind == "encoding":
        accented = text.replace("toy", draw(st.sampled_from(["töy", "tøy", "toy\u00e9"])))
        return accented.encode(draw(st.sampled_from(["utf-16", "utf-16-le", "latin-1",
                                                      "cp1252", "utf-8", "utf-8-sig"])))
    data = bytearray(text.encode("utf-8"))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


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


# Keys of the toy graph whose values are numbers with a range, and values out of it (or of the
# wrong type) as a command line writes them.
NUMERIC_KEYS = ["trainer.max_epochs", "trainer.devices", "data.train.batch_size",
                "data.validation.batch_size", "+data.train.num_workers", "optim.lr", "seed",
                "checkpoint.every_n_train_steps", "+trainer.max_steps", "data.train.n_samples",
                "nodes.hidden.params.out_features", "nodes.drop.params.p",
                "+trainer.gradient_clip_val", "+trainer.limit_val_batches",
                "+trainer.accumulate_grad_batches", "data.params.dim", "optim.sched.min_lr"]
OUT_OF_RANGE = ["-5", "-1", "0", "1", "1.5", "1e999", "-1e999", "nan", "inf", "-inf", "abc",
                "'16'", "\"-1\"", "true", "null", "[]", "{}", "2e10", str(2**70), "-0.5",
                "0.0", "1e-320", "'0,1'", "[0,1]", "[-1]", "auto"]


@st.composite
def overrides(draw: st.DrawFn) -> str:
    """One Hydra-grammar override (``a.b=1``, ``+a=...``, ``++a=...``, ``~a``), a number out
    of its range (``trainer.max_epochs=-5``, ``optim.lr=nan``...), deep nesting, or junk."""
    kind = draw(st.sampled_from(["set", "add", "force", "delete", "delete_value", "raw",
                                 "range", "range", "deep"]))
    if kind == "range":
        return f"{draw(st.sampled_from(NUMERIC_KEYS))}={draw(st.sampled_from(OUT_OF_RANGE))}"
    if kind == "deep":
        depth = draw(st.integers(1, 300))
        return f"+deep={'[' * depth}{']' * depth}"
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

"""Documentation stays complete: every hook documented (with a working example) and tested, and
everything the installed plugins register has its own docstring for `neuralgraph info`."""

from __future__ import annotations

import argparse
import inspect
import re
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
import tomllib
import torch

import neuralgraph as ng
from neuralgraph import hookspecs
from neuralgraph.info import describe
from neuralgraph.registry import _HOOK_ORDER, Entry, Registry, get_registry

ROOT = Path(__file__).resolve().parent.parent
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
HOOKS = sorted(name for name, obj in vars(hookspecs).items()
               if callable(obj) and hasattr(obj, "neuralgraph_spec"))
HOOK_KIND = {
    "register_element_types": "element_type",
    "register_modules": "module",
    "register_losses": "loss",
    "register_metrics": "metric",
    "register_data_sources": "data_source",
    "register_optimizers": "optimizer",
    "register_schedulers": "scheduler",
    "register_callbacks": "callback",
    "register_commands": "command",
    "register_pretrained": "pretrained_model",
}
DOCUMENTED_KINDS = ("module", "loss", "metric", "data_source", "element_type", "optimizer",
                    "scheduler")


def _sections(text: str) -> dict[str, str]:
    """Markdown sections by heading text (backticks removed); bodies run to the next heading."""
    sections: dict[str, str] = {}
    parts = re.split(r"^#{1,4} +(.+)$", text, flags=re.MULTILINE)
    for heading, body in zip(parts[1::2], parts[2::2]):
        sections[heading.strip().strip("`")] = body
    return sections


def _python_blocks(text: str) -> list[str]:
    return [textwrap.dedent(b) for b in re.findall(r"^```python\n(.*?)^```", text,
                                                   flags=re.MULTILINE | re.DOTALL)]


def _own_doc(obj: Any) -> str:
    """The docstring `neuralgraph info` shows: the object's own, never a base class's."""
    return inspect.cleandoc(getattr(obj, "__doc__", None) or "")


@pytest.fixture(scope="module")
def doc() -> str:
    """The text of docs/plugins.md."""
    return PLUGINS_DOC.read_text()


class TestHookSpecs:
    def test_hooks_found(self) -> None:
        """The hook specifications are found, and the registry calls every one of them."""
        assert HOOKS and set(HOOKS) == set(_HOOK_ORDER) == set(HOOK_KIND)

    @pytest.mark.parametrize("hook", HOOKS)
    def test_spec_has_docstring(self, hook: str) -> None:
        """Each hook specification has a docstring naming the registry method it uses."""
        assert "add_" in (getattr(hookspecs, hook).__doc__ or "")


class TestPluginsDoc:
    @pytest.mark.parametrize("hook", HOOKS)
    def test_hook_has_a_section(self, hook: str, doc: str) -> None:
        """Each hook has its own section in docs/plugins.md."""
        assert hook in _sections(doc), f"docs/plugins.md has no section '### `{hook}`'"

    @pytest.mark.parametrize("hook", HOOKS)
    def test_section_example_works(self, hook: str, doc: str) -> None:
        """The first Python example of each hook's section registers a working object."""
        blocks = _python_blocks(_sections(doc).get(hook, ""))
        assert blocks, f"the section on {hook} has no ```python example"
        module = types.ModuleType(f"plugins_md_{hook}")
        exec(compile(blocks[0], f"docs/plugins.md ({hook})", "exec"), module.__dict__)
        registry = Registry()
        registry.register_plugin(module, "doc")
        assert registry.plugins["doc"].available, registry.plugins["doc"].error
        entries = registry.entries(HOOK_KIND[hook])
        assert entries, f"the example of {hook} registers no {HOOK_KIND[hook]}"
        for entry in entries:
            _exercise(entry)

    def test_entry_point_example_parses(self, doc: str) -> None:
        """The pyproject example declares the entry point group `neuralgraph`."""
        block = re.search(r"^```toml\n(.*?)^```", doc, flags=re.MULTILINE | re.DOTALL)
        assert block is not None
        data = tomllib.loads(block.group(1))
        assert data["project"]["entry-points"]["neuralgraph"] == {"gain": "ng_gain.plugin"}

    @pytest.mark.parametrize("needle", [
        "NEURALGRAPH_PLUGINS", "NEURALGRAPH_TRACE", "neuralgraph plugins", "neuralgraph info",
        "[project.entry-points.neuralgraph]", "qualified name", "unavailable", "pip install '",
        *[f"registry.{name}(" for name in dir(Registry) if name.startswith("add_")],
    ])
    def test_mentions(self, needle: str, doc: str) -> None:
        """docs/plugins.md covers the env vars, the commands, conflicts, extras, every add_*."""
        assert needle in doc


def _exercise(entry: Entry) -> None:
    """Use a registered object as neuralgraph would (meta-device ports, factories, parsers)."""
    obj = entry.obj
    assert _own_doc(obj if entry.kind != "command" else obj[1]), f"{entry.qualified} has no doc"
    if entry.kind in ("module", "loss", "metric", "data_source"):
        with torch.device("meta"):
            instance = obj()
        types_ = {**getattr(instance, "input_types", {}), **getattr(instance, "output_types", {})}
        assert types_ and all(isinstance(t, ng.NeuralType) for t in types_.values())
    elif entry.kind == "element_type":
        assert obj().compare(obj()) == ng.NeuralTypeComparisonResult.SAME
    elif entry.kind == "optimizer":
        optimizer = obj([torch.nn.Parameter(torch.zeros(1))])
        assert isinstance(optimizer, torch.optim.Optimizer)
    elif entry.kind == "scheduler":
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        scheduler = obj(optimizer, max_steps=10)
        optimizer.step()
        scheduler.step()
    elif entry.kind == "pretrained_model":
        card = obj.to_card(entry.plugin)
        assert obj.name in card and obj.sha256 in card and obj.metrics and obj.license
    elif entry.kind == "callback":
        import pytorch_lightning as pl

        callback = obj(ng.Graph.from_yaml(ROOT / "tests" / "toy" / "regression.yaml"))
        assert callback is None or isinstance(callback, pl.Callback)
    else:
        configure, _ = obj
        configure(argparse.ArgumentParser())


class TestHooksTested:
    @pytest.mark.parametrize("hook", HOOKS)
    def test_hook_is_tested(self, hook: str) -> None:
        """Some test module other than this one names each hook."""
        pattern = re.compile(rf"\b{hook}\b")
        me = Path(__file__).resolve()
        found = [p for p in (ROOT / "tests").rglob("*.py")
                 if p.resolve() != me and pattern.search(p.read_text())]
        assert found, f"no test mentions {hook}"


class TestRegisteredDocstrings:
    def test_every_installed_plugin_loads(self) -> None:
        """Every plugin found loads, so that what it registers can be checked below."""
        broken = {p.name: f"{p.error} (fix: {p.fix})"
                  for p in get_registry().plugins.values() if not p.available}
        assert not broken, broken

    def test_every_entry_has_its_own_docstring(self) -> None:
        """Every registered module, loss, metric, data source, element type, optimizer and
        scheduler has its own docstring, and every command a help text or docstring."""
        registry = get_registry()
        missing = [e.qualified for kind in DOCUMENTED_KINDS for e in registry.entries(kind)
                   if not _own_doc(e.obj)]
        missing += [e.qualified for e in registry.entries("command")
                    if not (e.help or _own_doc(e.obj[1]))]
        assert not missing, f"no docstring for neuralgraph info to show: {missing}"

    def test_info_shows_each_docstring(self) -> None:
        """`neuralgraph info` of every registered name shows the first line of its docstring."""
        registry = get_registry()
        wrong = []
        for kind in DOCUMENTED_KINDS:
            for entry in registry.entries(kind):
                first = _own_doc(entry.obj).splitlines()[:1]
                if first and first[0] not in describe(entry.qualified):
                    wrong.append(entry.qualified)
        assert not wrong, f"neuralgraph info does not show the docstring of {wrong}"

"""The ``neuralgraph`` command line.

Exit codes: 0 done, 2 the user's input is wrong (one message that says what and where, no
traceback), 1 anything else (a training stopped by ``nonfinite_loss: stop`` prints one message
with the step, no traceback). Heavy imports (Lightning, plugins) happen inside the commands that
need them, so ``--help`` starts fast: it lists the plugins' commands from their
``register_commands`` hooks alone (``registry.load_commands``), calling no ``configure``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from neuralgraph.errors import GraphError, UserError

if TYPE_CHECKING:
    from neuralgraph.registry import Entry, Registry

__all__ = ["main"]


def _add_graph_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("graph", help="the graph YAML file")
    parser.add_argument("overrides", nargs="*",
                        help="Hydra-grammar overrides: a.b=1, +a.c=2, ~a.d")


def _configure_check(parser: argparse.ArgumentParser) -> None:
    _add_graph_args(parser)
    parser.add_argument("--render", metavar="FILE",
                        help="draw the typed graph to FILE (.svg, .png or .dot)")


def _configure_train(parser: argparse.ArgumentParser) -> None:
    _add_graph_args(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue the latest run of this experiment from its last "
                             "checkpoint")
    parser.add_argument("--exp-dir", default="ng_experiments",
                        help="root folder of experiments (default: ng_experiments)")
    parser.add_argument("--version", default=None,
                        help="run folder name under exp-dir/NAME (default: next version_N)")


def _configure_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a registered module, metric, data source, optimizer, ...")
    parser.add_argument("params", nargs="*", help="key=value parameters to show ports for")


def _configure_plugins(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", "-v", action="store_true", help="list every name")


_MODEL_HELP = "a .ngm archive, or a pretrained model's name ('neuralgraph pretrained list')"


def _configure_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help=_MODEL_HELP)
    parser.add_argument("--data", "--manifest", dest="data", required=True, metavar="PATH",
                        help="the data to evaluate on: a file or folder that the model's data "
                             "source reads (a manifest for audio sources)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--set", dest="data_params", action="append", default=[],
                        metavar="KEY=VALUE", help="extra data split parameters")
    parser.add_argument("overrides", nargs="*",
                        help="Hydra-grammar overrides of the archived graph, e.g. a metric's "
                             "parameters: ++metrics.wer.params.decoding=beam")


def _configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help=_MODEL_HELP)
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("--output", "-o", help="output file (default: next to the archive)")


def _configure_pretrained(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="pretrained_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="one model a line: name, task, size, headline figure, plugin")
    info = sub.add_parser("info", help="the model card: recipe, training data, figures "
                                       "measured on held-out data, license, sha256, sources")
    info.add_argument("name", help="a pretrained model's name")
    download = sub.add_parser("download", help="fetch a model's file into the cache (checked "
                                               "against its sha256) and print its path")
    download.add_argument("name", help="a pretrained model's name")


def _run_check(args: argparse.Namespace) -> int:
    from neuralgraph.graph import Graph

    graph = Graph.from_yaml(args.graph, args.overrides)
    warnings = graph.check()
    for problem in warnings:
        print(problem, file=sys.stderr)
    plan = graph.plan()
    print(f"{args.graph}: ok — {len(plan.nodes)} nodes, {len(plan.metrics)} metrics, "
          f"{sum(len(n.inputs) for n in plan.nodes.values())} typed edges"
          + (f", {len(warnings)} warnings" if warnings else ""))
    if args.render:
        from neuralgraph.render import render

        out = render(graph, args.render)
        print(f"rendered {out}")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from neuralgraph.train import train

    train(args.graph, args.overrides, resume=args.resume, exp_dir=args.exp_dir,
          version=args.version)
    return 0


def _plural(noun: str, n: int) -> str:
    """``noun`` for one, its plural otherwise ("losses", not "losss")."""
    if n == 1:
        return noun
    return noun + ("es" if noun.endswith("s") else "s")


def _run_plugins(args: argparse.Namespace) -> int:
    from neuralgraph.registry import get_registry

    registry = get_registry()
    for info in sorted(registry.plugins.values(), key=lambda p: p.name):
        dist = f"{info.distribution} {info.version}" if info.distribution else info.module
        if not info.available:
            print(f"{info.name:<10} {dist:<24} UNAVAILABLE: {info.error}")
            if info.fix:
                print(f"{'':<10} fix: {info.fix}")
            continue
        contributed = registry.by_plugin(info.name)
        summary = ", ".join(f"{len(v)} {_plural(k.replace('_', ' '), len(v))}"
                            for k, v in contributed.items()) or "nothing"
        print(f"{info.name:<10} {dist:<24} {summary}")
        if args.verbose:
            for kind, names in contributed.items():
                print(f"{'':<12}{kind}: {', '.join(names)}")
    clashing = _command_conflicts(registry)
    for name, qualified in registry.conflicts().items():
        if name not in clashing:  # those get the warning below
            print(f"note: '{name}' is registered by {' and '.join(qualified)}; "
                  "use a qualified name")
    for line in _command_warnings(registry):
        print(line)
    return 0


def _command_warnings(registry: Registry) -> list[str]:
    """A line for each plugin command that cannot run under its name: a core command of the
    same name hides it, or another plugin registers the same name."""
    lines = [f"warning: plugin '{e.plugin}' registers the command '{e.name}', which the core "
             f"command '{e.name}' hides; the plugin must rename it"
             for e in registry.entries("command") if e.name in _CORE]
    lines += [f"warning: {_conflict_message(registry, entries)}"
              for entries in _command_conflicts(registry).values()]
    return lines


def _command_conflicts(registry: Registry) -> dict[str, list[Entry]]:
    """Plugin command names that several plugins register: name -> their entries."""
    by_name: dict[str, list[Entry]] = {}
    for entry in registry.entries("command"):
        if entry.name not in _CORE:
            by_name.setdefault(entry.name, []).append(entry)
    return {name: entries for name, entries in by_name.items() if len(entries) > 1}


def _conflict_message(registry: Registry, entries: list[Entry]) -> str:
    """Why ``neuralgraph NAME`` does not run, what runs instead (the qualified names) and the
    fixes (uninstall one plugin, or rename the command)."""
    name = entries[0].name
    plugins = [f"'{e.plugin}'" for e in entries]
    several = ", ".join(plugins[:-1]) + " and " + plugins[-1]
    qualified = " or ".join(f"'neuralgraph {e.qualified}'" for e in entries)
    infos = [registry.plugins[e.plugin] for e in entries]
    removals = [f"pip uninstall {d}" for d in dict.fromkeys(i.distribution for i in infos if
                                                             i.distribution)]
    modules = [f"'{i.module}'" for i in infos if not i.distribution]
    if modules:
        removals.append(f"remove {' or '.join(modules)} from NEURALGRAPH_PLUGINS")
    uninstall = f"uninstall one plugin ({' or '.join(removals)}) or " if len(removals) > 1 \
        or len(modules) > 1 else ""
    both, neither = ("both", "neither") if len(entries) == 2 else ("all", "none")
    return (f"plugins {several} {both} register the command '{name}', so {neither} runs as "
            f"'neuralgraph {name}'; run {qualified} instead. To fix it, {uninstall}have one "
            "plugin rename its command")


def _run_info(args: argparse.Namespace) -> int:
    from neuralgraph.info import describe

    print(describe(args.name, args.params))
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    import json

    from neuralgraph.model import GraphModel
    from neuralgraph.pretrained import resolve_model

    model = GraphModel.restore_from(resolve_model(args.model), overrides=args.overrides)
    extra = _split_params(model.data_source, args.data_params)
    loader = model.dataloader_for(args.data, batch_size=args.batch_size, **extra)
    results = model.evaluate(loader, progress=True)
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            _print_figure(key, value)
    return 0


def _print_figure(key: str, value: Any) -> None:
    """One line of evaluate's text output; a mapping (a metric's details, such as per-class
    figures) one line per item, ``key.item: name value  name value``."""
    def text(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    if not isinstance(value, dict):
        print(f"{key}: {text(value)}")
        return
    for item, inner in value.items():
        if isinstance(inner, dict):
            print(f"{key}.{item}: " + "  ".join(f"{k} {text(v)}" for k, v in inner.items()))
        else:
            print(f"{key}.{item}: {text(inner)}")


def _run_export(args: argparse.Namespace) -> int:
    from neuralgraph.export import export

    out = export(args.model, args.format, args.output)
    print(f"exported {out}")
    return 0


def _run_pretrained(args: argparse.Namespace) -> int:
    from neuralgraph import pretrained

    if args.pretrained_command == "list":
        rows = [(e.name, e.task, pretrained.human_size(e.size), e.headline, f"[{plugin}]")
                for plugin, e in pretrained.catalog()]
        if not rows:
            print("no pretrained models: no installed plugin registers one", file=sys.stderr)
        widths = [max((len(r[i]) for r in rows), default=0) for i in range(4)]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[4])
        return 0
    registry_entry = pretrained.lookup_entry(args.name)
    if args.pretrained_command == "info":
        print(registry_entry.obj.to_card(registry_entry.plugin))
    else:
        print(pretrained.fetch(registry_entry.obj))
    return 0


def _parse_kv(text: str) -> tuple[str, Any]:
    import yaml

    key, eq, value = text.partition("=")
    if not eq or not key:
        raise UserError(f"--set expects KEY=VALUE (got {text!r})")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as exc:
        reason = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        raise UserError(f"--set {text}: the value must be a YAML value, e.g. 8, true or "
                        f"a string ({reason})") from None


def _split_params(source: Any, texts: Sequence[str]) -> dict[str, Any]:
    """evaluate's ``--set KEY=VALUE`` pairs as split parameters; a key that the data source's
    ``dataloader`` does not take is a UserError naming it and the keys it takes."""
    import difflib
    import inspect

    parsed = [(*_parse_kv(text), text) for text in texts]
    params = {key: value for key, value, _ in parsed}
    if source is None or not params:
        return params
    signature = inspect.signature(source.dataloader).parameters
    if any(p.kind is p.VAR_KEYWORD for p in signature.values()):
        return params  # it takes any key: its own checks judge them
    valid = [name for name, p in signature.items() if name != "split"
             and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key, _, text in parsed:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"--set {text}: '{key}' is not a split parameter of the data "
                            f"source {type(source).__name__}{hint}; it takes "
                            f"{', '.join(valid)}")
    return params


_CORE: dict[str, tuple[Callable[[argparse.ArgumentParser], None],
                       Callable[[argparse.Namespace], int], str]] = {
    "train": (_configure_train, _run_train, "check, build and train a graph"),
    "check": (_configure_check, _run_check, "check a graph statically (no weights allocated)"),
    "plugins": (_configure_plugins, _run_plugins, "list installed plugins and what they add"),
    "info": (_configure_info, _run_info, "show a module's docstring, parameters and ports"),
    "evaluate": (_configure_evaluate, _run_evaluate, "metrics of an archive on a data set"),
    "export": (_configure_export, _run_export, "export an archive (onnx, torchscript)"),
    "pretrained": (_configure_pretrained, _run_pretrained,
                   "the catalog of pretrained models: list, info NAME, download NAME"),
}


def _epilog(registry: Registry) -> str:
    """Which plugins are installed, which are not loaded and where to read more."""
    names = ", ".join(sorted(registry.plugins)) or "none"
    text = (f"Commands marked [plugin] come from the installed plugins ({names}); "
            "'neuralgraph plugins -v' lists what each adds and 'neuralgraph COMMAND --help' "
            "describes a command.")
    broken = [p.name for p in registry.plugins.values() if not p.available]
    if broken:
        text += f" Unavailable: {', '.join(broken)} ('neuralgraph plugins' says why)."
    unloaded = [path.strip() for path in os.environ.get("NEURALGRAPH_PLUGINS", "").split(",")
                if path.strip() and path.strip().rsplit(".", 1)[-1] not in registry.plugins]
    if unloaded:
        text += (f" NEURALGRAPH_PLUGINS modules ({', '.join(unloaded)}) are not imported for "
                 "this list; 'neuralgraph plugins -v' shows their commands.")
    return text


def _parser(registry: Registry | None = None,
            command: str | None = None) -> argparse.ArgumentParser:
    """The parser of the core commands, and of the plugin commands in ``registry``; only the
    plugin command named ``command`` gets its arguments (its ``configure`` is called)."""
    parser = argparse.ArgumentParser(
        prog="neuralgraph",
        description="Typed graphs of neural modules: check, train, evaluate, export.",
        epilog=_epilog(registry) if registry is not None else None,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (configure, run, help_text) in _CORE.items():
        child = sub.add_parser(name, help=help_text, description=help_text)
        configure(child)
        child.set_defaults(run=run)
    if registry is None:
        return parser
    clashing = _command_conflicts(registry)
    for entry in registry.entries("command"):
        if entry.name in _CORE:
            continue
        configure, run = entry.obj
        name = entry.qualified if entry.name in clashing else entry.name
        child = sub.add_parser(name, help=f"{entry.help} [{entry.plugin}]",
                               description=entry.help)
        if name == command:
            configure(child)
        child.set_defaults(run=run)
    return parser


def _version() -> str:
    from neuralgraph import __version__

    return f"neuralgraph {__version__}"


def _command_word(argv: Sequence[str]) -> str | None:
    """The command named on the command line (its first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _needs_plugins(argv: Sequence[str]) -> Registry | None:
    """The plugins the parser needs, loaded as lightly as the command line allows.

    A core command and ``--version`` need none. The top-level help lists the commands of the
    installed (entry-point) plugins: only their ``register_commands`` hooks run, and the
    NEURALGRAPH_PLUGINS modules, which may import anything, are left out. ``COMMAND --help``
    loads the commands of every plugin; running a plugin command loads the whole registry.
    """
    from neuralgraph.registry import get_registry, load_commands

    command = _command_word(argv)
    wants_help = "-h" in argv or "--help" in argv
    if command in _CORE:
        return None
    if command is None:
        return load_commands(env_plugins=False) if wants_help or not argv else None
    return load_commands() if wants_help else get_registry()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neuralgraph`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        command = _command_word(argv)
        registry = _needs_plugins(argv)
        if registry is not None:
            clashing = _command_conflicts(registry)
            if command in clashing:
                raise UserError(_conflict_message(registry, clashing[command]))
            for line in _command_warnings(registry):
                print(line, file=sys.stderr)
        parser = _parser(registry, command)
        args = parser.parse_args(argv)
        if getattr(args, "run", None) is None:
            parser.print_help()
            return 2
        return int(args.run(args) or 0)
    except GraphError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except FloatingPointError as exc:  # nonfinite_loss: stop (the message names the step)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # argparse: 2 for usage errors, 0 for --help
        return int(exc.code) if isinstance(exc.code, int) else 2
    except BrokenPipeError:
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())

"""Drawing the typed graph: DOT text, turned into SVG/PNG by Graphviz's ``dot`` if installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from neuralgraph.errors import UserError
from neuralgraph.graph import Graph

__all__ = ["render", "to_dot"]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _record(name: str, title: str, inputs: list[str], outputs: list[str]) -> str:
    rows = [f'<TR><TD COLSPAN="2" BGCOLOR="lightgrey"><B>{_html(name)}</B><BR/>'
            f'{_html(title)}</TD></TR>']
    for i in range(max(len(inputs), len(outputs))):
        left = inputs[i] if i < len(inputs) else ""
        right = outputs[i] if i < len(outputs) else ""
        lport = f' PORT="in_{left}"' if left else ""
        rport = f' PORT="out_{right}"' if right else ""
        rows.append(f'<TR><TD{lport} ALIGN="LEFT">{_html(left)}</TD>'
                    f'<TD{rport} ALIGN="RIGHT">{_html(right)}</TD></TR>')
    table = "".join(rows)
    return f'{_quote(name)} [shape=plaintext, label=<<TABLE BORDER="0" CELLBORDER="1" ' \
           f'CELLSPACING="0">{table}</TABLE>>];'


def to_dot(graph: Graph) -> str:
    """The checked graph as DOT: nodes with their ports, edges labelled with their types."""
    plan = graph.plan()
    lines = [f"digraph {_quote(graph.name)} {{", "  rankdir=LR;",
             '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=8];']
    if plan.data is not None:
        lines.append("  " + _record("data", plan.data.cls.__name__, [],
                                    list(plan.data.output_types)))
    everything = {**plan.nodes, **plan.metrics}
    for name, node in everything.items():
        title = node.cls.__name__ + (" (train only)" if node.train_only else "")
        lines.append("  " + _record(name, title, list(node.input_types),
                                    list(node.output_types)))
        for port, ref in node.inputs.items():
            source, _, out_port = ref.partition(".")
            label = str(plan.port_type(ref) or "")
            lines.append(f"  {_quote(source)}:{_quote('out_' + out_port)} -> "
                         f"{_quote(name)}:{_quote('in_' + port)} [label={_quote(label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(graph: Graph, path: str | Path) -> Path:
    """Write the picture to ``path``; the format follows the suffix (.dot, .svg, .png)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in ("dot", "gv", "svg", "png", "pdf"):
        raise UserError(f"--render: unsupported format '.{fmt}' (use .svg, .png or .dot)")
    dot = to_dot(graph)
    if fmt in ("dot", "gv"):
        path.write_text(dot, encoding="utf-8")
        return path
    exe = shutil.which("dot")
    if exe is None:
        raise UserError("--render to svg/png needs Graphviz's 'dot' (Debian: apt-get install "
                        "graphviz); .dot output works without it")
    result = subprocess.run([exe, f"-T{fmt}", "-o", str(path)], input=dot.encode(),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise UserError(f"graphviz failed: {result.stderr.decode(errors='replace').strip()}")
    return path

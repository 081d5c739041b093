"""``neuralgraph export``: the inference path of an archive as ONNX or TorchScript.

The exported function starts at the data source's declared inference ports
(:attr:`~neuralgraph.DataSource.inference_ports`; a source that declares none cannot be
exported) and returns the outputs that nothing downstream consumes in eval mode (for ASR:
log-probs and their lengths). Nodes whose class sets ``exportable = False`` (feature
extraction with an STFT, as in NeMo) stay outside: the export then takes their outputs as its
inputs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neuralgraph.errors import UserError
from neuralgraph.model import GraphModel
from neuralgraph.pretrained import resolve_model

__all__ = ["ExportWrapper", "export"]


class ExportWrapper(nn.Module):
    """Positional-in, tuple-out view of a GraphModel's sub-graph, for exporters."""

    def __init__(self, model: GraphModel, inputs: Sequence[str], outputs: Sequence[str]) -> None:
        super().__init__()
        self.nodes = model.nodes  # the parameters; the model itself is no submodule
        object.__setattr__(self, "_run", model.run)
        self.inputs = list(inputs)
        self.outputs = list(outputs)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env = self._run(dict(zip(self.inputs, tensors)))
        return tuple(env[key] for key in self.outputs)


def data_inputs(model: GraphModel) -> list[str]:
    """The data ports inference starts from: the data source's ``inference_ports``."""
    if model.plan.data is None:
        raise UserError("export needs a data source to know the model's inputs")
    source = model.data_source
    ports = tuple(source.inference_ports)
    if not ports:
        raise UserError(f"data source {type(source).__name__} declares no inference_ports: "
                        "its class must name the ports an exported model is fed, e.g. "
                        "inference_ports = ('audio_signal', 'audio_length')")
    unknown = [p for p in ports if p not in model.plan.data.output_types]
    if unknown:
        raise UserError(f"data source {type(source).__name__} declares inference_ports "
                        f"{unknown} that are not among its output ports "
                        f"{list(model.plan.data.output_types)}")
    return [f"data.{p}" for p in ports]


def export_boundary(model: GraphModel) -> list[str]:
    """Export inputs: the data ports, or the outputs of non-exportable nodes fed by them."""
    inputs = data_inputs(model)
    known = set(inputs)
    outside: set[str] = set()
    boundary: list[str] = []
    for name, node in model.plan.nodes.items():  # topological order
        if getattr(node.cls, "exportable", True) or not set(node.inputs.values()) <= known:
            continue
        outside.add(name)
        outputs = [f"{name}.{port}" for port in node.output_types]
        known.update(outputs)
        boundary.extend(outputs)
    needed = {src for name, node in model.plan.nodes.items() if name not in outside
              for src in node.inputs.values()}
    return [key for key in inputs if key in needed] + boundary


def example_inputs(model: GraphModel, inputs: Sequence[str]) -> tuple[torch.Tensor, ...]:
    """Example tensors for tracing: the data source's ``example_batch`` run up to ``inputs``."""
    batch = model.data_source.example_batch()
    ports = data_inputs(model)
    with torch.no_grad():
        env = model.eval().run({f"data.{k}": v for k, v in batch.items()
                                if f"data.{k}" in ports})
    missing = [key for key in inputs if key not in env]
    if missing:
        raise UserError(f"the example_batch() of data source {type(model.data_source).__name__} "
                        f"does not give {missing}")
    return tuple(env[key] for key in inputs)


def export(archive: str | Path, fmt: str, output: str | Path | None = None) -> Path:
    """Export ``archive`` (a ``.ngm`` file or a pretrained model's name) to ``fmt`` ("onnx" or
    "torchscript"); returns the written file (by default next to the archive, or for a
    pretrained model ``NAME.onnx`` in the current folder)."""
    if fmt == "onnx":
        _require_onnx()
    path = resolve_model(archive)
    model = GraphModel.restore_from(path)
    inputs = export_boundary(model)
    outputs = model.sinks(inputs)
    wrapper = ExportWrapper(model, inputs, outputs).eval()
    args = example_inputs(model, inputs)
    suffix = {"onnx": ".onnx", "torchscript": ".ts"}[fmt]
    default = path.with_suffix(suffix) if path == Path(archive).expanduser() \
        else Path(f"{archive}{suffix}")
    out = Path(output) if output else default
    where = f"--output {out}" if output else \
        f"the export {out} (the default path; choose another with --output)"
    _writable_output(out, where)
    try:
        if fmt == "torchscript":
            with torch.no_grad():
                traced = torch.jit.trace(wrapper, args, check_trace=False)
            traced.save(str(out))
        else:
            export_onnx(wrapper, args, out)
    except OSError as exc:
        raise UserError(f"{where}: cannot be written: {exc.strerror or exc}") from None
    return out


def _require_onnx() -> None:
    """A UserError naming the extra to install when ``onnx``, which torch's ONNX exporter
    writes with, is not installed."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UserError("--format onnx needs the 'onnx' package, which is not installed: "
                        "pip install 'neuralgraph[export]' (or use --format torchscript)") from None


def _writable_output(out: Path, where: str) -> None:
    """A UserError when ``out`` cannot be written: it is a folder, its folder is missing or is
    a file, or nothing can be written there (read-only)."""
    parent = out.parent
    if out.is_dir():
        raise UserError(f"{where}: it is a folder, not a file name")
    if not parent.is_dir():
        state = "is a file, not a folder" if parent.exists() else "does not exist"
        raise UserError(f"{where}: its folder {parent} {state}")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise UserError(f"{where}: nothing can be written in {parent}: "
                        f"{exc.strerror or exc}") from None
    if out.exists() and not os.access(out, os.W_OK):
        raise UserError(f"{where}: the file exists and is read-only")


def export_onnx(wrapper: ExportWrapper, args: tuple[torch.Tensor, ...], out: Path) -> Any:
    """ONNX export with a dynamic batch and time axis on every input."""
    names = [k.replace(".", "_") for k in wrapper.inputs]
    dynamic = {}
    for name, tensor in zip(names, args):
        axes = {0: "batch"}
        if tensor.dim() > 1:
            axes[tensor.dim() - 1] = f"{name}_time"
        dynamic[name] = axes
    with torch.no_grad():
        torch.onnx.export(wrapper, args, str(out), input_names=names,
                          output_names=[k.replace(".", "_") for k in wrapper.outputs],
                          dynamic_axes=dynamic, dynamo=False, opset_version=17)
    return out

"""Benchmark worker: QuartzNet 5x5 built from YAML through neuralgraph's public API.

Runs under neuralgraph's venv. The model is ``GraphModel(Graph.from_yaml(...))`` called with the
data source's port names; the optimizer is built here (the same as in the other workers), not
from the YAML's ``optim`` section, so that only the model code differs. Protocol: see
``common.py``. Arguments: ``[GRAPH_YAML] [OVERRIDE ...]`` (default
``examples/asr/quartznet_5x5.yaml`` of the repository).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

DEFAULT_GRAPH = HERE.parent.parent / "examples" / "asr" / "quartznet_5x5.yaml"


def loss_port(graph: Any) -> str:
    """The ``node.port`` the graph optimizes: ``graph.loss`` if it has one, else ``loss:``."""
    loss = getattr(graph, "loss", None)
    if isinstance(loss, str):
        return loss
    return str(graph.config["loss"])


def spec_augment_overrides(path: Path) -> list[str]:
    """Overrides that make every SpectrogramAugmentation node of the YAML match the other workers.

    With ``ASR_STEP_SPEC_AUGMENT=1`` its params become :data:`common.SPEC_AUGMENT`; otherwise its
    mask counts become 0, which makes the node an identity (the node still runs).
    """
    import yaml

    with open(path) as f:
        nodes = (yaml.safe_load(f) or {}).get("nodes", {}) or {}
    wanted = (
        common.SPEC_AUGMENT
        if common.spec_augment_on()
        else {"freq_masks": 0, "time_masks": 0, "rect_masks": 0}
    )
    overrides = []
    for name, node in nodes.items():
        if str(node.get("module", "")).rpartition(".")[2] != "SpectrogramAugmentation":
            continue
        params = node.get("params") or {}
        overrides += [
            f"{'' if key in params else '+'}nodes.{name}.params.{key}={value}"
            for key, value in wanted.items()
        ]
    return overrides


def framing_overrides(path: Path) -> list[str]:
    """Overrides that give every mel preprocessor node of the YAML :func:`common.framing_params`
    (NeMo 3.0's framing unless ``ASR_STEP_FRAMING=native``)."""
    import yaml

    with open(path) as f:
        nodes = (yaml.safe_load(f) or {}).get("nodes", {}) or {}
    overrides = []
    for name, node in nodes.items():
        if str(node.get("module", "")).rpartition(".")[2] != "AudioToMelSpectrogramPreprocessor":
            continue
        params = node.get("params") or {}
        overrides += [
            f"{'' if key in params else '+'}nodes.{name}.params.{key}="
            f"{str(value).lower() if isinstance(value, bool) else value}"
            for key, value in common.framing_params().items()
        ]
    return overrides


def encoder_node(graph: Any) -> str | None:
    """The name of the graph's ConvASREncoder node."""
    for name, node in graph.config.get("nodes", {}).items():
        if str(node.get("module", "")).rpartition(".")[2] == "ConvASREncoder":
            return str(name)
    return None


def encoder_jasper(graph: Any) -> list[dict[str, Any]] | None:
    """The ``jasper`` block list of the graph's ConvASREncoder node (to compare with common's)."""
    for node in graph.config.get("nodes", {}).values():
        if str(node.get("module", "")).rpartition(".")[2] == "ConvASREncoder":
            return [dict(b) for b in node.get("params", {}).get("jasper", [])]
    return None


def find_preprocessor(model: torch.nn.Module) -> torch.nn.Module | None:
    """The graph's mel-spectrogram preprocessor module, found by class name."""
    for _, module in model.named_modules():
        if type(module).__name__ == "AudioToMelSpectrogramPreprocessor":
            return module
    return None


def main() -> None:
    """Builds the graph model and serves the driver's commands."""
    out = common.protocol_channel()
    common.setup_threads()
    import neuralgraph

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_GRAPH
    overrides = spec_augment_overrides(path) + framing_overrides(path) + sys.argv[2:]
    batch = common.make_batch(common.spec_from_env())
    torch.manual_seed(0)
    graph = neuralgraph.Graph.from_yaml(str(path), overrides=overrides)
    model = neuralgraph.GraphModel(graph)
    model.train()
    loss_key = loss_port(graph)
    pre = find_preprocessor(model)
    opt = common.make_optimizer(model.parameters())
    inputs = {
        "audio_signal": batch.audio_signal,
        "audio_length": batch.audio_length,
        "transcripts": batch.transcripts,
        "transcript_length": batch.transcript_length,
    }

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = model(**inputs)[loss_key]
        loss.backward()
        opt.step()
        return float(loss.detach())

    def preproc() -> None:
        with torch.no_grad():
            if pre is not None:
                pre(input_signal=batch.audio_signal, length=batch.audio_length)
            else:
                raise RuntimeError("no AudioToMelSpectrogramPreprocessor module in the graph")

    augments = [m for m in model.modules() if type(m).__name__ == "SpectrogramAugmentation"]
    mask_counts = ("freq_masks", "time_masks", "rect_masks")
    saved = {"dither": pre.dither if pre is not None else 0.0,
             "masks": [{k: getattr(m, k) for k in mask_counts} for m in augments]}

    def check_mode(on: bool) -> None:
        """Dither 0 and every SpectrogramAugmentation node an identity (no masks) while on."""
        if pre is not None:
            pre.dither = 0.0 if on else saved["dither"]
        for module, counts in zip(augments, saved["masks"], strict=True):
            for key, value in counts.items():
                setattr(module, key, 0 if on else value)

    lengths_key = f"{encoder_node(graph)}.encoded_lengths"

    def loss_and_lengths() -> tuple[torch.Tensor, torch.Tensor]:
        out = model(**inputs)
        return out[loss_key], out[lengths_key]

    def reset_optimizer() -> None:
        nonlocal opt
        opt = common.make_optimizer(model.parameters())

    checkable = common.Checkable(
        tensors=lambda: common.model_tensors(model, "nodes.", pre),
        grads=lambda: common.model_grads(model, "nodes."),
        check_mode=check_mode,
        loss_and_lengths=loss_and_lengths,
        zero_grad=lambda: opt.zero_grad(set_to_none=True),
        reset_optimizer=reset_optimizer,
    )

    versions = {"torch": torch.__version__, "neuralgraph": neuralgraph.__version__}
    info = {
        "graph": str(path),
        "overrides": overrides,
        "loss": loss_key,
        "nodes": list(graph.config.get("nodes", {})),
        "preprocessor_found": pre is not None,
        "jasper_matches": encoder_jasper(graph) == common.QUARTZNET_5X5,
        "framing": common.framing(),
    }
    common.serve("graph", common.count_params(model), versions, step, preproc, info, out=out,
                 commands=common.check_commands(checkable))


if __name__ == "__main__":
    main()

"""``neuralgraph import-nemo``: a NeMo ``.nemo`` checkpoint as a typed graph archive (``.ngm``).

A ``.nemo`` file is a tar of ``model_config.yaml`` (a Hydra config whose ``_target_`` keys name
Python classes to import), ``model_weights.ckpt`` (a pickled state dict) and artifacts (a
tokenizer). It is untrusted input, and nothing in it is executed:

- the tar is read member by member, never extracted: only regular files (and folders), relative
  names without ``..``, no name twice, each member within the size bounds below and, in a plain
  tar, within the file; only the members the import needs are read;
- the config is read with ``yaml.safe_load``; each ``_target_`` is looked up in
  :data:`MODULE_TARGETS` / :data:`MODEL_TARGETS` (NeMo class path -> our registered name) and
  never imported;
- the weights are read with ``torch.load(..., weights_only=True)``: tensors and plain
  containers, no code.

Supported: ``EncDecCTCModel`` (characters), ``EncDecCTCModelBPE`` (SentencePiece) and
``EncDecClassificationModel`` (MatchboxNet / MarbleNet) built from NeMo's
``AudioToMelSpectrogramPreprocessor`` / ``AudioToMFCCPreprocessor``, ``SpectrogramAugmentation``,
``ConvASREncoder`` and ``ConvASRDecoder`` / ``ConvASRDecoderClassification``. The graph's nodes
are named after NeMo's config sections (``preprocessor``, ``spec_augment``, ``encoder``,
``decoder``) and fed by our data sources' ``audio_signal`` / ``audio_length`` ports, so
``GraphModel.restore_from(out)(audio_signal=x, audio_length=n)`` runs it like a native graph.
The preprocessors get the parameters that reproduce NeMo 3.0's framing (``stft_pad_mode:
constant`` and ``drop_last_frame: true`` for mel features, ``ceil_lengths: true`` for MFCCs).
A classifier's ``crop_or_pad_augment`` is left out: NeMo 3.0's ``EncDecClassificationModel``
builds it but never applies it (its ``forward`` is ``EncDecSpeakerLabelModel``'s), so the graph
runs as NeMo 3.0 runs the model.

Anything the import cannot reproduce (an unknown ``_target_``, an unknown or unsupported
parameter, a weight without a home or a parameter without a weight) is reported by name, all
at once, as a :class:`NemoImportError` (exit 2). Keys that only configure NeMo's training
(``optim``, ``train_ds``, ``decoding``...) are left out and listed as notes.

This module imports no torch at import time: the CLI lists its command cheaply.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import attrs
import yaml

from neuralgraph import UserError

if TYPE_CHECKING:
    import torch

    from neuralgraph import GraphModel

__all__ = [
    "MODEL_TARGETS",
    "MODULE_TARGETS",
    "NemoFile",
    "NemoImport",
    "NemoImportError",
    "configure_import_nemo",
    "convert_nemo",
    "import_nemo",
    "read_nemo",
    "run_import_nemo",
]

CONFIG, WEIGHTS = "model_config.yaml", "model_weights.ckpt"
MAX_CONFIG_BYTES = 16 << 20
MAX_WEIGHTS_BYTES = 8 << 30
MAX_ARTIFACT_BYTES = 256 << 20
FB_TOLERANCE = 1e-5  # NeMo's (librosa's) mel filterbank vs ours (torchaudio's)

_ASR = "nemo.collections.asr"


def _spellings(package: str, module: str, names: Mapping[str, str]) -> dict[str, str]:
    """Both ways a NeMo config names a class: ``package.Name`` and ``package.module.Name``."""
    table = {}
    for nemo_name, ours in names.items():
        table[f"{package}.{nemo_name}"] = ours
        table[f"{package}.{module}.{nemo_name}"] = ours
    return table


MODULE_TARGETS: dict[str, str] = {
    **_spellings(f"{_ASR}.modules", "audio_preprocessing", {
        "AudioToMelSpectrogramPreprocessor": "AudioToMelSpectrogramPreprocessor",
        "AudioToMFCCPreprocessor": "AudioToMFCCPreprocessor",
        "SpectrogramAugmentation": "SpectrogramAugmentation",
    }),
    **_spellings(f"{_ASR}.modules", "conv_asr", {
        "ConvASREncoder": "ConvASREncoder",
        "ConvASRDecoder": "ConvASRDecoder",
        "ConvASRDecoderClassification": "ConvASRDecoderClassification",
    }),
}
"""NeMo module class path -> the name of our registered module that reproduces it."""

MODEL_TARGETS: dict[str, str] = {
    **_spellings(f"{_ASR}.models", "ctc_models", {"EncDecCTCModel": "ctc_char"}),
    **_spellings(f"{_ASR}.models", "ctc_bpe_models", {"EncDecCTCModelBPE": "ctc_bpe"}),
    **_spellings(f"{_ASR}.models", "classification_models",
                 {"EncDecClassificationModel": "classification"}),
}
"""NeMo model class path -> the kind of graph the import builds."""

# Config sections that become nodes (of the same names), in graph order.
SECTIONS = ("preprocessor", "spec_augment", "encoder", "decoder")
REQUIRED_SECTIONS = ("preprocessor", "encoder", "decoder")
# Which of our modules each section may hold.
SECTION_MODULES = {
    "preprocessor": ("AudioToMelSpectrogramPreprocessor", "AudioToMFCCPreprocessor"),
    "spec_augment": ("SpectrogramAugmentation",),
    "encoder": ("ConvASREncoder",),
    "decoder": ("ConvASRDecoder", "ConvASRDecoderClassification"),
}
# Top-level keys used by the import (beside the sections) or that only configure NeMo's
# training, logging and decoding: left out of the graph.
USED_KEYS = ("target", "nemo_version", "sample_rate", "labels", "tokenizer")
TRAINING_KEYS = (
    "train_ds", "validation_ds", "test_ds", "optim", "decoding", "trainer", "exp_manager",
    "name", "model_defaults", "log_prediction", "ctc_reduction", "compute_eval_loss",
    "interctc", "variational_noise", "skip_nan_grad", "use_cer", "timesteps", "repeat",
    "dropout", "separable", "kernel_size_factor", "is_regression_task", "spec_augment_cfg",
    "wer", "loss",
)


class NemoImportError(UserError):
    """A ``.nemo`` file that cannot be imported: unreadable, unsafe, or holding a model, module,
    parameter or weight the import cannot reproduce (each one named)."""


# --- reading a .nemo safely ------------------------------------------------------------------


@attrs.frozen
class NemoFile:
    """What an import reads from a ``.nemo``: its config, its weights, and a reader of its
    other members (by normalized name, e.g. ``abc_tokenizer.model``)."""

    path: Path
    config: dict[str, Any]
    weights: dict[str, torch.Tensor]
    members: tuple[str, ...]
    read_member: Callable[[str], bytes]


def _member_name(path: Path, info: tarfile.TarInfo) -> str | None:
    """The member's normalized name (``./a/b`` -> ``a/b``; None for the root folder), once its
    type and name are checked safe."""
    if info.issym() or info.islnk() or not (info.isfile() or info.isdir()):
        kind = "a symbolic link" if info.issym() else "a hard link" if info.islnk() else \
            "a device, FIFO or other special file"
        raise NemoImportError(f"{path}: refusing member '{info.name}': it is {kind}; a .nemo "
                              "file is read only when it holds regular files")
    if info.issparse():
        raise NemoImportError(f"{path}: refusing member '{info.name}': it is a sparse file")
    raw = info.name
    pure = PurePosixPath(raw)
    if pure.is_absolute() or "\\" in raw or any(part == ".." for part in pure.parts):
        raise NemoImportError(f"{path}: refusing member '{raw}': a member name must be a "
                              "relative path without '..'")
    parts = [part for part in pure.parts if part != "."]
    return "/".join(parts) if parts else None


def _open_tar(path: Path) -> tuple[tarfile.TarFile, bool]:
    """A plain tar (NeMo >= 1.7) or a gzipped one (older NeMo), and nothing else; and whether
    it is compressed."""
    try:
        return tarfile.open(path, mode="r:"), False
    except tarfile.ReadError:
        pass
    try:
        return tarfile.open(path, mode="r:gz"), True
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise NemoImportError(f"{path} is not a .nemo file (a tar of model_config.yaml and "
                              f"model_weights.ckpt): {exc}") from None


def read_nemo(path: str | Path) -> NemoFile:
    """Read a ``.nemo`` file's config and weights with every safety check (module docstring).

    Raises:
        NemoImportError: the file is missing, not a tar, holds an unsafe member, lacks its
            config or weights, or they are not plain YAML / a weights-only state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise NemoImportError(f".nemo file not found: {path}")
    tar, compressed = _open_tar(path)
    with tar:
        try:
            files = _index_members(path, tar.getmembers(), path.stat().st_size, compressed)
            config = _parse_config(path, _read(tar, path, files, CONFIG, MAX_CONFIG_BYTES))
            weights_bytes = _read(tar, path, files, WEIGHTS, MAX_WEIGHTS_BYTES)
            artifacts = {name: _read(tar, path, files, name, MAX_ARTIFACT_BYTES)
                         for name in _wanted_artifacts(config, files)}
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise NemoImportError(f"{path} is not a complete .nemo file: {exc}") from None

    def read_member(name: str) -> bytes:
        if name not in artifacts:
            raise NemoImportError(f"{path}: the import did not read member '{name}'")
        return artifacts[name]

    return NemoFile(path, config, _load_weights(path, weights_bytes), tuple(sorted(files)),
                    read_member)


def _index_members(path: Path, infos: list[tarfile.TarInfo], size: int,
                   compressed: bool) -> dict[str, tarfile.TarInfo]:
    files: dict[str, tarfile.TarInfo] = {}
    for info in infos:
        name = _member_name(path, info)
        if name is None or info.isdir():
            continue
        if name in files:
            raise NemoImportError(f"{path}: refusing member '{info.name}': it appears twice")
        if not compressed and info.offset_data + info.size > size:
            raise NemoImportError(f"{path}: member '{info.name}' claims {info.size} B, past "
                                  "the end of the file")
        files[name] = info
    for required in (CONFIG, WEIGHTS):
        if required not in files:
            found = ", ".join(sorted(files)[:8]) or "nothing"
            extra = ""
            if any(PurePosixPath(n).name.startswith("mp_rank") or "/mp_rank" in n
                   for n in files):
                extra = " (a model-parallel checkpoint, which the import does not read)"
            raise NemoImportError(f"{path}: the .nemo file has no {required}{extra}; it holds "
                                  f"{found}")
    return files


def _read(tar: tarfile.TarFile, path: Path, files: Mapping[str, tarfile.TarInfo], name: str,
          limit: int) -> bytes:
    info = files[name]
    if info.size > limit:
        raise NemoImportError(f"{path}: member '{name}' is {info.size} B, more than the "
                              f"{limit} B the import reads")
    handle = tar.extractfile(info)
    if handle is None:
        raise tarfile.ReadError(f"member '{name}' cannot be read")
    data = handle.read(limit + 1)
    if len(data) != info.size:
        raise tarfile.ReadError(f"member '{name}' is truncated")
    return data


def _wanted_artifacts(config: Mapping[str, Any],
                      files: Mapping[str, tarfile.TarInfo]) -> list[str]:
    """The members an import may need besides the config and weights: the SentencePiece
    model of a BPE tokenizer."""
    tokenizer = config.get("tokenizer")
    if not isinstance(tokenizer, Mapping):
        return []
    found = _tokenizer_member(tokenizer, files)
    return [found] if found else []


def _tokenizer_member(tokenizer: Mapping[str, Any],
                      files: Mapping[str, Any]) -> str | None:
    """The member holding ``tokenizer.model_path`` (``nemo:NAME``, or a path whose file name
    the member has), else the one member named ``tokenizer.model`` or ``*_tokenizer.model``."""
    model_path = tokenizer.get("model_path")
    if isinstance(model_path, str) and model_path:
        base = PurePosixPath(model_path.removeprefix("nemo:").replace("\\", "/")).name
        if base in files:
            return base
    candidates = [n for n in files
                  if n == "tokenizer.model" or n.endswith("_tokenizer.model")]
    return candidates[0] if len(candidates) == 1 else None


def _parse_config(path: Path, data: bytes) -> dict[str, Any]:
    """``model_config.yaml`` as plain data (safe loader; no ``${...}`` interpolation left)."""
    try:
        text = data.decode("utf-8")
        events = list(yaml.parse(text, Loader=yaml.SafeLoader))
        config = yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise NemoImportError(f"{path}: {CONFIG} is not YAML: {exc}") from None
    if any(isinstance(e, yaml.AliasEvent) for e in events):
        raise NemoImportError(f"{path}: {CONFIG} uses YAML aliases; NeMo saves resolved, "
                              "plain configs")
    if not isinstance(config, dict):
        raise NemoImportError(f"{path}: {CONFIG} is not a mapping")
    unresolved = [k for k, v in _walk(config) if isinstance(v, str) and "${" in v]
    if unresolved:
        raise NemoImportError(f"{path}: {CONFIG} has unresolved interpolations at "
                              f"{', '.join(unresolved[:5])}")
    return config


def _walk(node: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _walk(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{prefix}.{i}")
    else:
        yield prefix, node


def _load_weights(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    """``model_weights.ckpt`` with a weights-only unpickler: a flat {name: tensor} dict."""
    import pickle

    import torch

    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NemoImportError(f"{path}: {WEIGHTS} is not a plain state dict (read with "
                              f"weights_only=True, which refuses code): {first}") from None
    if isinstance(state, Mapping) and "state_dict" in state and \
            isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise NemoImportError(f"{path}: {WEIGHTS} holds a {type(state).__name__}, not a state "
                              "dict")
    bad = [str(k) for k, v in state.items() if not isinstance(k, str) or
           not isinstance(v, torch.Tensor)]
    if bad:
        raise NemoImportError(f"{path}: {WEIGHTS} has entries that are not named tensors: "
                              f"{', '.join(bad[:5])}")
    return dict(state)


# --- the config mapping ----------------------------------------------------------------------

_SAME = object()  # a NeMo parameter that maps to ours of the same name


@attrs.define
class _Section:
    """How one of our modules takes a NeMo module's parameters: NeMo key -> our key, the keys
    ignored (with why), the value checks, and what the import adds."""

    params: Mapping[str, Any]
    ignored: Mapping[str, str] = attrs.Factory(dict)
    checks: Mapping[str, Callable[[Any], str | None]] = attrs.Factory(dict)
    added: Mapping[str, Any] = attrs.Factory(dict)


def _names(*names: str) -> dict[str, Any]:
    return dict.fromkeys(names, _SAME)


def _must_be(expected: Any, why: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value == expected else f"must be {expected!r} ({why})"
    return check


def _not_max(value: Any) -> str | None:
    return "'max' (pad to max_duration) is not supported; use a number" \
        if value == "max" else None


def _normalize(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return "fixed_mean / fixed_std normalization is not supported"
    return None


_MEL = _Section(
    params=_names("sample_rate", "window_size", "window_stride", "n_window_size",
                  "n_window_stride", "window", "normalize", "n_fft", "preemph", "features",
                  "lowfreq", "highfreq", "log", "log_zero_guard_type", "log_zero_guard_value",
                  "dither", "pad_to", "frame_splicing", "exact_pad", "pad_value", "mag_power"),
    ignored={
        "rng": "the random generator of training-time augmentation",
        "nb_augmentation_prob": "narrow-band augmentation, training only",
        "nb_max_freq": "narrow-band augmentation, training only",
        "use_grads": "gradients through the features",
        "max_duration": "used only by pad_to: max",
        "stft_exact_pad": "deprecated; NeMo 3.0 ignores it",
        "stft_conv": "deprecated; NeMo 3.0 ignores it",
        "use_torchaudio": "deprecated; NeMo 3.0 ignores it",
    },
    checks={"mel_norm": _must_be("slaney", "our filterbank is Slaney-normalized"),
            "pad_to": _not_max, "normalize": _normalize},
    added={"stft_pad_mode": "constant", "drop_last_frame": True},
)
_MFCC = _Section(
    params=_names("sample_rate", "window_size", "window_stride", "n_window_size",
                  "n_window_stride", "window", "n_fft", "lowfreq", "highfreq", "n_mels",
                  "n_mfcc", "dct_type", "norm", "log"),
    added={"ceil_lengths": True},
)
_SPEC_AUGMENT = _Section(
    params=_names("freq_masks", "time_masks", "freq_width", "time_width", "rect_masks",
                  "rect_time", "rect_freq", "mask_value"),
    ignored={"rng": "a random generator", "use_vectorized_spec_augment": "an implementation "
             "choice", "use_numba_spec_augment": "an implementation choice"},
)
_ENCODER = _Section(
    params=_names("jasper", "activation", "feat_in", "normalization_mode", "residual_mode",
                  "norm_groups", "conv_mask", "frame_splicing", "init_mode"),
    checks={"quantize": _must_be(False, "quantized convolutions are not supported")},
)
_DECODER = _Section(
    params=_names("feat_in", "num_classes", "init_mode", "vocabulary"),
    checks={"add_blank": _must_be(True, "the CTC blank is always added, last")},
)
_CLASSIFIER = _Section(
    params=_names("feat_in", "num_classes", "init_mode", "return_logits", "pooling_type"),
)
SECTION_SPECS = {
    "AudioToMelSpectrogramPreprocessor": _MEL,
    "AudioToMFCCPreprocessor": _MFCC,
    "SpectrogramAugmentation": _SPEC_AUGMENT,
    "ConvASREncoder": _ENCODER,
    "ConvASRDecoder": _DECODER,
    "ConvASRDecoderClassification": _CLASSIFIER,
}


@attrs.define
class NemoImport:
    """The result of :func:`convert_nemo`: the graph (a plain config for ``Graph``), the
    weights renamed to the graph's state-dict keys, NeMo's buffers the graph recomputes (to be
    compared), the files the graph names (kept alive until saved) and notes."""

    kind: str
    nemo_class: str
    config: dict[str, Any]
    weights: dict[str, Any]
    recomputed: dict[str, Any]
    notes: list[str]
    workdir: Any = None  # a TemporaryDirectory holding extracted artifacts


def _target_of(section: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(``_target_``, parameters) of a module config; NeMo 1.0 betas wrote ``cls`` and
    ``params`` instead."""
    if "_target_" in section:
        params = {k: v for k, v in section.items() if k != "_target_"}
        return section["_target_"], params
    if "cls" in section:
        params = section.get("params") or {}
        extra = {k: v for k, v in section.items() if k not in ("cls", "params")}
        return section["cls"], {**params, **extra}
    return None, dict(section)


def _model_kind(config: Mapping[str, Any], problems: list[str], notes: list[str]) -> tuple[
        str | None, str]:
    target = config.get("target")
    if isinstance(target, str):
        kind = MODEL_TARGETS.get(target)
        if kind is None:
            known = ", ".join(sorted({t.rsplit(".", 1)[1] for t in MODEL_TARGETS}))
            problems.append(f"target: the model class '{target}' is not one the import knows "
                            f"(it reads {known})")
        return kind, target.rsplit(".", 1)[-1]
    # No `target` (NeMo before 1.5 did not save it): tell the models apart by their sections.
    decoder = config.get("decoder")
    decoder_target = _target_of(decoder)[0] if isinstance(decoder, Mapping) else None
    if isinstance(decoder_target, str) and decoder_target.endswith("ConvASRDecoderClassification"):
        kind, name = "classification", "EncDecClassificationModel"
    elif isinstance(config.get("tokenizer"), Mapping):
        kind, name = "ctc_bpe", "EncDecCTCModelBPE"
    else:
        kind, name = "ctc_char", "EncDecCTCModel"
    notes.append(f"the config names no model class (`target`); its sections make it a {name}")
    return kind, name


def _section_params(name: str, section: Any, problems: list[str]) -> tuple[str | None,
                                                                          dict[str, Any]]:
    """Our module name and parameters for config section ``name``."""
    if not isinstance(section, Mapping):
        problems.append(f"{name}: must be a module config (a mapping with _target_)")
        return None, {}
    target, raw = _target_of(section)
    if not isinstance(target, str):
        problems.append(f"{name}: has no _target_ naming its NeMo module")
        return None, {}
    module = MODULE_TARGETS.get(target)
    if module is None:
        problems.append(f"{name}._target_: '{target}' is not a NeMo module the import knows "
                        "(see docs/nemo.md)")
        return None, {}
    if module not in SECTION_MODULES.get(name, ()):
        problems.append(f"{name}._target_: a {module} cannot be this model's {name} (expected "
                        f"{' or '.join(SECTION_MODULES.get(name, ('nothing',)))})")
        return None, {}
    spec = SECTION_SPECS[module]
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if key in spec.checks:
            reason = spec.checks[key](value)
            if reason:
                problems.append(f"{name}.{key}: {value!r} {reason}")
                continue
        if key in spec.params:
            target_key = key if spec.params[key] is _SAME else spec.params[key]
            params[target_key] = value
        elif key not in spec.ignored and key not in spec.checks:
            problems.append(f"{name}.{key}: a parameter of NeMo's {target.rsplit('.', 1)[1]} "
                            f"that the import does not know")
    params.update(spec.added)
    return module, params


def _mel_fixes(params: dict[str, Any], problems: list[str]) -> None:
    """NeMo 3.0's FilterbankFeatures quirks the import must reproduce or refuse."""
    normalize = params.get("normalize", "per_feature")
    if isinstance(normalize, str) and normalize not in ("per_feature", "all_features"):
        params["normalize"] = None  # NeMo normalizes only for those two names
    if params.get("exact_pad") and params.get("preemph", 0.97):
        problems.append("preprocessor.exact_pad: true with pre-emphasis is not supported: NeMo "
                        "3.0 then zeroes the last (n_fft - hop) / 2 samples of every utterance "
                        "(its pre-emphasis mask ignores the padding it adds), which the import "
                        "does not reproduce")


def convert_nemo(nemo: NemoFile) -> NemoImport:
    """Map a read ``.nemo`` to a graph config and renamed weights; raises
    :class:`NemoImportError` listing every problem."""
    config = nemo.config
    problems: list[str] = []
    notes: list[str] = []
    kind, nemo_class = _model_kind(config, problems, notes)
    if kind is None:
        raise _error(nemo.path, problems)
    modules: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in SECTIONS:
        if config.get(name) is None:
            if name in REQUIRED_SECTIONS:
                problems.append(f"{name}: missing (a {nemo_class} needs one)")
            continue
        module, params = _section_params(name, config[name], problems)
        if module is not None:
            modules[name] = (module, params)
    decoder = "ConvASRDecoderClassification" if kind == "classification" else "ConvASRDecoder"
    if "decoder" in modules and modules["decoder"][0] != decoder:
        problems.append(f"decoder._target_: a {nemo_class} needs a {decoder} decoder, not a "
                        f"{modules['decoder'][0]}")
    _top_level_keys(config, kind, problems, notes)
    if config.get("is_regression_task"):
        problems.append("is_regression_task: true (a regression model) is not supported")
    if "preprocessor" in modules and modules["preprocessor"][0] == \
            "AudioToMelSpectrogramPreprocessor":
        _mel_fixes(modules["preprocessor"][1], problems)
    result = NemoImport(kind, nemo_class, {}, {}, {}, notes)
    data = _data_source(kind, config, modules, nemo, problems, result)
    if problems:
        raise _error(nemo.path, problems)
    result.config = _graph(_graph_name(nemo.path), kind, modules, data)
    result.weights, result.recomputed = _rename_weights(nemo.weights, modules)
    return result


def _top_level_keys(config: Mapping[str, Any], kind: str, problems: list[str],
                    notes: list[str]) -> None:
    left_out = []
    for key, value in config.items():
        if key in SECTIONS or key in USED_KEYS:
            continue
        if key == "crop_or_pad_augment" and kind == "classification":
            notes.append("crop_or_pad_augment: left out, as NeMo 3.0's "
                         "EncDecClassificationModel builds it but never applies it")
            continue
        if key in TRAINING_KEYS:
            left_out.append(key)
        elif isinstance(value, Mapping) and ("_target_" in value or "cls" in value):
            target = _target_of(value)[0]
            problems.append(f"{key}: a module ('{target}') that this kind of model does not "
                            "have in the import; it may change the outputs")
        else:
            left_out.append(key)
    if left_out:
        notes.append("left out (training, data or decoding settings of NeMo; add yours as "
                     f"graph keys or overrides): {', '.join(left_out)}")


def _data_source(kind: str, config: Mapping[str, Any],
                 modules: Mapping[str, tuple[str, dict[str, Any]]], nemo: NemoFile,
                 problems: list[str], result: NemoImport) -> dict[str, Any]:
    """The data section (module and params) and the decoder's class count."""
    preprocessor = modules.get("preprocessor", ("", {}))[1]
    rate = preprocessor.get("sample_rate", 16000)  # NeMo's preprocessors' default
    if "sample_rate" in config and config["sample_rate"] != rate:
        problems.append(f"sample_rate: {config['sample_rate']} differs from "
                        f"preprocessor.sample_rate {rate}")
    if "preprocessor" in modules:
        preprocessor["sample_rate"] = rate
    decoder = modules.get("decoder", ("", {}))[1]
    if kind == "classification":
        labels = config.get("labels")
        if not isinstance(labels, list) or not labels:
            problems.append("labels: a classification model needs its list of class labels")
            return {}
        labels = [str(label) for label in labels]
        if decoder and decoder.get("num_classes") not in (None, len(labels)):
            problems.append(f"decoder.num_classes: {decoder['num_classes']}, but labels has "
                            f"{len(labels)} entries")
        if decoder:
            decoder["num_classes"] = len(labels)
        return {"module": "AudioToClassificationLabelDataset",
                "params": {"labels": labels, "sample_rate": rate}}
    if kind == "ctc_char":
        return _char_data(config, decoder, rate, problems)
    return _bpe_data(config, decoder, rate, nemo, problems, result)


def _char_data(config: Mapping[str, Any], decoder: dict[str, Any], rate: Any,
               problems: list[str]) -> dict[str, Any]:
    labels = config.get("labels")
    vocabulary = decoder.get("vocabulary") if decoder else None
    if labels is None:
        labels = vocabulary
    if not isinstance(labels, list) or not labels:
        problems.append("labels: a character CTC model needs its labels (top-level `labels` "
                        "or decoder.vocabulary)")
        return {}
    labels = [str(label) for label in labels]
    if vocabulary and [str(v) for v in vocabulary] != labels:
        problems.append("decoder.vocabulary differs from labels")
    if decoder:
        decoder["vocabulary"] = labels
        num = decoder.get("num_classes")
        if isinstance(num, int) and num > 0 and num != len(labels):
            problems.append(f"decoder.num_classes: {num}, but there are {len(labels)} labels")
        decoder["num_classes"] = len(labels)
    return {"module": "AudioToCharDataset", "params": {"labels": labels, "sample_rate": rate}}


def _bpe_data(config: Mapping[str, Any], decoder: dict[str, Any], rate: Any, nemo: NemoFile,
              problems: list[str], result: NemoImport) -> dict[str, Any]:
    tokenizer = config.get("tokenizer")
    if not isinstance(tokenizer, Mapping):
        problems.append("tokenizer: a BPE model needs its tokenizer section")
        return {}
    kind = str(tokenizer.get("type", "bpe")).lower()
    if kind != "bpe":
        problems.append(f"tokenizer.type: '{kind}' is not supported (only SentencePiece, "
                        "'bpe')")
        return {}
    member = _tokenizer_member(tokenizer, dict.fromkeys(nemo.members))
    if member is None:
        problems.append(f"tokenizer.model_path: {tokenizer.get('model_path')!r} names no "
                        "member of the .nemo file (its SentencePiece model)")
        return {}
    result.workdir = tempfile.TemporaryDirectory(prefix="nemo-import-")
    model_file = Path(result.workdir.name) / "tokenizer.model"
    model_file.write_bytes(nemo.read_member(member))
    try:
        from neuralgraph_text import SentencePieceTokenizer

        vocab_size = SentencePieceTokenizer(str(model_file)).vocab_size
    except (ValueError, OSError, RuntimeError) as exc:
        problems.append(f"tokenizer.model_path: member '{member}' is not a SentencePiece "
                        f"model: {exc}")
        return {}
    if decoder:
        num = decoder.get("num_classes")
        if isinstance(num, int) and num > 0 and num != vocab_size:
            problems.append(f"decoder.num_classes: {num}, but the tokenizer has {vocab_size} "
                            "pieces")
        decoder["num_classes"] = vocab_size
        decoder.pop("vocabulary", None)  # the pieces; the tokenizer holds them
    return {"module": "AudioToBPEDataset",
            "params": {"tokenizer_model": str(model_file), "sample_rate": rate}}


def _graph_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", path.stem).lstrip(".")[:100]
    return name or "nemo_model"


def _graph(name: str, kind: str, modules: Mapping[str, tuple[str, dict[str, Any]]],
           data: dict[str, Any]) -> dict[str, Any]:
    """The graph: data -> preprocessor -> [spec_augment] -> encoder -> decoder (+ CTC loss and
    WER for CTC models)."""
    nodes: dict[str, Any] = {}
    signal, length = "data.audio_signal", "data.audio_length"

    def node(section: str, inputs: dict[str, str], **extra: Any) -> None:
        module, params = modules[section]
        nodes[section] = {"module": module, "params": params, "inputs": inputs, **extra}

    node("preprocessor", {"input_signal": signal, "length": length})
    signal, length = "preprocessor.processed_signal", "preprocessor.processed_length"
    if "spec_augment" in modules:
        node("spec_augment", {"input_spec": signal, "length": length}, train_only=True)
        signal = "spec_augment.augmented_spec"
    node("encoder", {"audio_signal": signal, "length": length})
    node("decoder", {"encoder_output": "encoder.outputs"})
    config: dict[str, Any] = {"name": name, "data": data, "nodes": nodes}
    if kind in ("ctc_char", "ctc_bpe"):
        num_classes = modules["decoder"][1]["num_classes"]
        nodes["ctc"] = {
            "module": "CTCLoss", "params": {"num_classes": num_classes},
            "inputs": {"log_probs": "decoder.logprobs", "targets": "data.transcripts",
                       "input_lengths": "encoder.encoded_lengths",
                       "target_lengths": "data.transcript_length"}}
        config["loss"] = "ctc.loss"
        vocabulary = {"labels": data["params"]["labels"]} if kind == "ctc_char" else \
            {"tokenizer_model": data["params"]["tokenizer_model"]}
        config["metrics"] = {"wer": {
            "module": "WER", "params": vocabulary,
            "inputs": {"predictions": "decoder.logprobs",
                       "predictions_lengths": "encoder.encoded_lengths",
                       "targets": "data.transcripts", "target_lengths": "data.transcript_length"}}}
    return config


def _rename_weights(weights: Mapping[str, Any], modules: Mapping[str, tuple[str, Any]]
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """NeMo's state-dict keys -> ours (``encoder.encoder.0...`` -> ``nodes.encoder.encoder.0...``;
    NeMo's attribute names are its config sections' for every module with weights). The mel
    preprocessor's window and filterbank, which ours recomputes, are set apart."""
    renamed, recomputed = {}, {}
    mel = modules.get("preprocessor", ("",))[0] == "AudioToMelSpectrogramPreprocessor"
    for key, value in weights.items():
        if mel and key in ("preprocessor.featurizer.window", "preprocessor.featurizer.fb"):
            recomputed[key] = value
        else:
            renamed[f"nodes.{key}"] = value
    return renamed, recomputed


def _error(path: Path, problems: list[str]) -> NemoImportError:
    listed = "\n".join(f"  {p}" for p in problems)
    return NemoImportError(f"{path}: cannot import ({len(problems)} problem"
                           f"{'s' if len(problems) != 1 else ''}):\n{listed}")


# --- building and saving ---------------------------------------------------------------------


def build_model(imported: NemoImport, path: Path) -> GraphModel:
    """The graph built, NeMo's weights loaded into it (every key accounted for), in eval mode."""
    import torch

    from neuralgraph import Graph, GraphModel

    model = GraphModel(Graph.from_config(imported.config))
    ours = model.state_dict()
    problems: list[str] = []
    unknown = sorted(k for k in imported.weights if k not in ours)
    missing = sorted(k for k in ours if k not in imported.weights)
    for key in unknown:
        problems.append(f"weight '{key.removeprefix('nodes.')}': no parameter or buffer of the "
                        "graph has this name")
    for key in missing:
        problems.append(f"parameter '{key.removeprefix('nodes.')}' of the graph: the .nemo "
                        "file has no weight for it")
    for key in sorted(set(imported.weights) & set(ours)):
        theirs, mine = imported.weights[key], ours[key]
        if tuple(theirs.shape) != tuple(mine.shape):
            problems.append(f"weight '{key.removeprefix('nodes.')}': shape "
                            f"{tuple(theirs.shape)} in the .nemo file, {tuple(mine.shape)} "
                            "in the graph")
    problems += _compare_recomputed(imported.recomputed, model)
    if problems:
        raise _error(path, problems)
    with torch.no_grad():
        model.load_state_dict({k: v.to(ours[k].dtype) for k, v in imported.weights.items()},
                              strict=True)
    model.eval()
    return model


def _compare_recomputed(recomputed: Mapping[str, Any], model: GraphModel) -> list[str]:
    """NeMo's mel window and filterbank vs the ones our preprocessor computes."""
    problems = []
    preprocessor = model.nodes["preprocessor"] if "preprocessor" in model.nodes else None
    for key, theirs in recomputed.items():
        mine = preprocessor.window if key.endswith(".window") else preprocessor.fb
        theirs = theirs.reshape(mine.shape) if theirs.numel() == mine.numel() else theirs
        if tuple(theirs.shape) != tuple(mine.shape):
            problems.append(f"weight '{key}': shape {tuple(theirs.shape)} in the .nemo file, "
                            f"{tuple(mine.shape)} computed by the preprocessor")
            continue
        diff = float((theirs.float() - mine.float()).abs().max()) if mine.numel() else 0.0
        if diff > FB_TOLERANCE:
            problems.append(f"weight '{key}': differs by up to {diff:.3g} from the one the "
                            "preprocessor computes from its parameters; the model would not "
                            "give NeMo's outputs")
    return problems


def import_nemo(source: str | Path, out: str | Path | None = None) -> tuple[GraphModel, NemoImport]:
    """Read ``source`` (a ``.nemo``), build the graph with NeMo's weights, and save it to
    ``out`` (a ``.ngm``; not saved when None). Returns the model (eval mode) and the import's
    record (``config``, ``notes``).

    Raises:
        NemoImportError: anything that stops an exact import, every problem named.
    """
    source = Path(source)
    nemo = read_nemo(source)
    imported = convert_nemo(nemo)
    try:
        model = build_model(imported, source)
        if out is not None:
            model.save_to(Path(out))
    finally:
        if imported.workdir is not None and out is not None:
            imported.workdir.cleanup()
    return model, imported


# --- the command -----------------------------------------------------------------------------


def configure_import_nemo(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``neuralgraph import-nemo``."""
    parser.add_argument("nemo", help="a NeMo .nemo checkpoint (EncDecCTCModel, "
                                     "EncDecCTCModelBPE or EncDecClassificationModel)")
    parser.add_argument("--out", help="the .ngm archive to write (default: the .nemo file's "
                                      "name with .ngm, in the current folder)")


def run_import_nemo(args: argparse.Namespace) -> int:
    """Import the file; print what was written and the notes (left-out keys) on stderr."""
    source = Path(args.nemo)
    out = Path(args.out) if args.out else Path(f"{source.stem}.ngm")
    if out.resolve() == source.resolve():
        raise NemoImportError(f"--out {out} is the .nemo file itself")
    model, imported = import_nemo(source, out)
    count = sum(p.numel() for p in model.parameters())
    nodes = ", ".join(f"{name}: {spec['module']}" for name, spec in
                      imported.config["nodes"].items())
    for note in imported.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"imported {source} ({imported.nemo_class}, {count:,} parameters; {nodes}) -> {out}")
    return 0

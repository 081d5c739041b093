"""Jasper / QuartzNet building blocks (NeMo 1.x semantics), as NeMo keeps them in
``parts/submodules/jasper.py``; the graph modules built from them are in
:mod:`neuralgraph_asr.conv`.

A Jasper block (:class:`JasperBlock`) is described by one entry of the encoder's ``jasper`` list,
validated into a :class:`BlockSpec`. Its main path repeats ``conv -> norm -> activation ->
dropout`` ``repeat`` times; a convolution is either one (grouped) convolution or, when
``separable``, a depthwise convolution followed by a 1x1 pointwise one, and grouped convolutions
are followed by a :class:`GroupShuffle`. An optional :class:`SqueezeExcite` gates the channels
at the end of the main path. The residual branch (a 1x1 conv + norm; one per earlier block with
dense residuals) is added before the last activation and dropout.

Convolutions are *masked* (:class:`MaskedConv1d`): frames past each utterance's length are
zeroed before every convolution, so the valid frames of an utterance do not depend on how much
padding its batch has. The lengths and padding masks of one forward pass live in one
``_Padding``, one per *length level* (a convolution that changes the time length starts a new
level, with its ``_LengthRule``), so every mask is computed once and shared.

Module and parameter names mirror NeMo's (``mconv.0.conv.weight``, ``res.0.0.conv.weight``...),
and :func:`init_weights` is NeMo's initialization.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuralgraph.validators import (
    ParameterError,
    between,
    check,
    in_,
    optional,
    positive_int,
    satisfies,
)

__all__ = [
    # what a block may be configured with
    "ACTIVATIONS",
    "NORMALIZATIONS",
    "RESIDUAL_MODES",
    "INIT_MODES",
    "REQUIRED_BLOCK_KEYS",
    "OPTIONAL_BLOCK_KEYS",
    "init_weights",
    # the block and its parts
    "BlockSpec",
    "JasperBlock",
    "MaskedConv1d",
    "GroupShuffle",
    "SqueezeExcite",
]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    # NeMo's ``hardtanh`` is ``nn.Hardtanh()`` with torch's defaults: clamp to [-1, 1].
    "hardtanh": lambda: nn.Hardtanh(inplace=True),
    "relu": lambda: nn.ReLU(inplace=True),
    "selu": lambda: nn.SELU(inplace=True),
    "swish": lambda: nn.SiLU(inplace=True),
    "silu": lambda: nn.SiLU(inplace=True),
    "gelu": lambda: nn.GELU(),
    "identity": lambda: nn.Identity(),
}
NORMALIZATIONS = ("batch", "group", "instance", "layer")
RESIDUAL_MODES = ("add", "stride_add")
INIT_MODES = (
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "tds_uniform",
    "tds_normal",
)
REQUIRED_BLOCK_KEYS = ("filters", "repeat", "kernel", "stride", "dilation", "dropout", "residual")
OPTIONAL_BLOCK_KEYS: dict[str, Any] = {
    "residual_dense": False,
    "groups": 1,
    "separable": False,
    "heads": -1,
    "residual_mode": None,  # the encoder's residual_mode
    "se": False,
    "se_reduction_ratio": 8,
    "se_context_size": -1,
    "se_interpolation_mode": "nearest",
    "kernel_size_factor": 1.0,
    "stride_last": False,
    "future_context": -1,
}


# ---------------------------------------------------------------------------------------------
# initialization
# ---------------------------------------------------------------------------------------------


def _tds_(tensor: Tensor, normal: bool) -> None:
    """Time-depth-separable init: bound 2 / sqrt(fan_in) (uniform) or std of that (normal)."""
    # torch has no public fan-in helper; NeMo calls this one too.
    bound = 2.0 / math.sqrt(nn.init._calculate_correct_fan(tensor, "fan_in"))  # noqa: SLF001
    with torch.no_grad():
        tensor.normal_(0.0, bound) if normal else tensor.uniform_(-bound, bound)


def init_weights(module: nn.Module, mode: str | None = "xavier_uniform") -> None:
    """NeMo's ``init_weights``: conv/linear weights by ``mode``; batch norm to identity.

    Biases keep torch's default initialization. ``mode=None`` leaves weights as torch made them.
    """
    if isinstance(module, (nn.Conv1d, nn.Linear)) and mode is not None:
        weight = module.weight
        if mode == "xavier_uniform":
            nn.init.xavier_uniform_(weight, gain=1.0)
        elif mode == "xavier_normal":
            nn.init.xavier_normal_(weight, gain=1.0)
        elif mode == "kaiming_uniform":
            nn.init.kaiming_uniform_(weight, nonlinearity="relu")
        elif mode == "kaiming_normal":
            nn.init.kaiming_normal_(weight, nonlinearity="relu")
        elif mode in ("tds_uniform", "tds_normal"):
            _tds_(weight, normal=mode == "tds_normal")
        else:
            raise ValueError(f"init_mode must be one of {INIT_MODES} or None (got {mode!r})")
    elif isinstance(module, nn.BatchNorm1d):
        if module.track_running_stats:
            module.running_mean.zero_()
            module.running_var.fill_(1)
            module.num_batches_tracked.zero_()
        if module.affine:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _check_init_mode(init_mode: str | None) -> None:
    check("init_mode", init_mode, optional(in_(INIT_MODES)))


# ---------------------------------------------------------------------------------------------
# lengths and padding masks, shared by all convolutions of one forward pass
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LengthRule:
    """How a convolution that changes the time length maps input lengths to output lengths."""

    source: int  # the length level of the convolution's input
    kernel_size: int
    stride: int
    dilation: int
    total_padding: int

    def apply(self, lengths: Tensor) -> Tensor:
        """NeMo's ``MaskedConv1d.get_seq_len`` (truncating division, as NeMo)."""
        span = self.dilation * (self.kernel_size - 1) + 1
        return (
            torch.div(lengths + self.total_padding - span, self.stride, rounding_mode="trunc") + 1
        )


class _Padding:
    """Lengths and padding masks of one forward pass, one per *length level*.

    Level 0 is the encoder input; each convolution that changes the time length (stride > 1 or
    non-"same" padding) starts a new level. Every mask is computed at most once per forward and
    shared by all convolutions at that level.
    """

    def __init__(self, lengths: Tensor, rules: Sequence[_LengthRule], enabled: bool,
                 dims: int = 3) -> None:
        self.enabled = enabled
        self.dims = dims  # 3: (B, C, T) activations; 4: (B, C, 1, T) channels-last ones
        self._rules = rules
        self._lengths: list[Tensor | None] = [lengths] + [None] * len(rules)
        self._masks: list[Tensor | None] = [None] * (len(rules) + 1)
        self._masked: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}

    def lengths(self, level: int) -> Tensor:
        """Lengths (B,) at ``level``."""
        found = self._lengths[level]
        if found is None:
            rule = self._rules[level - 1]
            found = rule.apply(self.lengths(rule.source))
            self._lengths[level] = found
        return found

    def pad_mask(self, level: int, time: int) -> Tensor:
        """Boolean (B, 1, T) (or (B, 1, 1, T) with 4-D activations): True on frames past each
        utterance's length at ``level``."""
        found = self._masks[level]
        if found is None or found.shape[-1] != time:
            lengths = self.lengths(level)
            steps = torch.arange(time, device=lengths.device)
            found = (steps[None, :] >= lengths[:, None]).view(-1, *[1] * (self.dims - 2), time)
            self._masks[level] = found
        return found

    def zero_padding(self, x: Tensor, level: int) -> Tensor:
        """``x`` (B, C, T) with frames past the lengths at ``level`` set to zero.

        A block's input feeds both its first conv and its residual conv: it is masked once.
        """
        if not self.enabled:
            return x
        key = (id(x), level)
        hit = self._masked.get(key)
        if hit is not None and hit[0] is x:
            return hit[1]
        # one fused kernel; masked_fill out of place is a copy plus a fill
        out = torch.where(self.pad_mask(level, x.shape[-1]), 0.0, x)
        self._masked[key] = (x, out)
        return out


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------


def _exporting() -> bool:
    """Whether a TorchScript or ONNX export is tracing or scripting this forward."""
    return torch.jit.is_scripting() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


class MaskedConv1d(nn.Module):
    """A ``Conv1d`` (kept as ``.conv``) whose input is zeroed past each utterance's length.

    ``padding`` is an int (symmetric) or a (left, right) pair. ``level_in`` / ``level_out`` are the
    length levels of input and output, assigned by :meth:`JasperBlock.assign_levels`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.pad_pair: tuple[int, int] | None = None
        if isinstance(padding, tuple):
            self.pad_pair = padding
            conv_padding = 0
        else:
            conv_padding = padding
        self.conv = nn.Conv1d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=conv_padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        self.total_padding = sum(padding) if isinstance(padding, tuple) else 2 * padding
        self.level_in = 0
        self.level_out = 0

    @property
    def polyphase(self) -> bool:
        """Whether a dilated convolution runs as ``dilation`` undilated ones (see
        :meth:`_polyphase`): stride 1 and symmetric padding a multiple of the dilation."""
        conv = self.conv
        d = conv.dilation[0]
        return d > 1 and conv.stride[0] == 1 and self.pad_pair is None and \
            conv.padding[0] % d == 0

    def _polyphase(self, x: Tensor) -> Tensor:
        """The dilated convolution as an undilated one over each of its ``d`` phases.

        With dilation d, output frame u*d + r reads only input frames of phase r (frames
        r, r + d, ...), so (B, C, T) seen as (B, C, T/d, d) — the same memory, both in
        (B, C, T) and in channels-last (B, C, 1, T) layout — convolves over its third axis with
        the undilated kernel as a (k, 1) 2-D kernel. The same sums as the dilated kernel, at the
        cost of an undilated one: oneDNN's dilated depthwise kernels on CPU are ~9x slower.
        """
        conv = self.conv
        d, k = conv.dilation[0], conv.kernel_size[0]
        four_d = x.dim() == 4
        flat = x.squeeze(2) if four_d else x
        batch, channels, time = flat.shape
        out_time = time + 2 * conv.padding[0] - d * (k - 1)
        extra = -time % d
        if extra:
            flat = F.pad(flat, (0, extra))
            if four_d:
                flat = flat.unsqueeze(2).contiguous(memory_format=torch.channels_last).squeeze(2)
        phases = flat.reshape(batch, channels, (time + extra) // d, d)
        y = F.conv2d(phases, conv.weight.unsqueeze(3), conv.bias, 1,
                     (conv.padding[0] // d, 0), 1, conv.groups)
        y = y.reshape(batch, y.shape[1], 1, -1) if four_d else y.reshape(batch, y.shape[1], -1)
        return y[..., :out_time] if y.shape[-1] != out_time else y

    @property
    def changes_length(self) -> bool:
        """Whether output lengths differ from input lengths (NeMo's "same padding" test)."""
        k, d, s = self.conv.kernel_size[0], self.conv.dilation[0], self.conv.stride[0]
        return not (s == 1 and self.total_padding == d * (k - 1))

    def length_rule(self) -> _LengthRule:
        """The rule mapping this conv's input lengths to its output lengths."""
        return _LengthRule(
            self.level_in,
            self.conv.kernel_size[0],
            self.conv.stride[0],
            self.conv.dilation[0],
            self.total_padding,
        )

    def forward(self, x: Tensor, padding: _Padding) -> Tensor:
        """(B, C_in, T) -> (B, C_out, T'), masking input frames past the lengths first.

        A 4-D (B, C_in, 1, T) input (the encoder's channels-last layout) runs the same weights
        as a 2-D convolution over a height of 1: (B, C_out, 1, T').
        """
        x = padding.zero_padding(x, self.level_in)
        if self.pad_pair is not None:
            x = F.pad(x, self.pad_pair)
        if self.polyphase and x.device.type == "cpu" and not _exporting():
            return self._polyphase(x)
        if x.dim() == 4:
            conv = self.conv
            return F.conv2d(x, conv.weight.unsqueeze(2), conv.bias, (1, conv.stride[0]),
                            (0, conv.padding[0]), (1, conv.dilation[0]), conv.groups)
        return self.conv(x)


class GroupShuffle(nn.Module):
    """Interleaves the channels of ``groups`` groups (after grouped convolutions)."""

    def __init__(self, groups: int, channels: int) -> None:
        super().__init__()
        self.groups = groups
        self.channels_per_group = channels // groups

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, ...) -> (B, C, ...) with channels shuffled across groups."""
        batch, rest = x.shape[0], x.shape[2:]
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        x = x.reshape(batch, self.groups, self.channels_per_group, *rest).transpose(1, 2)
        x = x.reshape(batch, self.groups * self.channels_per_group, *rest)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation over time: masked average -> 2-layer MLP -> sigmoid channel gate.

    ``context_window < 1`` averages over all valid frames; otherwise training averages a random
    window of that many frames and inference uses all valid frames (as NeMo).
    """

    def __init__(
        self,
        channels: int,
        reduction_ratio: int,
        context_window: int = -1,
        interpolation_mode: str = "nearest",
        activation: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.context_window = context_window
        self.interpolation_mode = interpolation_mode
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction_ratio, bias=False),
            activation if activation is not None else nn.ReLU(inplace=True),
            nn.Linear(channels // reduction_ratio, channels, bias=False),
        )
        self.level = 0

    def _pool(self, x: Tensor, valid: Tensor) -> Tensor:
        """Masked mean over time: (B, C, ..., T) -> (B, C, ..., 1)."""
        window = self.context_window
        if self.training and 0 < window < x.shape[-1]:
            start = int(torch.randint(0, x.shape[-1] - window, (1,)))
            x, valid = x[..., start : start + window], valid[..., start : start + window]
            return x.sum(-1, keepdim=True) / (valid.sum(-1, keepdim=True).to(x.dtype) + 1e-8)
        return x.sum(-1, keepdim=True) / valid.sum(-1, keepdim=True).clamp(min=1).to(x.dtype)

    def forward(self, x: Tensor, padding: _Padding) -> Tensor:
        """(B, C, T) -> (B, C, T) (or 4-D (B, C, 1, T)): ``x`` scaled per channel by its gate."""
        pad = padding.pad_mask(self.level, x.shape[-1])
        x = torch.where(pad, 0.0, x)  # keeps a channels-last layout (masked_fill does not)
        pooled = self._pool(x, ~pad)
        gate = self.fc(pooled.flatten(1)).view(pooled.shape)
        return x * torch.sigmoid(gate)


def _new_kernel_size(kernel_size: int, factor: float) -> int:
    """NeMo's ``compute_new_kernel_size``: scale, floor, at least 1, rounded up to odd."""
    size = max(int(kernel_size * factor), 1)
    return size + 1 if size % 2 == 0 else size


class _BatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` (same parameters and buffers) that also takes the encoder's 4-D
    (B, C, 1, T) channels-last activations: statistics are per channel either way."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2D, 3D or 4D input (got {input.dim()}D input)")


def _norm_layer(mode: str, channels: int, norm_groups: int) -> nn.Module:
    if mode == "batch":
        return _BatchNorm1d(channels, eps=1e-3, momentum=0.1)
    if mode == "group":
        return nn.GroupNorm(channels if norm_groups == -1 else norm_groups, channels)
    if mode == "instance":
        return nn.GroupNorm(channels, channels)
    return nn.GroupNorm(1, channels)  # layer


@dataclass(frozen=True)
class BlockSpec:
    """One validated Jasper block, as read from an entry of the encoder's ``jasper`` list."""

    filters: int
    repeat: int
    kernel: int
    stride: int
    dilation: int
    dropout: float
    residual: bool
    residual_dense: bool
    groups: int
    separable: bool
    residual_mode: str
    se: bool
    se_reduction_ratio: int
    se_context_size: int
    se_interpolation_mode: str
    stride_last: bool
    future_context: int

    @classmethod
    def parse(cls, index: int, raw: object, default_residual_mode: str) -> BlockSpec:
        """Validate block ``index`` of ``jasper``; raise ``ValueError`` naming what must hold
        (a :class:`~neuralgraph.ParameterError` naming ``jasper.<index>.<key>`` for one bad
        value, so that ``check`` points at that key)."""
        where, key = f"jasper[{index}]", f"jasper.{index}"
        if not isinstance(raw, Mapping):
            raise ParameterError(key, "a mapping of block keys", raw, show_type=True)
        _check_block_keys(where, raw)
        cfg = {**OPTIONAL_BLOCK_KEYS, **raw}
        if cfg["residual_mode"] is None:
            cfg["residual_mode"] = default_residual_mode
        check(f"{key}.heads", cfg["heads"],
              satisfies(lambda heads: heads == -1,
                        "-1: multi-head convolutions are not supported"))
        kernel = _new_kernel_size(
            _first(key, "kernel", cfg["kernel"]), float(cfg["kernel_size_factor"])
        )
        spec = cls(
            filters=check(f"{key}.filters", cfg["filters"], positive_int),
            repeat=check(f"{key}.repeat", cfg["repeat"], positive_int),
            kernel=kernel,
            stride=_first(key, "stride", cfg["stride"]),
            dilation=_first(key, "dilation", cfg["dilation"]),
            dropout=float(check(f"{key}.dropout", cfg["dropout"],
                                between(0, 1, high_open=True))),
            residual=bool(cfg["residual"]),
            residual_dense=bool(cfg["residual_dense"]),
            groups=check(f"{key}.groups", cfg["groups"], positive_int),
            separable=bool(cfg["separable"]),
            residual_mode=check(f"{key}.residual_mode", cfg["residual_mode"],
                                in_(RESIDUAL_MODES)),
            se=bool(cfg["se"]),
            se_reduction_ratio=check(f"{key}.se_reduction_ratio", cfg["se_reduction_ratio"],
                                     positive_int),
            se_context_size=int(cfg["se_context_size"]),
            se_interpolation_mode=str(cfg["se_interpolation_mode"]),
            stride_last=bool(cfg["stride_last"]),
            future_context=int(cfg["future_context"]),
        )
        spec._check(where)
        return spec

    def _check(self, where: str) -> None:
        """What relates two keys of the block (each key's own value is checked by ``parse``)."""
        if self.stride > 1 and self.dilation > 1:
            raise ValueError(f"{where}: only one of stride and dilation may be greater than 1")
        if self.filters % self.groups:
            raise ValueError(f"{where}.filters ({self.filters}) must be divisible by groups")
        if self.se and self.filters // self.se_reduction_ratio < 1:
            raise ValueError(f"{where}.se_reduction_ratio must not exceed filters")
        main = self.stride if self.stride_last else self.stride**self.repeat
        skip = self.stride if self.residual_mode == "stride_add" else 1
        if self.residual and main != skip:
            raise ValueError(
                f"{where}: the residual branch strides by {skip} but the block by {main}; "
                "use residual_mode: stride_add with stride_last: true (or repeat: 1), "
                "or residual: false"
            )

    def padding(self) -> int | tuple[int, int]:
        """NeMo's "same" padding, or (left, right) when ``future_context`` is set."""
        symmetric = self.dilation * (self.kernel - 1) // 2
        if self.future_context < 0 or self.kernel <= self.future_context:
            return symmetric
        if self.dilation > 1:
            left = self.dilation * self.kernel - 1 - self.dilation * self.future_context
            return (left, self.dilation * self.future_context)
        return (self.kernel - 1 - self.future_context, self.future_context)


def _check_block_keys(where: str, raw: Mapping[str, Any]) -> None:
    missing = [k for k in REQUIRED_BLOCK_KEYS if k not in raw]
    if missing:
        raise ValueError(f"{where} must set {', '.join(missing)}")
    known = (*REQUIRED_BLOCK_KEYS, *OPTIONAL_BLOCK_KEYS)
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{where} has an unknown key {key!r}{hint}; known keys: {', '.join(known)}"
            )


def _first(block: str, key: str, value: Any) -> int:
    """A positive int given directly or as the first item of a list (NeMo writes ``[33]``);
    ``block`` is the block's parameter path (``jasper.3``)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            raise ParameterError(f"{block}.{key}", "a positive int or a non-empty list", value)
        return check(f"{block}.{key}.0", value[0], positive_int)
    return check(f"{block}.{key}", value, positive_int)


class JasperBlock(nn.Module):
    """``repeat`` x (conv -> norm -> act -> dropout), residual added before the last activation.

    ``mconv`` holds the main path in NeMo's order (convs, norm, activation, dropout, ... , SE),
    ``res`` the residual branches (one per dense pane), ``mout`` the last activation + dropout.
    Input and output are lists of (B, C, T) tensors: the last item is the block's input; with
    dense residuals the list keeps every earlier block's output.
    """

    def __init__(
        self,
        spec: BlockSpec,
        in_channels: int,
        activation: nn.Module,
        normalization: str,
        norm_groups: int,
        residual_panes: Sequence[int],
    ) -> None:
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = []
        channels = in_channels
        for index in range(spec.repeat):
            last = index == spec.repeat - 1
            stride = spec.stride if (last or not spec.stride_last) else 1
            layers += self._conv_norm(spec, channels, stride, normalization, norm_groups)
            if not last:
                layers += [activation, nn.Dropout(spec.dropout)]
            channels = spec.filters
        if spec.se:
            layers.append(
                SqueezeExcite(
                    spec.filters,
                    spec.se_reduction_ratio,
                    spec.se_context_size,
                    spec.se_interpolation_mode,
                    activation,
                )
            )
        self.mconv = nn.ModuleList(layers)
        self.dense_residual = spec.residual and bool(residual_panes)
        self.res: nn.ModuleList | None = None
        if spec.residual:
            panes = list(residual_panes) or [in_channels]
            skip_stride = spec.stride if spec.residual_mode == "stride_add" else 1
            self.res = nn.ModuleList(
                nn.ModuleList(
                    [
                        MaskedConv1d(pane, spec.filters, 1, stride=skip_stride),
                        _norm_layer(normalization, spec.filters, norm_groups),
                    ]
                )
                for pane in panes
            )
        self.mout = nn.Sequential(activation, nn.Dropout(spec.dropout))

    @staticmethod
    def _conv_norm(
        spec: BlockSpec, in_ch: int, stride: int, normalization: str, norm_groups: int
    ) -> list[nn.Module]:
        pad, k, d = spec.padding(), spec.kernel, spec.dilation
        if spec.separable:
            layers: list[nn.Module] = [
                MaskedConv1d(in_ch, in_ch, k, stride, pad, d, groups=in_ch),
                MaskedConv1d(in_ch, spec.filters, 1, groups=spec.groups),
            ]
        else:
            layers = [MaskedConv1d(in_ch, spec.filters, k, stride, pad, d, groups=spec.groups)]
        layers.append(_norm_layer(normalization, spec.filters, norm_groups))
        if spec.groups > 1:
            layers.append(GroupShuffle(spec.groups, spec.filters))
        return layers

    def assign_levels(self, level: int, rules: list[_LengthRule]) -> int:
        """Give every conv its input/output length level; append new rules; return the last."""
        level_in = level
        for layer in self.mconv:
            if isinstance(layer, MaskedConv1d):
                layer.level_in = level
                if layer.changes_length:
                    rules.append(layer.length_rule())
                    level = len(rules)
                layer.level_out = level
            elif isinstance(layer, SqueezeExcite):
                layer.level = level
        for branch in self.res or ():
            branch[0].level_in = branch[0].level_out = level_in
        return level

    def forward(self, xs: list[Tensor], padding: _Padding) -> list[Tensor]:
        """List of (B, C_in, T) -> list whose last item is (B, filters, T')."""
        out = xs[-1]
        for layer in self.mconv:
            if isinstance(layer, (MaskedConv1d, SqueezeExcite)):
                out = layer(out, padding)
            else:
                out = layer(out)
        if self.res is not None:
            for x, (conv, norm) in zip(xs, self.res):
                out = out + norm(conv(x, padding))
        out = self.mout(out)
        if self.dense_residual:
            return [*xs, out]
        return [out]

"""Jasper / QuartzNet convolutional encoder and CTC / classification decoders (NeMo 1.x semantics).

These are the graph modules; the Jasper block they are built from (masked convolutions, norms,
squeeze-excite, the block-key checks, NeMo's weight initialization) is in
:mod:`neuralgraph_asr.jasper`.

The encoder is a stack of Jasper blocks described by a list of dicts, exactly as in a NeMo config
(``encoder.jasper``). Each block repeats ``conv -> norm -> activation -> dropout`` ``repeat`` times;
the residual branch (a 1x1 conv + norm) is added before the last activation. Convolutions are
*masked*: frames past each utterance's length are zeroed before every convolution, so the valid
frames of an utterance do not depend on how much padding its batch has.

Module and parameter names mirror NeMo's (``encoder.0.mconv.0.conv.weight``...), so a NeMo
QuartzNet state dict maps key for key and the parameter counts agree exactly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import neuralgraph as ng
from neuralgraph import AxisType, NeuralType
from neuralgraph.validators import check, in_, instance_of, non_empty, positive_int, sequence
from neuralgraph_asr.jasper import (
    ACTIVATIONS,
    NORMALIZATIONS,
    RESIDUAL_MODES,
    BlockSpec,
    JasperBlock,
    _check_init_mode,
    _exporting,
    _LengthRule,
    _Padding,
    init_weights,
)

__all__ = [
    "ConvASRDecoder",
    "ConvASRDecoderClassification",
    "ConvASREncoder",
]


class ConvASREncoder(ng.NeuralModule):
    """Jasper / QuartzNet / MatchboxNet encoder: a stack of masked 1-D convolution blocks.

    Parameters (as NeMo's ``ConvASREncoder``):

    - ``jasper``: list of blocks, each a mapping with ``filters``, ``repeat``, ``kernel``,
      ``stride``, ``dilation`` (ints or lists whose first item is used), ``dropout``, ``residual``;
      optionally ``separable`` (depthwise conv + 1x1 pointwise), ``groups``, ``residual_dense``
      (Jasper DR: residuals from every earlier dense block), ``residual_mode`` (``add``,
      ``stride_add``), ``stride_last``, ``kernel_size_factor``, ``se``, ``se_reduction_ratio``
      (8), ``se_context_size`` (-1: global), ``se_interpolation_mode``, ``future_context``
      (-1: symmetric padding), ``heads`` (-1 only).
    - ``activation``: ``relu``, ``hardtanh`` (torch's [-1, 1], as NeMo), ``selu``, ``swish``,
      ``silu``, ``gelu`` or ``identity``.
    - ``feat_in``: input features per frame (the preprocessor's ``features``).
    - ``normalization_mode``: ``batch`` (eps 1e-3), ``group``, ``instance`` or ``layer``.
    - ``residual_mode``: default of blocks that do not set it.
    - ``norm_groups``: groups of ``group`` normalization (-1: one per channel).
    - ``conv_mask``: zero frames past the lengths before every convolution.
    - ``frame_splicing``: the preprocessor's frame splicing (input channels = feat_in x this).
    - ``init_mode``: ``xavier_uniform``, ``xavier_normal``, ``kaiming_uniform``,
      ``kaiming_normal``, ``tds_uniform``, ``tds_normal`` or null.

    Ports: ``audio_signal`` (B, D=feat_in*frame_splicing, T) and ``length`` (B,) in;
    ``outputs`` (B, D=last block's filters, T') and ``encoded_lengths`` (B,) out, where T' is T
    divided by the product of the strides (NeMo's length formula).
    """

    def __init__(
        self,
        jasper: list[dict[str, Any]],
        activation: str,
        feat_in: int,
        normalization_mode: str = "batch",
        residual_mode: str = "add",
        norm_groups: int = -1,
        conv_mask: bool = True,
        frame_splicing: int = 1,
        init_mode: str | None = "xavier_uniform",
    ) -> None:
        super().__init__()
        self._check_args(jasper, activation, feat_in, normalization_mode, frame_splicing)
        check("residual_mode", residual_mode, in_(RESIDUAL_MODES))
        _check_init_mode(init_mode)
        specs = [BlockSpec.parse(i, raw, residual_mode) for i, raw in enumerate(jasper)]
        act = ACTIVATIONS[activation]()
        self._feat_in = feat_in * frame_splicing
        self.conv_mask = bool(conv_mask)
        blocks, panes, channels = [], [], self._feat_in
        for spec in specs:
            dense: list[int] = []
            if spec.residual_dense:
                panes.append(channels)
                dense = list(panes)
            blocks.append(JasperBlock(spec, channels, act, normalization_mode, norm_groups, dense))
            channels = spec.filters
        self._feat_out = channels
        self.encoder = nn.Sequential(*blocks)
        self._rules: list[_LengthRule] = []
        level = 0
        for block in blocks:
            level = block.assign_levels(level, self._rules)
        self._last_level = level
        self.subsampling_factor = math.prod(spec.stride for spec in specs)
        # Activation layout: None picks channels-last (B, C, 1, T) on CPU, where oneDNN's
        # depthwise and 1x1 convolutions run 20-40% faster in it, and (B, C, T) elsewhere and
        # while exporting; True / False force one. Weights and results are the same.
        self.channels_last: bool | None = None
        self.apply(lambda m: init_weights(m, init_mode))

    @staticmethod
    def _check_args(
        jasper: object, activation: str, feat_in: int, normalization: str, frame_splicing: int
    ) -> None:
        check("jasper", jasper, sequence, non_empty)
        check("activation", activation, in_(sorted(ACTIVATIONS)))
        check("feat_in", feat_in, positive_int)
        check("frame_splicing", frame_splicing, positive_int)
        check("normalization_mode", normalization, in_(NORMALIZATIONS))

    @property
    def input_types(self) -> dict[str, NeuralType]:
        return {
            "audio_signal": NeuralType(
                (AxisType("B"), AxisType("D", self._feat_in), AxisType("T")), ng.SpectrogramType()
            ),
            "length": NeuralType(("B",), ng.LengthsType()),
        }

    @property
    def output_types(self) -> dict[str, NeuralType]:
        return {
            "outputs": NeuralType(
                (AxisType("B"), AxisType("D", self._feat_out), AxisType("T")),
                ng.AcousticEncodedRepresentation(),
            ),
            "encoded_lengths": NeuralType(("B",), ng.LengthsType()),
        }

    def _use_channels_last(self, x: Tensor) -> bool:
        if self.channels_last is not None:
            return self.channels_last
        return x.device.type == "cpu" and not _exporting()

    def forward(self, audio_signal: Tensor, length: Tensor) -> tuple[Tensor, Tensor]:
        """Features (B, D, T) and lengths (B,) -> encodings (B, D_out, T') and lengths (B,).

        On CPU the blocks run on (B, C, 1, T) channels-last activations (see
        ``channels_last``); the result is the same (B, D_out, T') tensor.
        """
        lengths = length.to(device=audio_signal.device, dtype=torch.long)
        four_d = self._use_channels_last(audio_signal)
        x = audio_signal.unsqueeze(2).contiguous(memory_format=torch.channels_last) \
            if four_d else audio_signal
        padding = _Padding(lengths, self._rules, self.conv_mask, dims=4 if four_d else 3)
        xs = [x]
        for block in self.encoder:
            xs = block(xs, padding)
        out = xs[-1].squeeze(2).contiguous() if four_d else xs[-1]
        return out, padding.lengths(self._last_level)


class ConvASRDecoder(ng.NeuralModule):
    """CTC head: a 1x1 convolution to ``num_classes`` + 1 (blank last), then log-softmax.

    Parameters:

    - ``feat_in``: channels of the encoder output (its last block's ``filters``).
    - ``num_classes``: labels without the blank; <= 0 takes ``len(vocabulary)``.
    - ``init_mode``: weight initialization (see ``ConvASREncoder``).
    - ``vocabulary``: the labels; when given with ``num_classes`` the two must agree.

    Ports: ``encoder_output`` (B, D=feat_in, T) in; ``logprobs`` (B, T, D=num_classes+1) out.
    """

    def __init__(
        self,
        feat_in: int,
        num_classes: int,
        init_mode: str | None = "xavier_uniform",
        vocabulary: list[str] | None = None,
    ) -> None:
        super().__init__()
        check("feat_in", feat_in, positive_int)
        _check_init_mode(init_mode)
        check("num_classes", num_classes, instance_of(int))
        if num_classes <= 0:
            if not vocabulary:
                raise ValueError("ConvASRDecoder needs num_classes > 0 or a non-empty vocabulary")
            num_classes = len(vocabulary)
        if vocabulary is not None and len(vocabulary) != num_classes:
            raise ValueError(
                f"num_classes ({num_classes}) must equal len(vocabulary) ({len(vocabulary)})"
            )
        self.vocabulary = list(vocabulary) if vocabulary is not None else None
        self._feat_in = feat_in
        self.num_classes_with_blank = num_classes + 1
        self.decoder_layers = nn.Sequential(
            nn.Conv1d(feat_in, self.num_classes_with_blank, kernel_size=1, bias=True)
        )
        self.apply(lambda m: init_weights(m, init_mode))

    @property
    def input_types(self) -> dict[str, NeuralType]:
        return {
            "encoder_output": NeuralType(
                (AxisType("B"), AxisType("D", self._feat_in), AxisType("T")),
                ng.AcousticEncodedRepresentation(),
            )
        }

    @property
    def output_types(self) -> dict[str, NeuralType]:
        return {
            "logprobs": NeuralType(
                (AxisType("B"), AxisType("T"), AxisType("D", self.num_classes_with_blank)),
                ng.LogprobsType(),
            )
        }

    def forward(self, encoder_output: Tensor) -> Tensor:
        """(B, feat_in, T) -> log-probabilities (B, T, num_classes + 1)."""
        logits = self.decoder_layers(encoder_output).transpose(1, 2)
        return F.log_softmax(logits, dim=-1)


class ConvASRDecoderClassification(ng.NeuralModule):
    """Utterance classifier (MatchboxNet): pool over time, then a linear layer.

    Parameters:

    - ``feat_in``: channels of the encoder output.
    - ``num_classes``: number of classes.
    - ``init_mode``: weight initialization (see ``ConvASREncoder``).
    - ``return_logits``: logits (True) or softmax probabilities.
    - ``pooling_type``: ``avg`` or ``max`` over time. NeMo pools over all T frames; connect the
      optional ``length`` port to pool over each utterance's valid frames only.

    Ports: ``encoder_output`` (B, D=feat_in, T), optional ``length`` (B,) in;
    ``logits`` (B, D=num_classes) out.
    """

    def __init__(
        self,
        feat_in: int,
        num_classes: int,
        init_mode: str | None = "xavier_uniform",
        return_logits: bool = True,
        pooling_type: str = "avg",
    ) -> None:
        super().__init__()
        check("feat_in", feat_in, positive_int)
        check("num_classes", num_classes, positive_int)
        _check_init_mode(init_mode)
        check("pooling_type", pooling_type, in_(("avg", "max")))
        self._feat_in = feat_in
        self._num_classes = num_classes
        self._return_logits = bool(return_logits)
        self.pooling_type = pooling_type
        self.decoder_layers = nn.Sequential(nn.Linear(feat_in, num_classes, bias=True))
        self.apply(lambda m: init_weights(m, init_mode))

    @property
    def num_classes(self) -> int:
        """Number of output classes."""
        return self._num_classes

    @property
    def input_types(self) -> dict[str, NeuralType]:
        return {
            "encoder_output": NeuralType(
                (AxisType("B"), AxisType("D", self._feat_in), AxisType("T")),
                ng.AcousticEncodedRepresentation(),
            ),
            "length": NeuralType(("B",), ng.LengthsType(), optional=True),
        }

    @property
    def output_types(self) -> dict[str, NeuralType]:
        element = ng.LogitsType() if self._return_logits else ng.ProbsType()
        return {"logits": NeuralType((AxisType("B"), AxisType("D", self._num_classes)), element)}

    def _pool(self, x: Tensor, length: Tensor | None) -> Tensor:
        """(B, C, T) -> (B, C), over all frames or over the first ``length`` frames."""
        if length is None:
            return x.mean(-1) if self.pooling_type == "avg" else x.amax(-1)
        steps = torch.arange(x.shape[-1], device=x.device)
        valid = (steps[None, :] < length.to(x.device)[:, None]).unsqueeze(1)
        if self.pooling_type == "max":
            return x.masked_fill(~valid, float("-inf")).amax(-1)
        count = valid.sum(-1).clamp(min=1).to(x.dtype)
        return x.masked_fill(~valid, 0.0).sum(-1) / count

    def forward(self, encoder_output: Tensor, length: Tensor | None = None) -> Tensor:
        """(B, feat_in, T) -> logits (B, num_classes) (probabilities if not return_logits)."""
        logits = self.decoder_layers(self._pool(encoder_output, length))
        return logits if self._return_logits else torch.softmax(logits, dim=-1)

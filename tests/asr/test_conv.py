"""Tests of the Jasper / QuartzNet encoder and the CTC and classification decoders."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from neuralgraph import (
    AcousticEncodedRepresentation,
    LogitsType,
    LogprobsType,
    ParameterError,
    SpectrogramType,
)
from neuralgraph_asr.conv import ConvASRDecoder, ConvASRDecoderClassification, ConvASREncoder


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny convolutions run faster on one thread, above all on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def block(
    filters: int,
    kernel: int,
    repeat: int = 5,
    residual: bool = True,
    stride: int = 1,
    dilation: int = 1,
    separable: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """One block of a NeMo ``jasper`` list (kernel, stride and dilation written as lists)."""
    return {
        "filters": filters,
        "repeat": repeat,
        "kernel": [kernel],
        "stride": [stride],
        "dilation": [dilation],
        "dropout": 0.0,
        "residual": residual,
        "separable": separable,
        **extra,
    }


def quartznet(times: int) -> list[dict[str, Any]]:
    """QuartzNet 15x5 (``times=3``) or 5x5 (``times=1``): C1, 5 groups of B blocks, C2, C3."""
    blocks = [block(256, 33, repeat=1, residual=False, stride=2)]
    for filters, kernel in [(256, 33), (256, 39), (512, 51), (512, 63), (512, 75)]:
        blocks += [block(filters, kernel) for _ in range(times)]
    blocks += [
        block(512, 87, repeat=1, residual=False, dilation=2),
        block(1024, 1, repeat=1, residual=False, separable=False),
    ]
    return blocks


def small_encoder(**blocks_extra: Any) -> list[dict[str, Any]]:
    """A small config touching strides, dilation, separable and plain convs, SE and residuals."""
    return [
        block(16, 11, repeat=1, residual=False, stride=2),
        block(16, 7, repeat=2, **blocks_extra),
        block(24, 5, repeat=2, se=True, se_reduction_ratio=4),
        block(24, 5, repeat=1, residual=False, dilation=2, separable=False),
        block(32, 1, repeat=1, residual=False, separable=False),
    ]


def count(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


class TestParameterCounts:
    def test_quartznet_15x5(self) -> None:
        """QuartzNet 15x5 with its decoder for 28 labels + blank has NeMo's 18,924,381 weights."""
        encoder = ConvASREncoder(quartznet(3), activation="relu", feat_in=64)
        decoder = ConvASRDecoder(feat_in=1024, num_classes=28)
        assert count(encoder, decoder) == 18_924_381
        assert count(decoder) == 29_725

    def test_quartznet_5x5(self) -> None:
        """Taking each block group once (QuartzNet 5x5) gives NeMo's 6,713,181 weights."""
        with torch.device("meta"):
            encoder = ConvASREncoder(quartznet(1), activation="relu", feat_in=64)
            decoder = ConvASRDecoder(feat_in=1024, num_classes=28)
        assert count(encoder, decoder) == 6_713_181

    def test_matchboxnet_3x1x64(self) -> None:
        """MatchboxNet 3x1x64 for 30 classes is about 77K weights, as published."""
        jasper = [
            block(128, 11, repeat=1, residual=False),
            block(64, 13, repeat=1),
            block(64, 15, repeat=1),
            block(64, 17, repeat=1),
            block(128, 29, repeat=1, residual=False, dilation=2),
            block(128, 1, repeat=1, residual=False, separable=False),
        ]
        encoder = ConvASREncoder(jasper, activation="relu", feat_in=64)
        decoder = ConvASRDecoderClassification(feat_in=128, num_classes=30)
        assert 70_000 < count(encoder, decoder) < 80_000


class TestConstruction:
    def test_meta_device(self) -> None:
        """The encoder builds on the meta device and reports sized ports there."""
        with torch.device("meta"):
            encoder = ConvASREncoder(quartznet(3), activation="relu", feat_in=64)
        assert next(encoder.parameters()).is_meta
        assert encoder.input_types["audio_signal"].axes[1].size == 64
        assert encoder.output_types["outputs"].axes[1].size == 1024
        assert encoder.output_types["outputs"].elements_type == AcousticEncodedRepresentation()
        assert encoder.input_types["audio_signal"].elements_type == SpectrogramType()

    def test_frame_splicing_scales_input(self) -> None:
        """frame_splicing multiplies the input channels, as NeMo."""
        encoder = ConvASREncoder(small_encoder(), activation="relu", feat_in=8, frame_splicing=3)
        assert encoder.input_types["audio_signal"].axes[1].size == 24
        out, _ = encoder.eval()(torch.randn(1, 24, 40), torch.tensor([40]))
        assert out.shape[1] == 32

    def test_nemo_state_dict_names(self) -> None:
        """Weights carry NeMo's names (mconv / res / conv), so NeMo checkpoints map by key."""
        keys = set(ConvASREncoder(quartznet(1), "relu", 64).state_dict())
        assert "encoder.0.mconv.0.conv.weight" in keys  # C1 depthwise
        assert "encoder.0.mconv.1.conv.weight" in keys  # C1 pointwise
        assert "encoder.0.mconv.2.running_mean" in keys  # C1 batch norm
        assert "encoder.1.mconv.5.conv.weight" in keys  # B1, second sub-block
        assert "encoder.1.res.0.0.conv.weight" in keys  # B1 residual conv
        assert "encoder.1.res.0.1.weight" in keys  # B1 residual batch norm
        assert set(ConvASRDecoder(1024, 28).state_dict()) == {
            "decoder_layers.0.weight",
            "decoder_layers.0.bias",
        }

    def test_init_like_nemo(self) -> None:
        """Batch norms start as identity and conv weights within the Xavier-uniform bound."""
        encoder = ConvASREncoder(small_encoder(), activation="relu", feat_in=8)
        norm = encoder.encoder[0].mconv[2]
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))
        assert norm.eps == 1e-3
        weight = encoder.encoder[0].mconv[1].conv.weight  # pointwise 8 -> 16
        bound = (6 / (8 + 16)) ** 0.5
        assert weight.abs().max() <= bound

    def test_activations(self) -> None:
        """Every NeMo activation name builds and runs; hardtanh clamps to [-1, 1] as NeMo's."""
        for name in ("relu", "hardtanh", "selu", "swish"):
            encoder = ConvASREncoder(small_encoder(), activation=name, feat_in=8).eval()
            out, _ = encoder(torch.randn(1, 8, 20), torch.tensor([20]))
            assert torch.isfinite(out).all()
        encoder = ConvASREncoder(small_encoder(), activation="hardtanh", feat_in=8).eval()
        out, _ = encoder(10 * torch.randn(1, 8, 20), torch.tensor([20]))
        assert out.abs().max() <= 1.0

    def test_group_normalization_and_groups(self) -> None:
        """Grouped pointwise convs with channel shuffle and group normalization run."""
        jasper = [block(16, 5, repeat=2, groups=4), block(16, 3, repeat=1, groups=2)]
        for mode in ("batch", "group", "instance", "layer"):
            encoder = ConvASREncoder(jasper, "relu", 8, normalization_mode=mode, norm_groups=-1)
            out, _ = encoder(torch.randn(2, 8, 12), torch.tensor([12, 7]))
            assert out.shape == (2, 16, 12)


class TestValidation:
    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"filtres": 3}, "did you mean 'filters'"),
            ({"stride": [2], "dilation": [2]}, "only one of stride and dilation"),
            ({"stride": [2]}, "residual branch strides by 1 but the block by 4"),
            ({"heads": 4}, "heads' must be -1"),
            ({"dropout": 1.5}, r"dropout' must be in \[0, 1\) \(got 1.5\)"),
            ({"residual_mode": "max"}, "residual_mode' must be one of"),
            ({"filters": 0}, r"filters' must be a positive int \(got 0\)"),
        ],
    )
    def test_bad_block(self, change: dict[str, Any], message: str) -> None:
        """A bad block key or value raises ValueError naming the block and what must hold."""
        jasper = [block(8, 3, repeat=2), {**block(8, 3, repeat=2), **change}]
        with pytest.raises(ValueError, match=message) as info:
            ConvASREncoder(jasper, activation="relu", feat_in=4)
        assert "jasper[1]" in str(info.value)

    @pytest.mark.parametrize(("change", "parameter"), [
        ({"filters": 0}, "jasper.1.filters"),
        ({"kernel": [0]}, "jasper.1.kernel.0"),
        ({"kernel": []}, "jasper.1.kernel"),
        ({"stride": True}, "jasper.1.stride"),
        ({"dropout": "0.1"}, "jasper.1.dropout"),
        ({"se_reduction_ratio": 0}, "jasper.1.se_reduction_ratio"),
    ])
    def test_bad_value_names_its_key(self, change: dict[str, Any], parameter: str) -> None:
        """A bad value of a block key is a ParameterError naming jasper.<i>.<key>, so that
        `neuralgraph check` points at that key's line."""
        jasper = [block(8, 3, repeat=2), {**block(8, 3, repeat=2), **change}]
        with pytest.raises(ParameterError) as info:
            ConvASREncoder(jasper, activation="relu", feat_in=4)
        assert info.value.parameter == parameter

    @pytest.mark.parametrize(("kwargs", "parameter"), [
        ({"feat_in": 0}, "feat_in"), ({"frame_splicing": 1.0}, "frame_splicing"),
        ({"activation": "tanhh"}, "activation"), ({"residual_mode": "max"}, "residual_mode"),
        ({"normalization_mode": "weight"}, "normalization_mode"),
        ({"init_mode": "zeros"}, "init_mode"), ({"jasper": []}, "jasper"),
    ])
    def test_bad_encoder_arg_names_it(self, kwargs: dict[str, Any], parameter: str) -> None:
        """A bad encoder argument is a ParameterError naming it."""
        args = {"jasper": small_encoder(), "activation": "relu", "feat_in": 8, **kwargs}
        with pytest.raises(ParameterError) as info:
            ConvASREncoder(**args)
        assert info.value.parameter == parameter

    def test_missing_key(self) -> None:
        """A block without a required key says which keys are missing."""
        raw = block(8, 3)
        del raw["dropout"]
        with pytest.raises(ValueError, match=r"jasper\[0\] must set dropout"):
            ConvASREncoder([raw], activation="relu", feat_in=4)

    def test_bad_encoder_args(self) -> None:
        """Unknown activation, normalization or init mode, and an empty list, raise ValueError."""
        with pytest.raises(ValueError, match="activation' must be one of"):
            ConvASREncoder(small_encoder(), activation="tanhh", feat_in=8)
        with pytest.raises(ValueError, match="normalization_mode"):
            ConvASREncoder(small_encoder(), "relu", 8, normalization_mode="weight")
        with pytest.raises(ValueError, match="init_mode"):
            ConvASREncoder(small_encoder(), "relu", 8, init_mode="zeros")
        with pytest.raises(ValueError, match="non-empty list"):
            ConvASREncoder([], "relu", 8)

    def test_stride_add_with_stride_last(self) -> None:
        """A strided residual block is valid with stride_add and stride_last."""
        jasper = [block(8, 5, repeat=3, stride=2, residual_mode="stride_add", stride_last=True)]
        out, lengths = ConvASREncoder(jasper, "relu", 4)(
            torch.randn(2, 4, 21), torch.tensor([21, 9])
        )
        assert out.shape == (2, 8, 11)
        assert lengths.tolist() == [11, 5]


class TestLengthsAndMasking:
    def test_lengths_follow_strides(self) -> None:
        """Encoded lengths follow NeMo's formula (L - 1) // 2 + 1 for a stride-2 "same" conv."""
        encoder = ConvASREncoder(quartznet(1)[:1], "relu", 64)
        lengths = torch.tensor([100, 99, 37, 1])
        out, encoded = encoder(torch.randn(4, 64, 100), lengths)
        assert out.shape == (4, 256, 50)
        assert encoded.tolist() == [50, 50, 19, 1]
        assert encoder.subsampling_factor == 2

    @pytest.mark.parametrize("dense", [False, True])
    def test_padding_does_not_change_valid_frames(self, dense: bool) -> None:
        """In eval mode an utterance encodes the same alone and padded with noise in a batch."""
        torch.manual_seed(0)
        extra = {"residual_dense": True} if dense else {}
        encoder = ConvASREncoder(small_encoder(**extra), activation="relu", feat_in=8).eval()
        for norm in encoder.modules():  # non-trivial running statistics
            if isinstance(norm, torch.nn.BatchNorm1d):
                norm.running_mean.uniform_(-0.5, 0.5)
                norm.running_var.uniform_(0.5, 2.0)
        alone = torch.randn(1, 8, 37)
        batch = torch.randn(3, 8, 64) * 5  # noise everywhere, then the utterance in row 1
        batch[1, :, :37] = alone[0]
        with torch.no_grad():
            out_alone, len_alone = encoder(alone, torch.tensor([37]))
            out_batch, len_batch = encoder(batch, torch.tensor([64, 37, 50]))
        valid = int(len_alone[0])
        assert len_batch[1] == valid == 19
        torch.testing.assert_close(out_batch[1, :, :valid], out_alone[0, :, :valid])

    def test_without_mask_padding_leaks(self) -> None:
        """With conv_mask false the padding does change valid frames (the mask is what helps)."""
        torch.manual_seed(0)
        encoder = ConvASREncoder(small_encoder(), "relu", 8, conv_mask=False).eval()
        alone = torch.randn(1, 8, 37)
        batch = torch.randn(1, 8, 64) * 5
        batch[0, :, :37] = alone[0]
        with torch.no_grad():
            out_alone, _ = encoder(alone, torch.tensor([37]))
            out_batch, _ = encoder(batch, torch.tensor([37]))
        assert not torch.allclose(out_batch[0, :, :19], out_alone[0, :, :19])

    def test_training_step_backward(self) -> None:
        """A training forward and backward reaches every weight of the encoder."""
        encoder = ConvASREncoder(small_encoder(residual_dense=True), "relu", 8).train()
        out, _ = encoder(torch.randn(2, 8, 30), torch.tensor([30, 20]))
        out.square().mean().backward()
        assert all(p.grad is not None for p in encoder.parameters())


class TestFastPaths:
    """Channels-last activations and polyphase dilated convolutions compute NeMo's sums."""

    @pytest.mark.parametrize("dilation", [2, 3])
    @pytest.mark.parametrize("time", [48, 49, 50])
    @pytest.mark.parametrize("same", [True, False])
    @pytest.mark.parametrize("four_d", [False, True])
    def test_polyphase_equals_dilated_conv(self, dilation: int, time: int, same: bool,
                                           four_d: bool) -> None:
        """Values and gradients (input, weight) equal torch's dilated conv1d, odd lengths too."""
        from neuralgraph_asr.jasper import MaskedConv1d, _Padding

        torch.manual_seed(0)
        kernel = 7
        padding = dilation * (kernel - 1) // 2 if same else 0
        conv = MaskedConv1d(6, 6, kernel, padding=padding, dilation=dilation, groups=6)
        assert conv.polyphase
        x = torch.randn(2, 6, time, requires_grad=True)
        reference = torch.nn.functional.conv1d(x, conv.conv.weight, None, 1, padding, dilation, 6)
        grads_ref = torch.autograd.grad(reference.square().sum(), [x, conv.conv.weight])
        inp = x.unsqueeze(2).contiguous(memory_format=torch.channels_last) if four_d else x
        pad = _Padding(torch.tensor([time, time]), [], enabled=False, dims=inp.dim())
        out = conv(inp, pad)
        out = out.squeeze(2) if four_d else out
        grads = torch.autograd.grad(out.square().sum(), [x, conv.conv.weight])
        assert out.shape == reference.shape
        torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)
        for got, want in zip(grads, grads_ref):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)

    def test_polyphase_only_where_it_applies(self) -> None:
        from neuralgraph_asr.jasper import MaskedConv1d

        assert not MaskedConv1d(4, 4, 5, padding=2).polyphase  # no dilation
        assert not MaskedConv1d(4, 4, 5, stride=2, padding=4, dilation=2).polyphase
        assert not MaskedConv1d(4, 4, 5, padding=(3, 5), dilation=2).polyphase
        assert not MaskedConv1d(4, 4, 5, padding=3, dilation=2).polyphase  # 3 % 2 != 0

    @pytest.mark.parametrize("dense", [False, True])
    def test_channels_last_encoder_matches(self, dense: bool) -> None:
        """Both activation layouts give the same outputs, lengths, gradients and running
        statistics (strides, SE, groups, dilation, dense residuals)."""
        torch.manual_seed(0)
        extra = {"residual_dense": True} if dense else {"groups": 2}
        plain = ConvASREncoder(small_encoder(**extra), activation="relu", feat_in=8).train()
        fast = ConvASREncoder(small_encoder(**extra), activation="relu", feat_in=8).train()
        fast.load_state_dict(plain.state_dict())
        plain.channels_last, fast.channels_last = False, True
        x, lengths = torch.randn(3, 8, 45), torch.tensor([45, 30, 17])
        results = []
        for encoder in (plain, fast):
            out, encoded = encoder(x, lengths)
            out.square().sum().backward()
            results.append((out, encoded, [p.grad for p in encoder.parameters()],
                            [b for b in encoder.buffers() if b.dtype.is_floating_point]))
        (o1, l1, g1, b1), (o2, l2, g2, b2) = results
        assert o2.is_contiguous() and torch.equal(l1, l2)
        torch.testing.assert_close(o2, o1, atol=1e-4, rtol=1e-4)
        for got, want in zip(g2 + b2, g1 + b1):
            torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-3)

    def test_layout_choice(self) -> None:
        """Channels-last by default on CPU; never while exporting."""
        encoder = ConvASREncoder(small_encoder(), activation="relu", feat_in=8)
        x = torch.randn(1, 8, 20)
        assert encoder.channels_last is None and encoder._use_channels_last(x)
        encoder.channels_last = False
        assert not encoder._use_channels_last(x)


class TestConvASRDecoder:
    def test_log_probs(self) -> None:
        """The decoder maps (B, D, T) to normalized log-probabilities (B, T, classes + 1)."""
        decoder = ConvASRDecoder(feat_in=32, num_classes=28)
        out = decoder(encoder_output=torch.randn(2, 32, 7))
        assert out.shape == (2, 7, 29)
        torch.testing.assert_close(out.exp().sum(-1), torch.ones(2, 7))

    def test_ports(self) -> None:
        """Ports carry feat_in and num_classes + 1 as sizes."""
        decoder = ConvASRDecoder(feat_in=1024, num_classes=28)
        assert decoder.input_types["encoder_output"].axes[1].size == 1024
        logprobs = decoder.output_types["logprobs"]
        assert [a.kind.letter for a in logprobs.axes] == ["B", "T", "D"]
        assert logprobs.axes[2].size == 29
        assert logprobs.elements_type == LogprobsType()

    def test_vocabulary(self) -> None:
        """num_classes <= 0 takes the vocabulary's size; disagreeing sizes raise ValueError."""
        vocabulary = list("abc")
        assert ConvASRDecoder(8, -1, vocabulary=vocabulary).num_classes_with_blank == 4
        assert ConvASRDecoder(8, 3, vocabulary=vocabulary).num_classes_with_blank == 4
        with pytest.raises(ValueError, match="must equal len"):
            ConvASRDecoder(8, 5, vocabulary=vocabulary)
        with pytest.raises(ValueError, match="num_classes > 0 or a non-empty vocabulary"):
            ConvASRDecoder(8, 0)


class TestConvASRDecoderClassification:
    def test_logits(self) -> None:
        """Average pooling over time then a linear layer gives (B, num_classes) logits."""
        decoder = ConvASRDecoderClassification(feat_in=16, num_classes=5)
        out = decoder(encoder_output=torch.randn(3, 16, 9))
        assert out.shape == (3, 5)
        assert decoder.output_types["logits"].elements_type == LogitsType()
        assert decoder.output_types["logits"].axes[1].size == 5
        assert decoder.input_types["length"].optional

    def test_length_pools_valid_frames(self) -> None:
        """With lengths given, padding does not change the pooled logits (avg and max)."""
        for pooling in ("avg", "max"):
            decoder = ConvASRDecoderClassification(16, 5, pooling_type=pooling)
            x = torch.randn(1, 16, 6)
            padded = torch.cat([x, 100 * torch.randn(1, 16, 4)], dim=-1)
            torch.testing.assert_close(
                decoder(padded, torch.tensor([6])), decoder(x, torch.tensor([6]))
            )

    def test_bad_pooling(self) -> None:
        """An unknown pooling type raises ValueError."""
        with pytest.raises(ValueError, match="pooling_type"):
            ConvASRDecoderClassification(16, 5, pooling_type="median")

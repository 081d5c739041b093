"""Tests of the mel and MFCC preprocessors, SpecAugment and VTLP."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from neuralgraph import (
    AudioSignal,
    MelSpectrogramType,
    MFCCSpectrogramType,
    NeuralTypeComparisonResult,
    ParameterError,
    SpectrogramType,
)
from neuralgraph_audio import (
    AudioToMelSpectrogramPreprocessor,
    AudioToMFCCPreprocessor,
    SpectrogramAugmentation,
    VocalTractLengthPerturbation,
    vtlp_source_bins,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small tensor ops run faster on one thread, above all on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def nemo_reference(pre: AudioToMelSpectrogramPreprocessor, x: torch.Tensor, n: torch.Tensor):
    """NeMo's FilterbankFeatures step by step (per-utterance loop normalization), eval mode."""
    lengths = torch.floor((n.float() + pre.n_fft // 2 * 2 - pre.n_fft) / pre.hop_length) + 1
    lengths = lengths.long()
    x = torch.cat((x[:, :1], x[:, 1:] - 0.97 * x[:, :-1]), dim=1)
    window = torch.hann_window(pre.win_length, periodic=False)
    spec = torch.stft(x, pre.n_fft, pre.hop_length, pre.win_length, window, return_complex=True)
    power = torch.view_as_real(spec).pow(2).sum(-1).sqrt().pow(2.0)
    mel = torch.log(pre.fb @ power + 2**-24)
    out = torch.zeros_like(mel)
    for i in range(mel.shape[0]):
        valid = mel[i, :, : lengths[i]]
        mean, std = valid.mean(dim=1, keepdim=True), valid.std(dim=1, keepdim=True) + 1e-5
        out[i] = (mel[i] - mean) / std
    frames = torch.arange(out.shape[-1])[None, :] >= lengths[:, None]
    out = out.masked_fill(frames.unsqueeze(1), 0.0)
    pad = (-out.shape[-1]) % 16
    return torch.nn.functional.pad(out, (0, pad)), lengths


class TestMelConstruction:
    def test_defaults(self) -> None:
        """Defaults follow NeMo: 320-sample hann window, hop 160, n_fft 512, 64 Slaney mels."""
        pre = AudioToMelSpectrogramPreprocessor()
        assert (pre.win_length, pre.hop_length, pre.n_fft) == (320, 160, 512)
        assert pre.filter_banks.shape == (64, 257)
        torch.testing.assert_close(pre.window, torch.hann_window(320, periodic=False))
        assert pre.fb.min() >= 0 and pre.fb.sum(dim=1).gt(0).all()

    def test_window_in_samples(self) -> None:
        """n_window_size / n_window_stride set the window in samples and n_fft follows."""
        pre = AudioToMelSpectrogramPreprocessor(n_window_size=400, n_window_stride=100)
        assert (pre.win_length, pre.hop_length, pre.n_fft) == (400, 100, 512)
        pre = AudioToMelSpectrogramPreprocessor(sample_rate=8000, window_size=0.025)
        assert (pre.win_length, pre.hop_length, pre.n_fft) == (200, 80, 256)

    def test_meta_device_and_ports(self) -> None:
        """It builds on the meta device; ports carry the sample rate and the feature count."""
        with torch.device("meta"):
            pre = AudioToMelSpectrogramPreprocessor(sample_rate=8000, features=80, frame_splicing=2)
        assert pre.fb.is_meta
        assert pre.input_types["input_signal"].elements_type == AudioSignal(8000)
        out = pre.output_types["processed_signal"]
        assert out.axes[1].size == 160
        assert out.elements_type == MelSpectrogramType()

    def test_constants_not_in_state_dict(self) -> None:
        """The window and filterbank are buffers left out of checkpoints."""
        assert AudioToMelSpectrogramPreprocessor().state_dict() == {}

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"n_fft": 256}, "n_fft"),
            ({"highfreq": 9000}, "highfreq"),
            ({"log_zero_guard_type": "max"}, "log_zero_guard_type"),
            ({"normalize": "per_utterance"}, "normalize"),
            ({"window": "kaiser"}, "window"),
            ({"pad_to": -1}, "pad_to"),
            ({"sample_rate": 0}, "sample_rate"),
            ({"window_size": None}, "window_size"),
        ],
    )
    def test_bad_arguments(self, kwargs: dict, message: str) -> None:
        """Bad parameters raise ValueError naming the parameter."""
        with pytest.raises(ValueError, match=message):
            AudioToMelSpectrogramPreprocessor(**kwargs)


class TestParametersNamed:
    @pytest.mark.parametrize(("cls", "kwargs", "parameter"), [
        (AudioToMelSpectrogramPreprocessor, {"sample_rate": True}, "sample_rate"),
        (AudioToMelSpectrogramPreprocessor, {"n_window_size": 0}, "n_window_size"),
        (AudioToMelSpectrogramPreprocessor, {"window_stride": -0.01}, "window_stride"),
        (AudioToMelSpectrogramPreprocessor, {"n_fft": 256}, "n_fft"),
        (AudioToMelSpectrogramPreprocessor, {"lowfreq": -1}, "lowfreq"),
        (AudioToMelSpectrogramPreprocessor, {"highfreq": 9000}, "highfreq"),
        (AudioToMelSpectrogramPreprocessor, {"features": 64.0}, "features"),
        (AudioToMelSpectrogramPreprocessor, {"preemph": 1.0}, "preemph"),
        (AudioToMelSpectrogramPreprocessor, {"frame_splicing": 0}, "frame_splicing"),
        (AudioToMelSpectrogramPreprocessor, {"log_zero_guard_value": "big"},
         "log_zero_guard_value"),
        (AudioToMFCCPreprocessor, {"n_mels": 20, "n_mfcc": 40}, "n_mfcc"),
        (AudioToMFCCPreprocessor, {"window": "kaiser"}, "window"),
        (SpectrogramAugmentation, {"freq_masks": True}, "freq_masks"),
        (SpectrogramAugmentation, {"time_width": 1.5}, "time_width"),
        (SpectrogramAugmentation, {"mask_value": "max"}, "mask_value"),
        (VocalTractLengthPerturbation, {"prob": 2}, "prob"),
        (VocalTractLengthPerturbation, {"min_warp": 1.2}, "max_warp"),
        (VocalTractLengthPerturbation, {"boundary": 1}, "boundary"),
    ])
    def test_bad_argument_is_named(self, cls: type, kwargs: dict, parameter: str) -> None:
        """A bad argument is a ParameterError naming it, so that check points at its key."""
        with pytest.raises(ParameterError) as info:
            cls(**kwargs)
        assert info.value.parameter == parameter


class TestMelFeatures:
    def test_frame_count_formula(self) -> None:
        """Frames are floor((L + 2*(n_fft//2) - n_fft) / hop) + 1; T pads to a multiple of 16."""
        pre = AudioToMelSpectrogramPreprocessor().eval()
        lengths = torch.tensor([16000, 15999, 1601, 160])
        x = torch.randn(4, 16000)
        out, frames = pre(input_signal=x, length=lengths)
        expected = [math.floor((n + 512 - 512) / 160) + 1 for n in lengths.tolist()]
        assert frames.tolist() == expected == [101, 100, 11, 2]
        assert out.shape == (4, 64, 112)
        assert frames.dtype == torch.long

    def test_padding_frames_hold_pad_value(self) -> None:
        """Frames past each length, and the pad_to padding, equal pad_value."""
        pre = AudioToMelSpectrogramPreprocessor(pad_value=-3.0).eval()
        out, frames = pre(torch.randn(2, 8000), torch.tensor([8000, 3000]))
        assert (out[1, :, frames[1] :] == -3.0).all()
        assert (out[0, :, frames[0] :] == -3.0).all()
        assert (out[1, :, : frames[1]] != -3.0).any()

    def test_matches_nemo_reference(self) -> None:
        """Eval-mode features equal NeMo's FilterbankFeatures computation step by step."""
        torch.manual_seed(0)
        pre = AudioToMelSpectrogramPreprocessor().eval()
        x, lengths = torch.randn(3, 5000), torch.tensor([5000, 4100, 2345])
        x[1, 4100:] = 0
        x[2, 2345:] = 0
        out, frames = pre(x, lengths)
        ref, ref_frames = nemo_reference(pre, x, lengths)
        assert torch.equal(frames, ref_frames)
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)

    def test_per_feature_normalization(self) -> None:
        """Each feature has mean 0 and (unbiased) std about 1 over the valid frames."""
        pre = AudioToMelSpectrogramPreprocessor().eval()
        out, frames = pre(torch.randn(2, 6000), torch.tensor([6000, 3000]))
        for i, n in enumerate(frames.tolist()):
            valid = out[i, :, :n]
            torch.testing.assert_close(valid.mean(-1), torch.zeros(64), atol=1e-4, rtol=0)
            torch.testing.assert_close(valid.std(-1), torch.ones(64), atol=1e-3, rtol=0)

    def test_dither_only_in_training(self) -> None:
        """Eval output is deterministic; training adds dither so two calls differ."""
        pre = AudioToMelSpectrogramPreprocessor()
        x, n = torch.zeros(1, 4000), torch.tensor([4000])
        pre.eval()
        assert torch.equal(pre(x, n)[0], pre(x, n)[0])
        pre.train()
        assert not torch.equal(pre(x, n)[0], pre(x, n)[0])

    def test_fp32_under_autocast(self) -> None:
        """Under bf16 autocast the features are still computed and returned in fp32."""
        pre = AudioToMelSpectrogramPreprocessor().eval()
        x, n = torch.randn(2, 4000), torch.tensor([4000, 2500])
        expected, _ = pre(x, n)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            out, _ = pre(x.bfloat16(), n)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, expected, atol=0.05, rtol=0.05)  # bf16 input rounding

    def test_exact_pad(self) -> None:
        """exact_pad gives L // hop frames."""
        pre = AudioToMelSpectrogramPreprocessor(exact_pad=True, pad_to=0).eval()
        out, frames = pre(torch.randn(2, 3200), torch.tensor([3200, 1600]))
        assert frames.tolist() == [20, 10]
        assert out.shape[-1] == 20

    def test_frame_splicing(self) -> None:
        """Frame splicing stacks the next frames' features: D = features x frame_splicing."""
        pre = AudioToMelSpectrogramPreprocessor(frame_splicing=3, normalize=None).eval()
        out, _ = pre(torch.randn(1, 4000), torch.tensor([4000]))
        assert out.shape[1] == 192
        torch.testing.assert_close(out[0, 64:128, :10], out[0, :64, 1:11])


class TestMFCC:
    def test_shapes_and_lengths(self) -> None:
        """MFCCs are (B, n_mfcc, L // hop + 1) with those frame counts as lengths."""
        pre = AudioToMFCCPreprocessor(n_mfcc=40, n_mels=64)
        out, frames = pre(input_signal=torch.randn(2, 16000), length=torch.tensor([16000, 8000]))
        assert out.shape == (2, 40, 101)
        assert frames.tolist() == [101, 51]
        assert out.dtype == torch.float32

    def test_meta_device_and_ports(self) -> None:
        """It builds on the meta device and declares MFCC features of n_mfcc coefficients."""
        with torch.device("meta"):
            pre = AudioToMFCCPreprocessor(n_mfcc=30)
        out = pre.output_types["processed_signal"]
        assert out.axes[1].size == 30
        assert out.elements_type == MFCCSpectrogramType()

    def test_fp32_under_autocast(self) -> None:
        """Under bf16 autocast the MFCCs are computed in fp32."""
        pre = AudioToMFCCPreprocessor()
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            out, _ = pre(torch.randn(1, 4000), torch.tensor([4000]))
        assert out.dtype == torch.float32

    def test_bad_arguments(self) -> None:
        """n_mfcc larger than n_mels raises ValueError."""
        with pytest.raises(ValueError, match="n_mfcc"):
            AudioToMFCCPreprocessor(n_mels=20, n_mfcc=40)


class TestSpectrogramAugmentation:
    def spec(self) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        spec = torch.randn(4, 64, 120) + 10.0  # nothing is zero before masking
        lengths = torch.tensor([120, 90, 40, 7])
        spec[1, :, 90:] = 0.0
        spec[2, :, 40:] = 0.0
        spec[3, :, 7:] = 0.0
        return spec, lengths

    def test_output_type_equals_input_type(self) -> None:
        """The output port has the input's type, so the node can be skipped outside training."""
        augment = SpectrogramAugmentation()
        same = augment.input_types["input_spec"].compare(augment.output_types["augmented_spec"])
        assert same is NeuralTypeComparisonResult.SAME
        assert augment.output_types["augmented_spec"].elements_type == SpectrogramType()

    def test_no_masks_in_eval(self) -> None:
        """In eval mode the input is returned unchanged."""
        augment = SpectrogramAugmentation(freq_masks=2, time_masks=10, rect_masks=5).eval()
        spec, lengths = self.spec()
        assert augment(input_spec=spec, length=lengths) is spec

    def test_masks_stay_in_valid_region(self) -> None:
        """Training masks some valid cells, keeps the shape and never touches the padding."""
        augment = SpectrogramAugmentation(freq_masks=2, time_masks=5, rect_masks=3).train()
        spec, lengths = self.spec()
        out = augment(input_spec=spec.clone(), length=lengths)
        assert out.shape == spec.shape
        masked = out != spec
        assert masked.any()
        assert (out[masked] == 0.0).all()
        for i, n in enumerate(lengths.tolist()):
            assert not masked[i, :, n:].any()

    def test_mask_widths(self) -> None:
        """Frequency bands span at most freq_width bins and time masks at most time_width."""
        augment = SpectrogramAugmentation(freq_masks=1, freq_width=5).train()
        spec, lengths = self.spec()
        for _ in range(10):
            rows = (augment(spec.clone(), lengths)[0] == 0).all(dim=1)
            assert rows.sum() <= 5
        augment = SpectrogramAugmentation(time_masks=1, time_width=8).train()
        for _ in range(10):
            columns = (augment(spec.clone(), lengths)[0] == 0).all(dim=0)
            assert columns.sum() <= 8

    def test_adaptive_time_width(self) -> None:
        """A float time_width masks at most that fraction of each utterance's length."""
        augment = SpectrogramAugmentation(time_masks=1, time_width=0.1, mask_value=-1.0).train()
        spec, lengths = self.spec()
        for _ in range(10):
            out = augment(spec.clone(), lengths)
            masked = (out == -1.0).all(dim=1).sum(dim=-1)
            assert (masked <= (lengths * 0.1).long().clamp(min=1)).all()

    def test_mean_mask_value(self) -> None:
        """mask_value 'mean' writes each utterance's mean over its valid cells."""
        augment = SpectrogramAugmentation(freq_masks=1, freq_width=20, mask_value="mean").train()
        spec, lengths = self.spec()
        out = augment(spec.clone(), lengths)
        mean = spec[0].mean()
        changed = out[0] != spec[0]
        if changed.any():
            torch.testing.assert_close(out[0][changed], mean.expand(int(changed.sum())))

    @pytest.mark.parametrize(
        "kwargs", [{"time_width": 1.5}, {"freq_masks": -1}, {"mask_value": "median"}]
    )
    def test_bad_arguments(self, kwargs: dict) -> None:
        """Out-of-range parameters raise ValueError."""
        with pytest.raises(ValueError):
            SpectrogramAugmentation(**kwargs)


class TestVocalTractLengthPerturbation:
    @staticmethod
    def tone_features(hz: float, sample_rate: int = 16000) -> torch.Tensor:
        """Log-mel features (1, 64, T) of a 1 s sine at ``hz``, unnormalized."""
        pre = AudioToMelSpectrogramPreprocessor(normalize=None, dither=0.0, pad_to=0).eval()
        t = torch.arange(sample_rate) / sample_rate
        signal = torch.sin(2 * math.pi * hz * t)[None, :]
        spec, _ = pre(input_signal=signal, length=torch.tensor([sample_rate]))
        return spec

    @staticmethod
    def peak_bin(spec: torch.Tensor) -> int:
        return int(spec[0, :, 10:-10].mean(dim=-1).argmax())

    def test_identity_warp(self) -> None:
        """Warp 1 reads every band from itself."""
        source = vtlp_source_bins(torch.tensor([1.0]), 64, 0.0, 8000.0)
        torch.testing.assert_close(source, torch.arange(64.0)[None, :], atol=1e-4, rtol=0)

    def test_band_edge_stays(self) -> None:
        """The warp fades out at the band edge (the top band reads from less than one band
        away, where the middle ones move by several); the map is monotonic."""
        source = vtlp_source_bins(torch.tensor([0.8, 0.9, 1.1, 1.2]), 64, 0.0, 8000.0)
        assert ((source[:, -1] - 63.0).abs() < 1.0).all()
        assert ((source[:, 32] - 32.0).abs() > 1.5).all()
        assert (source.diff(dim=1) >= 0).all()

    def test_moves_a_tone_like_a_vocal_tract(self) -> None:
        """A 1 kHz tone's spectrogram warped by 1.2 peaks where a 1.2 kHz tone's does."""
        vtlp = VocalTractLengthPerturbation()
        warped = vtlp.warp(self.tone_features(1000.0), torch.tensor([1.2]))
        assert self.peak_bin(warped) == self.peak_bin(self.tone_features(1200.0))
        lowered = vtlp.warp(self.tone_features(1000.0), torch.tensor([0.8]))
        assert self.peak_bin(lowered) == self.peak_bin(self.tone_features(800.0))

    def test_training_only(self) -> None:
        """Eval mode (and prob 0) return the input; training warps each utterance differently."""
        spec = torch.randn(8, 64, 50)
        lengths = torch.full((8,), 50)
        vtlp = VocalTractLengthPerturbation(min_warp=0.8, max_warp=1.2)
        assert vtlp.eval()(input_spec=spec, length=lengths) is spec
        off = VocalTractLengthPerturbation(prob=0.0).train()
        assert off(input_spec=spec, length=lengths) is spec
        torch.manual_seed(0)
        out = vtlp.train()(input_spec=spec, length=lengths)
        assert out.shape == spec.shape
        changed = (out - spec).abs().amax(dim=(1, 2))
        assert (changed > 1e-3).all()
        same = VocalTractLengthPerturbation().input_types["input_spec"].compare(
            vtlp.output_types["augmented_spec"])
        assert same is NeuralTypeComparisonResult.SAME

    @pytest.mark.parametrize(
        "params",
        [{"prob": 1.5}, {"min_warp": 1.2, "max_warp": 1.1}, {"min_warp": 0.0},
         {"boundary": 1.0}, {"highfreq": 9000.0}, {"lowfreq": 8000.0}],
    )
    def test_bad_parameters(self, params: dict) -> None:
        with pytest.raises(ValueError):
            VocalTractLengthPerturbation(**params)

"""Augmentation of training audio: waveform perturbations and spectrogram masks and warps.

* :class:`AudioAugmentor` perturbs waveforms in a data loader (speed, time shift, gain, noise
  or background recordings, band limit, formant shift, silence padding: NeMo's augmentor and
  more); :func:`formant_shift` moves a waveform's formants at the same pitch and tempo.
* :class:`SpectrogramAugmentation` (SpecAugment and SpecCutout) and
  :class:`VocalTractLengthPerturbation` (VTLP) are graph nodes that run in training only
  (``train_only: true``): ``input_spec`` (B, D, T) and ``length`` (B,) in, ``augmented_spec``
  (B, D, T) out, of the input's type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

import neuralgraph as ng
from neuralgraph import NeuralType
from neuralgraph.validators import (
    ParameterError,
    and_,
    between,
    check,
    each,
    ge,
    gt,
    instance_of,
    non_negative_int,
    number,
    optional,
    satisfies,
    sequence,
)
from neuralgraph_audio.features import (
    _check_band,
    _check_sample_rate,
    hz_to_mel,
    mel_to_hz,
    valid_frames,
)
from neuralgraph_audio.noise import NoiseFiles, mix_at_snr

__all__ = [
    "AudioAugmentor",
    "SpectrogramAugmentation",
    "VocalTractLengthPerturbation",
    "formant_shift",
    "vtlp_source_bins",
]


# ---------------------------------------------------------------------------------------------
# waveforms (in the data loader)
# ---------------------------------------------------------------------------------------------


def formant_shift(
    samples: torch.Tensor, ratio: float, n_fft: int = 512, lifter: int = 30
) -> torch.Tensor:
    """Move the formants of a ``(T,)`` waveform by ``ratio`` along frequency; ``(T,)`` out.

    A new vocal tract at the same pitch and tempo: per STFT frame (``n_fft`` samples, hop
    ``n_fft // 4``, Hann), the spectral envelope is the log magnitude smoothed by keeping its
    first ``lifter`` cepstral coefficients; the envelope is read at ``f / ratio`` instead of
    ``f`` while the fine structure (the harmonics: the pitch) and the phase stay. ``ratio > 1``
    raises the formants (a shorter vocal tract), ``ratio < 1`` lowers them. With ``lifter`` 30
    at 16 kHz the envelope ignores structure finer than ~530 Hz, so pitches up to ~500 Hz keep
    their harmonics. Audio shorter than ``n_fft`` is returned unchanged.
    """
    length = samples.shape[-1]
    if ratio == 1.0 or length <= n_fft:
        return samples
    hop = n_fft // 4
    window = torch.hann_window(n_fft, dtype=samples.dtype, device=samples.device)
    spec = torch.stft(samples, n_fft, hop, window=window, return_complex=True)  # (F, N)
    cepstrum = torch.fft.irfft(spec.abs().clamp_min(1e-7).log(), n=n_fft, dim=0)  # (n_fft, N)
    cepstrum[lifter + 1 : n_fft - lifter] = 0.0
    envelope = torch.fft.rfft(cepstrum, dim=0).real  # (F, N) smoothed log magnitude
    bins = envelope.shape[0]
    source = (torch.arange(bins, dtype=samples.dtype, device=samples.device) / ratio).clamp(
        max=bins - 1
    )
    low = source.floor().long()
    high = (low + 1).clamp(max=bins - 1)
    warped = torch.lerp(envelope[low], envelope[high], (source - low)[:, None])
    return torch.istft(spec * torch.exp(warped - envelope), n_fft, hop, window=window,
                       length=length)


_AUGMENT_KEYS: dict[str, dict[str, float | None]] = {
    "speed": {"prob": 1.0, "rates": None, "min_speed_rate": 0.9, "max_speed_rate": 1.1,
              "num_rates": 5},
    "shift": {"prob": 1.0, "min_shift_ms": -5.0, "max_shift_ms": 5.0},
    "gain": {"prob": 1.0, "min_gain_dbfs": -10.0, "max_gain_dbfs": 10.0},
    "noise": {"prob": 1.0, "min_snr_db": 10.0, "max_snr_db": 40.0, "manifest_path": None},
    "white_noise": {"prob": 1.0, "min_level": -90.0, "max_level": -46.0},
    "band_limit": {"prob": 1.0, "rates": None},
    "formant": {"prob": 1.0, "min_ratio": 0.85, "max_ratio": 1.15},
    "silence": {"prob": 1.0, "min_start_silence_secs": 0.0, "max_start_silence_secs": 0.0,
                "min_end_silence_secs": 0.0, "max_end_silence_secs": 0.0, "value": 0.0},
}
_BAND_LIMIT_RATES = (8000, 12000)  # simple ratios to 16 kHz: cheap to resample
_BAND_RATES = satisfies(
    lambda rates: bool(rates) and all(non_negative_int.accepts(r) and r >= 1000 for r in rates),
    "a non-empty list of integer sample rates >= 1000 Hz", types=(list, tuple))


class AudioAugmentor:
    """Random perturbations of training audio, applied in the order given (NeMo's augmentor).

    ``config`` maps a perturbation to its settings; each is applied with probability ``prob``:

    * ``speed``: resample by a rate drawn from ``rates`` (a list), or from ``num_rates`` rates
      evenly spaced in ``[min_speed_rate, max_speed_rate]`` (``num_rates <= 0``: any rate in the
      range). Rates are rounded to 0.01 so that resampling stays cheap. Changes the length.
    * ``shift``: move the audio by a time drawn in ``[min_shift_ms, max_shift_ms]`` (NeMo's):
      earlier for a positive shift, later for a negative one, the samples moved in from
      outside being zeros. Keeps the length; a shift longer than the audio is skipped.
    * ``gain``: multiply by a gain in ``[min_gain_dbfs, max_gain_dbfs]`` dB.
    * ``noise``: add noise at a signal-to-noise ratio in ``[min_snr_db, max_snr_db]`` dB:
      white noise, or with ``manifest_path`` (NeMo's key) background recordings, a segment of
      a file drawn from a NeMo manifest or from every audio file under a folder
      (:class:`~neuralgraph_audio.noise.NoiseFiles`; files are listed and read only in the
      data loader, and :meth:`problems` checks them before training).
    * ``white_noise``: add white noise at a level in ``[min_level, max_level]`` dBFS (NeMo's).
    * ``band_limit``: resample down to a rate drawn from ``rates`` (default 8000 and 12000 Hz)
      and back, removing everything above half that rate, as telephone audio or a synthesizer
      voice recorded at 8 kHz has it. Keeps the length.
    * ``formant``: move the formants by a ratio drawn from ``[min_ratio, max_ratio]`` while
      pitch and tempo stay (:func:`formant_shift`): another vocal tract, where ``speed`` moves
      formants and pitch together. Keeps the length.
    * ``silence``: put ``value`` (silence) before and after the audio, for a time drawn from
      ``[min_start_silence_secs, max_start_silence_secs]`` and
      ``[min_end_silence_secs, max_end_silence_secs]`` (NeMo's); a model trained on tightly
      trimmed audio then still hears recordings with pauses around the speech. Changes the
      length; put it before ``noise`` so that the noise covers the silence too.

    Random numbers come from torch's generator, which DataLoader seeds per worker.
    """

    def __init__(self, config: Mapping[str, Mapping[str, Any]], sample_rate: int) -> None:
        if not isinstance(config, Mapping):
            raise ParameterError("augmentor", "a mapping of perturbations", config,
                                 show_type=True)
        self.sample_rate = sample_rate
        self.steps: list[tuple[str, dict[str, Any]]] = [
            (kind, _augment_settings(kind, settings)) for kind, settings in config.items()
        ]
        for kind, s in self.steps:
            if kind == "band_limit" and max(s["rates"]) >= sample_rate:
                raise ParameterError("augmentor.band_limit.rates",
                                     f"below the sample rate {sample_rate}", s["rates"])
            if kind == "noise" and s["manifest_path"] is not None:
                s["files"] = NoiseFiles(s["manifest_path"], sample_rate)

    def problems(self) -> list[str]:
        """What stops a perturbation from working, found before training: noise manifests or
        folders that are missing, empty or name unreadable files. One line each."""
        found: list[str] = []
        for kind, s in self.steps:
            if "files" in s:
                found.extend(f"augmentor.{kind}.manifest_path: {problem}"
                             for problem in s["files"].problems())
        return found

    def __call__(self, samples: torch.Tensor) -> torch.Tensor:
        """Perturb a ``(T,)`` waveform; the result is ``(T',)`` (``T' != T`` after ``speed``)."""
        for kind, s in self.steps:
            if float(torch.rand(())) >= s["prob"]:
                continue
            samples = getattr(self, f"_{kind}")(samples, s)
        return samples

    def _speed(self, samples: torch.Tensor, s: dict[str, Any]) -> torch.Tensor:
        rates = s["rates"]
        if rates:
            rate = rates[int(torch.randint(len(rates), ()))]
        else:
            rate = _uniform(s["min_speed_rate"], s["max_speed_rate"])
        rate = round(rate, 2)
        if rate == 1.0:
            return samples
        import torchaudio.functional as AF

        return AF.resample(samples, round(self.sample_rate * rate), self.sample_rate)

    def _band_limit(self, samples: torch.Tensor, s: dict[str, Any]) -> torch.Tensor:
        import torchaudio.functional as AF

        rates = s["rates"]
        low = int(rates[int(torch.randint(len(rates), ()))])
        down = AF.resample(samples, self.sample_rate, low)
        return AF.resample(down, low, self.sample_rate)[: samples.shape[-1]]

    @staticmethod
    def _formant(samples: torch.Tensor, s: dict[str, Any]) -> torch.Tensor:
        return formant_shift(samples, _uniform(s["min_ratio"], s["max_ratio"]))

    def _silence(self, samples: torch.Tensor, s: dict[str, Any]) -> torch.Tensor:
        start = round(_uniform(s["min_start_silence_secs"], s["max_start_silence_secs"])
                      * self.sample_rate)
        end = round(_uniform(s["min_end_silence_secs"], s["max_end_silence_secs"])
                    * self.sample_rate)
        return torch.cat([samples.new_full((start,), float(s["value"])), samples,
                          samples.new_full((end,), float(s["value"]))])

    @staticmethod
    def _gain(samples: torch.Tensor, s: dict[str, Any]) -> torch.Tensor:
        gain_db = _uniform(s["min_gain_dbfs"], s["max_gain_dbfs"])
        return samples * 10.0 ** (gain_db / 20.0)

    @staticmethod
    def _noise(samples: torch.Tensor, s: dict[str, Any]) -> torch.Tensor:
        snr_db = _uniform(s["min_snr_db"], s["max_snr_db"])
        if "files" in s:
            if samples.numel() == 0:
                return samples
            return mix_at_snr(samples, s["files"].segment(samples.numel()), snr_db)
        rms = samples.pow(2).mean().sqrt().clamp_min(1e-8)
        return samples + torch.randn_like(samples) * rms / 10.0 ** (snr_db / 20.0)

    def _shift(self, samples: torch.Tensor, s: dict[str, Any]) -> torch.Tensor:
        shift = int(_uniform(s["min_shift_ms"], s["max_shift_ms"]) * self.sample_rate / 1000)
        size = samples.shape[-1]
        if shift == 0 or abs(shift) >= size:
            return samples
        out = torch.zeros_like(samples)
        if shift > 0:  # earlier: samples[shift:] move to the start
            out[: size - shift] = samples[shift:]
        else:
            out[-shift:] = samples[: size + shift]
        return out

    @staticmethod
    def _white_noise(samples: torch.Tensor, s: dict[str, Any]) -> torch.Tensor:
        level_db = _uniform(s["min_level"], s["max_level"])
        return samples + torch.randn_like(samples) * 10.0 ** (level_db / 20.0)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _augment_settings(kind: str, settings: Any) -> dict[str, Any]:
    """One perturbation's settings with defaults filled in. A bad value is a ParameterError
    naming ``augmentor.<kind>.<key>``; an unknown name, or a min above its max, a ValueError."""
    if kind not in _AUGMENT_KEYS:
        raise ValueError(f"augmentor perturbations must be among {sorted(_AUGMENT_KEYS)} "
                         f"(got {kind!r})")
    key = f"augmentor.{kind}"
    settings = {} if settings is None else settings
    if not isinstance(settings, Mapping):
        raise ParameterError(key, "a mapping of settings", settings, show_type=True)
    unknown = sorted(set(settings) - set(_AUGMENT_KEYS[kind]))
    if unknown:
        raise ValueError(f"augmentor.{kind} keys must be among {sorted(_AUGMENT_KEYS[kind])} "
                         f"(got {unknown[0]!r})")
    s = {**_AUGMENT_KEYS[kind], **settings}
    check(f"{key}.prob", s["prob"], between(0, 1))
    lows = [k for k in s if k.startswith("min_")]
    for low in lows:
        high = "max_" + low[4:]
        check(f"{key}.{low}", s[low], number)
        check(f"{key}.{high}", s[high], number)
        if s[low] > s[high]:
            raise ValueError(f"augmentor.{kind}.{low} must be <= {high} "
                             f"(got {s[low]} > {s[high]})")
    if kind == "speed":
        _speed_rates(s)
    if kind == "formant":
        for ratio in ("min_ratio", "max_ratio"):
            check(f"{key}.{ratio}", s[ratio], between(0.5, 2))
    if kind == "silence":
        for name in (k for k in s if k.endswith("_secs")):
            check(f"{key}.{name}", s[name], ge(0))
    if "value" in s:
        check(f"{key}.value", s["value"], number)
    if "manifest_path" in s:
        check(f"{key}.manifest_path", s["manifest_path"],
              optional(satisfies(lambda p: isinstance(p, str) and bool(p.strip()),
                                 "a manifest or folder path", types=(str,))))
    if kind == "band_limit":
        rates = list(_BAND_LIMIT_RATES) if s["rates"] is None else s["rates"]
        check(f"{key}.rates", rates, _BAND_RATES)
        s["rates"] = list(rates)
    return s


def _speed_rates(s: dict[str, Any]) -> None:
    """The speed rates to draw from: the given ones, ``num_rates`` spaced in the range, or
    ``None`` (any rate in the range); all in [0.1, 10]."""
    if s["rates"] is not None:
        check("augmentor.speed.rates", s["rates"], sequence,
              each(and_(number, between(0.1, 10))))
        s["rates"] = [float(r) for r in s["rates"]]
        return
    for key in ("min_speed_rate", "max_speed_rate"):
        check(f"augmentor.speed.{key}", s[key], between(0.1, 10))
    n = check("augmentor.speed.num_rates", s["num_rates"], instance_of(int))
    if n > 0:
        s["rates"] = np.linspace(s["min_speed_rate"], s["max_speed_rate"], n).tolist()


# ---------------------------------------------------------------------------------------------
# spectrograms (graph nodes, training only)
# ---------------------------------------------------------------------------------------------


class _SpectrogramAugmenter(ng.NeuralModule):
    """Ports of a training-time spectrogram augmentation: ``input_spec`` (B, D, T) and
    ``length`` (B,) in, ``augmented_spec`` (B, D, T) out, of the input's type (so that the
    node may be skipped outside training)."""

    @property
    def input_types(self) -> dict[str, NeuralType]:
        return {
            "input_spec": NeuralType(("B", "D", "T"), ng.SpectrogramType()),
            "length": NeuralType(("B",), ng.LengthsType()),
        }

    @property
    def output_types(self) -> dict[str, NeuralType]:
        return {"augmented_spec": NeuralType(("B", "D", "T"), ng.SpectrogramType())}


_TIME_WIDTH = satisfies(lambda w: 0 <= w <= 1 if isinstance(w, float) else w >= 0,
                        "an int >= 0 (frames) or a float in [0, 1] (a fraction)",
                        types=(int, float))
_MASK_VALUE = satisfies(lambda v: v == "mean" or number.accepts(v), "a number or 'mean'")


class SpectrogramAugmentation(_SpectrogramAugmenter):
    """SpecAugment (frequency and time masks) and SpecCutout (rectangles), in training only.

    Parameters (NeMo's):

    - ``freq_masks``: frequency bands masked per utterance, each up to ``freq_width`` bins.
    - ``time_masks``: time spans masked per utterance, each up to ``time_width`` frames; a
      float ``time_width`` in [0, 1] is a fraction of each utterance's length.
    - ``rect_masks``: rectangles cut per utterance, up to ``rect_time`` frames x ``rect_freq``
      bins.
    - ``mask_value``: the value written (a number, or ``mean``: each utterance's mean).

    Masks cover only each utterance's valid frames; padding is left as it is. Outside training
    the input is returned unchanged, so the node may be skipped (its output type is its input
    type).

    Ports: ``input_spec`` (B, D, T) and ``length`` (B,) in; ``augmented_spec`` (B, D, T) out.
    """

    def __init__(
        self,
        freq_masks: int = 0,
        time_masks: int = 0,
        freq_width: int = 10,
        time_width: int | float = 10,
        rect_masks: int = 0,
        rect_time: int = 5,
        rect_freq: int = 20,
        mask_value: float | str = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("freq_masks", freq_masks),
            ("time_masks", time_masks),
            ("freq_width", freq_width),
            ("rect_masks", rect_masks),
            ("rect_time", rect_time),
            ("rect_freq", rect_freq),
        ):
            check(name, value, non_negative_int)
        check("time_width", time_width, _TIME_WIDTH)
        self.adaptive_time_width = isinstance(time_width, float)
        check("mask_value", mask_value, _MASK_VALUE)
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width
        self.rect_masks, self.rect_time, self.rect_freq = rect_masks, rect_time, rect_freq
        self.mask_value = mask_value

    @staticmethod
    def _spans(high: Tensor, width: Tensor | int, count: int, size: int) -> Tensor:
        """Boolean (B, size): union of ``count`` random spans per row.

        Starts are uniform in [0, high], widths in [0, width] (inclusive, as NeMo's randint).
        """
        batch = high.shape[0]
        device = high.device
        width = torch.as_tensor(width, device=device).expand(batch)
        start = (torch.rand(batch, count, device=device) * (high[:, None] + 1)).floor()
        span = (torch.rand(batch, count, device=device) * (width[:, None] + 1)).floor()
        steps = torch.arange(size, device=device)[None, None, :]
        inside = (steps >= start[..., None]) & (steps < (start + span)[..., None])
        return inside.any(dim=1)

    def _mask(self, spec: Tensor, length: Tensor) -> Tensor:
        """Boolean (B, D, T): the cells to overwrite."""
        batch, dim, time = spec.shape
        device = spec.device
        length = length.to(device=device, dtype=torch.long).clamp(max=time)
        valid = valid_frames(length, time)  # (B, T)
        mask = torch.zeros(batch, dim, time, dtype=torch.bool, device=device)
        if self.freq_masks:
            high = torch.full((batch,), max(0, dim - self.freq_width), device=device)
            bands = self._spans(high, self.freq_width, self.freq_masks, dim)
            mask |= bands[:, :, None] & valid[:, None, :]
        if self.time_masks:
            if self.adaptive_time_width:
                width = (length.float() * self.time_width).long().clamp(min=1)
            else:
                width = torch.full_like(length, int(self.time_width))
            high = (length - width).clamp(min=1)
            mask |= (self._spans(high, width, self.time_masks, time) & valid)[:, None, :]
        for _ in range(self.rect_masks):
            high_f = torch.full((batch,), max(0, dim - self.rect_freq), device=device)
            rows = self._spans(high_f, self.rect_freq, 1, dim)
            cols = self._spans((length - self.rect_time).clamp(min=0), self.rect_time, 1, time)
            mask |= rows[:, :, None] & (cols & valid)[:, None, :]
        return mask

    def forward(self, input_spec: Tensor, length: Tensor) -> Tensor:
        """Spectrograms (B, D, T) and lengths (B,) -> masked spectrograms (B, D, T)."""
        if not self.training or not (self.freq_masks or self.time_masks or self.rect_masks):
            return input_spec
        mask = self._mask(input_spec, length)
        if self.mask_value == "mean":
            valid = valid_frames(length.to(input_spec.device), input_spec.shape[-1])[:, None, :]
            total = input_spec.masked_fill(~valid, 0.0).sum((1, 2), keepdim=True)
            count = (valid.sum((1, 2), keepdim=True) * input_spec.shape[1]).clamp(min=1)
            return torch.where(mask, (total / count).to(input_spec.dtype), input_spec)
        return input_spec.masked_fill(mask, float(self.mask_value))


def vtlp_source_bins(
    warp: Tensor, features: int, lowfreq: float, highfreq: float, boundary: float = 0.8
) -> Tensor:
    """Where each mel bin reads from under a frequency warp: (B,) factors -> (B, D) bins.

    Bin ``d`` (centre frequency ``f``) of the warped spectrogram takes the value the input has
    at ``f / warp`` (Jaitly & Hinton's VTLP): ``warp > 1`` moves every spectral feature up, as a
    shorter vocal tract does. Above a knee at ``boundary * highfreq * min(warp, 1)`` the map is
    the straight line that ends at ``highfreq -> highfreq``, so the band edge stays where it is.
    The result is a fractional bin index in ``[0, D - 1]`` of a Slaney mel filterbank with
    ``features`` bands between ``lowfreq`` and ``highfreq``.
    """
    warp = warp.to(torch.float64)[:, None]
    mel_low, mel_high = hz_to_mel(torch.tensor([lowfreq, highfreq], dtype=torch.float64))
    step = (mel_high - mel_low) / (features + 1)
    steps = torch.arange(1, features + 1, dtype=torch.float64, device=warp.device)
    centres = mel_to_hz(mel_low + step * steps)[None, :]  # (1, D) Hz
    knee = boundary * highfreq * warp.clamp(max=1.0)  # (B, 1)
    above = knee / warp + (centres - knee) * (highfreq - knee / warp) / (highfreq - knee)
    source = torch.where(centres <= knee, centres / warp, above)
    return ((hz_to_mel(source) - mel_low) / step - 1.0).clamp(0, features - 1).float()


class VocalTractLengthPerturbation(_SpectrogramAugmenter):
    """VTLP: stretch or squeeze each training spectrogram along frequency, in training only.

    Per utterance, with probability ``prob``, a warp factor is drawn uniformly from
    ``[min_warp, max_warp]`` and the mel spectrogram is resampled along its feature axis so
    that the content at frequency ``f / warp`` moves to ``f`` (linear interpolation between
    bands; see :func:`vtlp_source_bins`). Formants and harmonics move together, at the same
    tempo: a speaker with a shorter (``warp > 1``) or longer vocal tract. Unlike a waveform
    augmentation it costs the data loader nothing. ``sample_rate``, ``lowfreq`` and
    ``highfreq`` must be the preprocessor's (a Slaney mel filterbank, as it builds); the number
    of bands is read from the input. Place it after the preprocessor, before SpecAugment.
    Outside training the input is returned unchanged.

    Ports: ``input_spec`` (B, D, T) and ``length`` (B,) in; ``augmented_spec`` (B, D, T) out.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        lowfreq: float = 0.0,
        highfreq: float | None = None,
        prob: float = 1.0,
        min_warp: float = 0.9,
        max_warp: float = 1.1,
        boundary: float = 0.8,
    ) -> None:
        super().__init__()
        _check_sample_rate(sample_rate)
        highfreq = highfreq or sample_rate / 2
        _check_band(lowfreq, highfreq, sample_rate)
        check("prob", prob, between(0, 1))
        check("min_warp", min_warp, number, gt(0))
        check("max_warp", max_warp, number, satisfies(lambda w: w >= min_warp,
                                                      f">= min_warp = {min_warp:g}",
                                                      form="qualifier"))
        check("boundary", boundary, between(0, 1, low_open=True, high_open=True))
        self.lowfreq, self.highfreq = float(lowfreq), float(highfreq)
        self.prob, self.min_warp, self.max_warp = prob, min_warp, max_warp
        self.boundary = boundary

    def warp(self, spec: Tensor, factors: Tensor) -> Tensor:
        """Spectrograms (B, D, T) warped by (B,) factors -> (B, D, T)."""
        batch, dim, time = spec.shape
        source = vtlp_source_bins(
            factors.cpu(), dim, self.lowfreq, self.highfreq, self.boundary
        ).to(spec.device)  # (B, D)
        low = source.floor().long()
        high = (low + 1).clamp(max=dim - 1)

        def rows(index: Tensor) -> Tensor:
            return spec.gather(1, index[:, :, None].expand(batch, dim, time))

        weight = (source - low)[:, :, None].to(spec.dtype)
        return torch.lerp(rows(low), rows(high), weight)

    def forward(self, input_spec: Tensor, length: Tensor) -> Tensor:
        """Spectrograms (B, D, T) and lengths (B,) -> warped spectrograms (B, D, T)."""
        if not self.training or self.prob == 0.0 or self.min_warp == self.max_warp == 1.0:
            return input_spec
        batch = input_spec.shape[0]
        factors = self.min_warp + (self.max_warp - self.min_warp) * torch.rand(batch)
        factors = torch.where(torch.rand(batch) < self.prob, factors, torch.ones(batch))
        return self.warp(input_spec, factors)

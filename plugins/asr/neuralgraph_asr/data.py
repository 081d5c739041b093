"""ASR data sources (NeMo 1.x names): audio + transcripts (characters or BPE) or class labels.

A data source is built from the graph's ``data.params`` without touching files; each split's YAML
keys (``data.train: {manifest_filepath: ..., batch_size: ...}``) are the keyword arguments of
``dataloader`` and ``validate``. Batches are dicts keyed by output port::

    audio_signal       (B, T) float32   waveform at ``sample_rate``, zero padded
    audio_length       (B,)   int64     valid samples per row
    transcripts        (B, U) int64     token ids, zero padded       (ASR sources)
    transcript_length  (B,)   int64     tokens per row               (ASR sources)
    label              (B,)   int64     class index                  (classification)
    label_length       (B,)   int64     ones                         (classification)

Audio is read with soundfile, mixed down to mono and resampled with
``torchaudio.functional.resample`` when a file's rate differs. Bad manifest entries are found
before the first batch (``bad_data: fail`` stops with all of them; ``skip`` drops them).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

import neuralgraph as ng
from neuralgraph import UserError
from neuralgraph_asr.manifest import (
    ManifestEntry,
    format_problems,
    validate_manifest,
)
from neuralgraph_asr.tokenizers import CharTokenizer, SentencePieceTokenizer

__all__ = [
    "AudioAugmentor",
    "AudioDataset",
    "AudioToBPEDataset",
    "AudioToCharDataset",
    "AudioToClassificationLabelDataset",
    "CorruptAudioError",
    "DurationBucketBatchSampler",
    "PadCollate",
    "formant_shift",
    "read_audio",
    "trim_silence",
]

logger = logging.getLogger("neuralgraph.asr")


# ---------------------------------------------------------------------------------------------
# audio
# ---------------------------------------------------------------------------------------------


def read_audio(
    path: str,
    *,
    sample_rate: int,
    offset: float = 0.0,
    duration: float | None = None,
    int_values: bool = False,
) -> torch.Tensor:
    """Read a mono float32 waveform of shape ``(T,)`` at ``sample_rate``.

    Reads ``duration`` seconds from ``offset`` (the whole file when ``duration`` is None or 0,
    as NeMo does); channels are averaged; another rate is resampled. ``int_values`` reads 32-bit
    integers and scales them to [-1, 1) (NeMo's option; the same values up to rounding).
    """
    import soundfile

    with soundfile.SoundFile(path) as f:
        rate = f.samplerate
        if offset > 0:
            f.seek(round(offset * rate))
        frames = round(duration * rate) if duration else -1
        data = f.read(frames=frames, dtype="int32" if int_values else "float32", always_2d=True)
    samples = torch.from_numpy(data)
    if int_values:
        samples = samples.to(torch.float32) / 2.0**31
    samples = samples.mean(dim=1) if samples.shape[1] > 1 else samples[:, 0]
    if rate != sample_rate:
        import torchaudio.functional as AF

        samples = AF.resample(samples, rate, sample_rate)
    return samples.contiguous()


def trim_silence(
    samples: torch.Tensor, top_db: float = 60.0, frame_length: int = 2048, hop_length: int = 512
) -> torch.Tensor:
    """Cut leading and trailing silence from a ``(T,)`` waveform (as ``librosa.effects.trim``).

    Frames (centred, zero padded) quieter than ``top_db`` below the loudest frame are silence.
    """
    if samples.numel() == 0:
        return samples
    half = frame_length // 2
    frames = torch.nn.functional.pad(samples, (half, half)).unfold(0, frame_length, hop_length)
    power = frames.pow(2).mean(dim=-1).clamp_min(1e-10)
    db = 10.0 * torch.log10(power / power.max())
    loud = torch.nonzero(db > -top_db).flatten()
    if loud.numel() == 0:
        return samples
    start = int(loud[0]) * hop_length
    end = min(samples.numel(), (int(loud[-1]) + 1) * hop_length)
    return samples[start:end]


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
    "gain": {"prob": 1.0, "min_gain_dbfs": -10.0, "max_gain_dbfs": 10.0},
    "noise": {"prob": 1.0, "min_snr_db": 10.0, "max_snr_db": 40.0},
    "white_noise": {"prob": 1.0, "min_level": -90.0, "max_level": -46.0},
    "band_limit": {"prob": 1.0, "rates": None},
    "formant": {"prob": 1.0, "min_ratio": 0.85, "max_ratio": 1.15},
    "silence": {"prob": 1.0, "min_start_silence_secs": 0.0, "max_start_silence_secs": 0.0,
                "min_end_silence_secs": 0.0, "max_end_silence_secs": 0.0, "value": 0.0},
}
_BAND_LIMIT_RATES = (8000, 12000)  # simple ratios to 16 kHz: cheap to resample


class AudioAugmentor:
    """Random perturbations of training audio, applied in the order given (NeMo's augmentor).

    ``config`` maps a perturbation to its settings; each is applied with probability ``prob``:

    * ``speed``: resample by a rate drawn from ``rates`` (a list), or from ``num_rates`` rates
      evenly spaced in ``[min_speed_rate, max_speed_rate]`` (``num_rates <= 0``: any rate in the
      range). Rates are rounded to 0.01 so that resampling stays cheap. Changes the length.
    * ``gain``: multiply by a gain in ``[min_gain_dbfs, max_gain_dbfs]`` dB.
    * ``noise``: add white noise at a signal-to-noise ratio in ``[min_snr_db, max_snr_db]`` dB.
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
            raise ValueError(f"augmentor must be a mapping of perturbations (got {config!r})")
        self.sample_rate = sample_rate
        self.steps: list[tuple[str, dict[str, Any]]] = [
            (kind, _augment_settings(kind, settings)) for kind, settings in config.items()
        ]
        for kind, s in self.steps:
            if kind == "band_limit" and max(s["rates"]) >= sample_rate:
                raise ValueError(f"augmentor.band_limit.rates must be below the sample rate "
                                 f"{sample_rate} (got {s['rates']})")

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
        rms = samples.pow(2).mean().sqrt().clamp_min(1e-8)
        return samples + torch.randn_like(samples) * rms / 10.0 ** (snr_db / 20.0)

    @staticmethod
    def _white_noise(samples: torch.Tensor, s: dict[str, Any]) -> torch.Tensor:
        level_db = _uniform(s["min_level"], s["max_level"])
        return samples + torch.randn_like(samples) * 10.0 ** (level_db / 20.0)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _augment_settings(kind: str, settings: Any) -> dict[str, Any]:
    """One perturbation's settings with defaults filled in; ValueError says what must hold."""
    if kind not in _AUGMENT_KEYS:
        raise ValueError(f"augmentor perturbations must be among {sorted(_AUGMENT_KEYS)} "
                         f"(got {kind!r})")
    settings = {} if settings is None else settings
    if not isinstance(settings, Mapping):
        raise ValueError(f"augmentor.{kind} must be a mapping (got {settings!r})")
    unknown = sorted(set(settings) - set(_AUGMENT_KEYS[kind]))
    if unknown:
        raise ValueError(f"augmentor.{kind} keys must be among {sorted(_AUGMENT_KEYS[kind])} "
                         f"(got {unknown[0]!r})")
    s = {**_AUGMENT_KEYS[kind], **settings}
    if not 0.0 <= float(s["prob"]) <= 1.0:
        raise ValueError(f"augmentor.{kind}.prob must be in [0, 1] (got {s['prob']!r})")
    lows = [k for k in s if k.startswith("min_")]
    for low in lows:
        high = "max_" + low[4:]
        if float(s[low]) > float(s[high]):
            raise ValueError(f"augmentor.{kind}.{low} must be <= {high} "
                             f"(got {s[low]} > {s[high]})")
    if kind == "speed":
        _speed_rates(s)
    if kind == "formant" and not 0.5 <= float(s["min_ratio"]) <= float(s["max_ratio"]) <= 2.0:
        raise ValueError(f"augmentor.formant ratios must lie in [0.5, 2] (got "
                         f"{s['min_ratio']}..{s['max_ratio']})")
    if kind == "silence" and min(float(v) for k, v in s.items() if k.endswith("_secs")) < 0:
        raise ValueError(f"augmentor.silence times must be >= 0 seconds (got {settings!r})")
    if kind == "band_limit":
        rates = list(_BAND_LIMIT_RATES) if s["rates"] is None else s["rates"]
        if not rates or not all(isinstance(r, int) and not isinstance(r, bool) and 1000 <= r
                                for r in rates):
            raise ValueError(f"augmentor.band_limit.rates must be a list of integer sample rates "
                             f">= 1000 Hz (got {s['rates']!r})")
        s["rates"] = rates
    return s


def _speed_rates(s: dict[str, Any]) -> None:
    if s["rates"] is not None:
        s["rates"] = [float(r) if isinstance(r, (int, float)) else r for r in s["rates"]]
    elif int(s["num_rates"]) > 0:
        n = int(s["num_rates"])
        s["rates"] = np.linspace(s["min_speed_rate"], s["max_speed_rate"], n).tolist()
    rates = s["rates"] or [s["min_speed_rate"], s["max_speed_rate"]]
    if not all(isinstance(r, (int, float)) and 0.1 <= r <= 10 for r in rates):
        raise ValueError(f"augmentor.speed rates must be numbers in [0.1, 10] (got {rates!r})")


# ---------------------------------------------------------------------------------------------
# torch dataset, collate, bucketing
# ---------------------------------------------------------------------------------------------


class CorruptAudioError(UserError):
    """An audio file whose header passed the check before training but whose samples cannot
    be decoded (a truncated or damaged file); the message names the manifest line.

    Raised in a ``DataLoader`` worker, it comes back to the main process with the worker's
    traceback folded into its message (torch re-raises ``type(error)(text)``); that text is
    cut back to the original message here, so that the command line prints one clear line.
    """

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        if "Original Traceback" in message and marker in message:
            message = message[message.rindex(marker) + len(marker):].strip()
        super().__init__(message)


class AudioDataset(Dataset):
    """Utterances as dicts ``{"audio_signal": (T,) float32, target_key: (U,) or () int64}``.

    Targets are tokenized once, up front, and kept in flat arrays so that workers share them
    without copying; the dataset pickles (for ``num_workers > 0`` under spawn/forkserver).
    A file that cannot be decoded raises :class:`CorruptAudioError` with its manifest line.
    """

    def __init__(
        self,
        entries: Sequence[ManifestEntry],
        targets: Sequence[Sequence[int]] | Sequence[int],
        *,
        target_key: str,
        sample_rate: int,
        int_values: bool = False,
        trim: bool = False,
        augmentor: AudioAugmentor | None = None,
    ) -> None:
        self.paths = [e.audio_filepath for e in entries]
        self.manifests = sorted({e.manifest for e in entries})
        index = {m: i for i, m in enumerate(self.manifests)}
        self.origins = np.array([(index[e.manifest], e.line) for e in entries],
                                dtype=np.int64).reshape(-1, 2)
        self.offsets = np.array([e.offset for e in entries], dtype=np.float64)
        self.durations = np.array([e.duration for e in entries], dtype=np.float64)
        self.scalar_target = bool(targets) and not isinstance(targets[0], Sequence)
        if self.scalar_target:
            self.targets = np.asarray(targets, dtype=np.int64)
            self.bounds = np.arange(len(targets) + 1, dtype=np.int64)
        else:
            lengths = [len(t) for t in targets]
            self.bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            flat = [i for t in targets for i in t]
            self.targets = np.asarray(flat, dtype=np.int64)
        self.target_key = target_key
        self.sample_rate = sample_rate
        self.int_values = int_values
        self.trim = trim
        self.augmentor = augmentor

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        samples = self._read(index)
        if self.trim:
            samples = trim_silence(samples)
        if self.augmentor is not None:
            samples = self.augmentor(samples)
        if self.scalar_target:
            target = torch.tensor(int(self.targets[index]), dtype=torch.int64)
        else:
            start, end = self.bounds[index], self.bounds[index + 1]
            target = torch.from_numpy(self.targets[start:end].copy())
        return {"audio_signal": samples, self.target_key: target}

    def _read(self, index: int) -> torch.Tensor:
        import soundfile

        try:
            return read_audio(
                self.paths[index],
                sample_rate=self.sample_rate,
                offset=float(self.offsets[index]),
                duration=float(self.durations[index]),
                int_values=self.int_values,
            )
        except (soundfile.LibsndfileError, RuntimeError, OSError) as err:
            manifest, line = self.origins[index]
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise CorruptAudioError(
                f"{self.manifests[manifest]}:{line}: corrupt audio: its header was readable "
                f"before training but its samples cannot be decoded ({reason}) "
                f"({self.paths[index]}); remove the line or re-encode the file, then continue "
                "with --resume") from None


class PadCollate:
    """Collate dicts of 1-D tensors into zero-padded ``(B, max_len)`` tensors plus lengths.

    ``lengths`` maps a key to the key of its ``(B,)`` int64 lengths (``audio_signal`` →
    ``audio_length``). 0-dim items are stacked to ``(B,)``; their lengths are ones.
    """

    def __init__(self, lengths: Mapping[str, str]) -> None:
        self.lengths = dict(lengths)

    def __call__(self, items: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for key in items[0]:
            values = [item[key] for item in items]
            if values[0].dim() == 0:
                batch[key] = torch.stack(values)
                lengths = torch.ones(len(values), dtype=torch.int64)
            else:
                lengths = torch.tensor([v.shape[0] for v in values], dtype=torch.int64)
                padded = values[0].new_zeros((len(values), max(lengths.tolist(), default=0)))
                for row, v in enumerate(values):
                    padded[row, : v.shape[0]] = v
                batch[key] = padded
            if key in self.lengths:
                batch[self.lengths[key]] = lengths
        return batch


def _dataset_of(sampler: Any) -> Any:
    return getattr(sampler, "data_source", getattr(sampler, "dataset", None))


class DurationBucketBatchSampler(BatchSampler):
    """Batches of utterances of similar duration, to reduce padding.

    Indices come from ``sampler`` (shuffled or not) in pools of ``pool_batches`` batches; each
    pool is sorted by duration and cut into batches, and (when the sampler shuffles) the batches
    are shuffled. Without shuffling the whole split is sorted by duration. The number of batches
    is that of a ``BatchSampler`` with the same ``batch_size`` and ``drop_last``.

    Distributed training: a batch sampler is not replaced by Lightning's distributed sampler the
    usual way. Lightning re-creates this class with ``sampler`` set to its ``DistributedSampler``
    (the signature follows ``BatchSampler`` for that, and ``durations`` default to the sampler's
    dataset's ``durations``), so each rank buckets its own share. When ``torch.distributed`` is
    initialized and ``sampler`` is not a ``DistributedSampler`` (``use_distributed_sampler=False``,
    or a loop without Lightning), this class splits the indices by rank itself: a permutation
    seeded by ``seed + epoch`` (same on every rank), padded to a multiple of the world size, every
    ``world_size``-th index from ``rank``. ``set_epoch`` sets the epoch; otherwise it advances by
    one each pass.
    """

    def __init__(
        self,
        sampler: Sampler[int] | Sequence[int],
        batch_size: int,
        drop_last: bool,
        durations: Sequence[float] | None = None,
        *,
        pool_batches: int = 50,
        shuffle: bool | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        if durations is None:
            durations = getattr(_dataset_of(sampler), "durations", None)
        if durations is None:
            raise ValueError("DurationBucketBatchSampler needs durations (or a sampler whose "
                             "dataset has .durations)")
        if pool_batches < 1:
            raise ValueError(f"pool_batches must be >= 1 (got {pool_batches})")
        self.durations = np.asarray(durations, dtype=np.float64)
        self.pool_batches = pool_batches
        if shuffle is None:
            shuffle = isinstance(sampler, RandomSampler) or bool(getattr(sampler, "shuffle", False))
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch that seeds the rank split (called by distributed loops before each epoch)."""
        self.epoch = epoch

    def _split_by_rank(self) -> tuple[int, int] | None:
        """``(rank, world_size)`` when this sampler must split indices itself, else None."""
        if isinstance(self.sampler, DistributedSampler):
            return None
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return None
        return dist.get_rank(), dist.get_world_size()

    def _indices(self) -> list[int]:
        split = self._split_by_rank()
        if split is None:
            return list(iter(self.sampler))
        rank, world = split
        n = len(self.durations)
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        total = math.ceil(n / world) * world
        order = torch.cat([order, order[: total - n]]) if total > n else order
        return order[rank:total:world].tolist()

    def _num_indices(self) -> int:
        split = self._split_by_rank()
        if split is None:
            return len(self.sampler)  # type: ignore[arg-type]
        return math.ceil(len(self.durations) / split[1])

    def __len__(self) -> int:
        n = self._num_indices()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        indices = np.asarray(self._indices(), dtype=np.int64)
        self.epoch += 1
        pool = self.batch_size * self.pool_batches if self.shuffle else max(len(indices), 1)
        batches = []
        for start in range(0, len(indices), pool):
            chunk = indices[start : start + pool]
            chunk = chunk[np.argsort(self.durations[chunk], kind="stable")]
            for b in range(0, len(chunk), self.batch_size):
                batch = chunk[b : b + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch.tolist())
        if self.shuffle:
            order = torch.randperm(len(batches), generator=self._order_generator()).tolist()
            batches = [batches[i] for i in order]
        yield from batches

    def _order_generator(self) -> torch.Generator | None:
        """The generator of the batch order: seeded by the sampler's ``seed`` and ``epoch`` when
        it has them (the ``EpochRandomSampler`` of ``neuralgraph train``, a
        ``DistributedSampler``), so that a resumed run replays the epoch's order and skips
        exactly the batches already trained on; otherwise torch's global generator."""
        seed, epoch = getattr(self.sampler, "seed", None), getattr(self.sampler, "epoch", None)
        if not isinstance(seed, int) or not isinstance(epoch, int):
            return None
        return torch.Generator().manual_seed(seed * 1_000_003 + epoch + 1)


# ---------------------------------------------------------------------------------------------
# data sources
# ---------------------------------------------------------------------------------------------


def _manifest_list(manifest_filepath: str | Sequence[str]) -> list[str]:
    """One or more manifests: a list, or a comma-separated string (NeMo's convention)."""
    if isinstance(manifest_filepath, str):
        paths = [p.strip() for p in manifest_filepath.split(",")]
    else:
        paths = [str(p) for p in manifest_filepath]
    paths = [p for p in paths if p]
    if not paths:
        raise UserError("manifest_filepath must name at least one manifest")
    return paths


def _check_loader_args(batch_size: int, num_workers: int, min_duration: float | None,
                       max_duration: float | None) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size must be a positive int (got {batch_size!r})")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise UserError(f"num_workers must be an int >= 0 (got {num_workers!r})")
    if min_duration is not None and max_duration is not None and min_duration > max_duration:
        raise UserError(f"min_duration must be <= max_duration (got {min_duration} > "
                        f"{max_duration})")


class _AudioDataSource(ng.DataSource):
    """Shared parameters and loading of the audio data sources."""

    target_key: ClassVar[str] = "transcripts"
    target_length_key: ClassVar[str] = "transcript_length"
    manifest_target: ClassVar[str] = "text"
    inference_ports: ClassVar[tuple[str, ...]] = ("audio_signal", "audio_length")

    def example_batch(self, batch: int = 2, seconds: float = 1.0) -> dict[str, torch.Tensor]:
        """Random audio for tracing an export: ``audio_signal`` (B, T), ``audio_length`` (B,)."""
        samples = int(seconds * self.sample_rate)
        generator = torch.Generator().manual_seed(0)
        return {
            "audio_signal": 0.1 * torch.randn(batch, samples, generator=generator),
            "audio_length": torch.full((batch,), samples, dtype=torch.long),
        }

    def __init__(
        self,
        sample_rate: int = 16000,
        int_values: bool = False,
        trim_silence: bool = False,
        augmentor: Mapping[str, Mapping[str, Any]] | None = None,
        bad_data: str = "fail",
    ) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive int (got {sample_rate!r})")
        if bad_data not in ("fail", "skip"):
            raise ValueError(f"bad_data must be 'fail' or 'skip' (got {bad_data!r})")
        self.sample_rate = sample_rate
        self.int_values = bool(int_values)
        self.trim_silence = bool(trim_silence)
        self.augmentor = None if augmentor is None else AudioAugmentor(augmentor, sample_rate)
        self.bad_data = bad_data
        self._reports: dict[tuple[Any, ...], tuple[list[ManifestEntry], list[str]]] = {}

    # what subclasses provide ---------------------------------------------------------------

    def _vocabulary(self) -> Any:
        """What ``validate_manifest`` checks transcripts (or labels) against."""
        raise NotImplementedError

    def _target(self, entry: ManifestEntry) -> Sequence[int] | int:
        raise NotImplementedError

    # ports ----------------------------------------------------------------------------------

    def _audio_types(self) -> dict[str, ng.NeuralType]:
        return {
            "audio_signal": ng.NeuralType(("B", "T"), ng.AudioSignal(freq=self.sample_rate)),
            "audio_length": ng.NeuralType(("B",), ng.LengthsType()),
        }

    # manifests ------------------------------------------------------------------------------

    def _load(
        self,
        manifest_filepath: str | Sequence[str],
        min_duration: float | None,
        max_duration: float | None,
    ) -> tuple[list[ManifestEntry], list[str]]:
        """Entries that pass validation and the problems found (cached per arguments)."""
        paths = _manifest_list(manifest_filepath)
        key = (tuple(paths), min_duration, max_duration)
        if key not in self._reports:
            entries, problems = [], []
            for path in paths:
                report = validate_manifest(
                    path, labels=self._vocabulary(), sample_rate=self.sample_rate, policy="skip",
                    min_duration=min_duration, max_duration=max_duration,
                    target=self.manifest_target,
                )
                entries.extend(report.entries)
                problems.extend(report.problems)
                _log_report(report.path, report.notes, report.skipped)
            self._reports[key] = (entries, problems)
        return self._reports[key]

    def validate(self, split: str, **split_params: Any) -> list[str]:
        """Problems in the split's manifests (none under ``bad_data: skip``: bad entries are
        dropped and counted in the log), one ``manifest:LINE: message (path)`` line each."""
        if "manifest_filepath" not in split_params:
            return [f"data.{split}: manifest_filepath is required"]
        try:
            _, problems = self._load(
                split_params["manifest_filepath"],
                split_params.get("min_duration"),
                split_params.get("max_duration"),
            )
        except UserError as err:
            return [str(err)]
        return problems if self.bad_data == "fail" else []

    def dataloader(
        self,
        split: str,
        manifest_filepath: str | Sequence[str],
        batch_size: int = 32,
        shuffle: bool = False,
        num_workers: int = 0,
        min_duration: float | None = None,
        max_duration: float | None = None,
        drop_last: bool = False,
        pin_memory: bool = False,
        bucketing: bool = False,
    ) -> DataLoader:
        """The loader of one split; augmentation applies to ``split == "train"`` only.

        Args:
            split: "train", "validation" or "test".
            manifest_filepath: a manifest, a list of them, or a comma-separated string.
            batch_size, shuffle, num_workers, drop_last, pin_memory: as in ``DataLoader``.
            min_duration, max_duration: keep utterances within these durations (seconds).
            bucketing: batch utterances of similar duration (:class:`DurationBucketBatchSampler`).

        Raises:
            UserError: a manifest is missing, or it has problems and ``bad_data`` is "fail".
        """
        _check_loader_args(batch_size, num_workers, min_duration, max_duration)
        entries, problems = self._load(manifest_filepath, min_duration, max_duration)
        if problems and self.bad_data == "fail":
            n = len(problems)
            raise UserError(format_problems(
                f"{n} problem{'s' if n != 1 else ''} in the {split} data (set data.params."
                "bad_data: skip to drop these entries):", problems))
        if not entries:
            raise UserError(f"no usable utterances in {manifest_filepath} for the {split} data")
        dataset = AudioDataset(
            entries,
            [self._target(e) for e in entries],
            target_key=self.target_key,
            sample_rate=self.sample_rate,
            int_values=self.int_values,
            trim=self.trim_silence,
            augmentor=self.augmentor if split == "train" else None,
        )
        collate = PadCollate({"audio_signal": "audio_length", self.target_key:
                              self.target_length_key})
        common = {"num_workers": num_workers, "collate_fn": collate, "pin_memory": pin_memory}
        if bucketing:
            sampler = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
            batches = DurationBucketBatchSampler(sampler, batch_size, drop_last, dataset.durations)
            return DataLoader(dataset, batch_sampler=batches, **common)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                          **common)


def _log_report(path: str, notes: Sequence[str], skipped: Mapping[str, int]) -> None:
    for note in notes:
        logger.info("%s: %s", path, note)
    if skipped:
        counts = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
        logger.warning("%s: skipped %d entries (%s)", path, sum(skipped.values()), counts)


class _TranscriptDataSource(_AudioDataSource):
    """Audio and tokenized transcripts: what the char and BPE sources share (``self.tokenizer``
    is a CharTokenizer or a SentencePieceTokenizer)."""

    tokenizer: CharTokenizer | SentencePieceTokenizer

    @property
    def vocab_size(self) -> int:
        """Number of tokens (the CTC blank comes after them)."""
        return self.tokenizer.vocab_size

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        """Ports: audio_signal (B, T), audio_length, transcripts (B, U), transcript_length."""
        return {
            **self._audio_types(),
            "transcripts": ng.NeuralType(("B", "T"), ng.LabelsType(vocab_size=self.vocab_size)),
            "transcript_length": ng.NeuralType(("B",), ng.LengthsType()),
        }

    def _vocabulary(self) -> CharTokenizer | SentencePieceTokenizer:
        return self.tokenizer

    def _target(self, entry: ManifestEntry) -> list[int]:
        return self.tokenizer.text_to_ids(entry.text)

    def text_to_ids(self, text: str) -> list[int]:
        """Token ids of a transcript (normalized first when ``normalize_transcripts``)."""
        return self.tokenizer.text_to_ids(text)

    def ids_to_text(self, ids: Sequence[int]) -> str:
        """The transcript of token ids."""
        return self.tokenizer.ids_to_text(ids)


class AudioToCharDataset(_TranscriptDataSource):
    """Audio and character transcripts from NeMo manifests (CTC targets over ``labels``).

    Args:
        labels: the characters of the vocabulary (the CTC blank is not one of them), e.g. space,
            a-z and the apostrophe.
        sample_rate: rate of ``audio_signal`` in Hz; files at other rates are resampled.
        normalize_transcripts: lowercase (unless a label is upper case) and remove punctuation
            that is not a label before checking and tokenizing.
        int_values: read samples as 32-bit integers (NeMo's option).
        trim_silence: cut leading and trailing silence (60 dB below the peak).
        augmentor: training-time perturbations (:class:`AudioAugmentor`), e.g.
            ``{speed: {prob: 0.5, rates: [0.9, 1.1]}, gain: {prob: 0.5}, noise: {prob: 0.3}}``.
        bad_data: "fail" stops before training with every bad manifest entry listed; "skip"
            drops them (counts are logged).
    """

    def __init__(
        self,
        labels: Sequence[str],
        sample_rate: int = 16000,
        normalize_transcripts: bool = True,
        int_values: bool = False,
        trim_silence: bool = False,
        augmentor: Mapping[str, Mapping[str, Any]] | None = None,
        bad_data: str = "fail",
    ) -> None:
        super().__init__(sample_rate, int_values, trim_silence, augmentor, bad_data)
        if isinstance(labels, str) or not isinstance(labels, Sequence):
            raise ValueError(f"labels must be a list of characters (got {labels!r})")
        self.tokenizer = CharTokenizer(labels, normalize=normalize_transcripts)
        self.labels = self.tokenizer.labels

    labels_to_ids = _TranscriptDataSource.text_to_ids


class AudioToBPEDataset(_TranscriptDataSource):
    """Audio and SentencePiece (BPE / unigram) transcripts from NeMo manifests.

    Args:
        tokenizer_model: the SentencePiece ``tokenizer.model`` (``neuralgraph asr tokenizer``
            writes one). It is an artifact: model archives carry the file and point this
            parameter at their copy. The constructor reads it (a small file) for the vocabulary
            size that ``transcripts`` declares.
        normalize_transcripts: lowercase and remove punctuation other than ``'`` before
            tokenizing (as ``neuralgraph asr tokenizer`` does to its training text).
        sample_rate, int_values, trim_silence, augmentor, bad_data: as in
            :class:`AudioToCharDataset`.

    Raises:
        ValueError: ``tokenizer_model file not found: PATH``, or it is not a SentencePiece model.
    """

    artifacts: ClassVar[tuple[str, ...]] = ("tokenizer_model",)

    def __init__(
        self,
        tokenizer_model: str,
        sample_rate: int = 16000,
        normalize_transcripts: bool = True,
        int_values: bool = False,
        trim_silence: bool = False,
        augmentor: Mapping[str, Mapping[str, Any]] | None = None,
        bad_data: str = "fail",
    ) -> None:
        super().__init__(sample_rate, int_values, trim_silence, augmentor, bad_data)
        self.tokenizer_model = str(tokenizer_model)
        self.tokenizer = SentencePieceTokenizer(tokenizer_model, normalize=normalize_transcripts)


class AudioToClassificationLabelDataset(_AudioDataSource):
    """Audio and one class label per utterance (the manifest's ``label`` key), e.g. commands.

    Args:
        labels: the class names; ``label`` is the index of the manifest's label among them.
        sample_rate, int_values, trim_silence, augmentor, bad_data: as in
            :class:`AudioToCharDataset`.
    """

    target_key: ClassVar[str] = "label"
    target_length_key: ClassVar[str] = "label_length"
    manifest_target: ClassVar[str] = "label"

    def __init__(
        self,
        labels: Sequence[str],
        sample_rate: int = 16000,
        int_values: bool = False,
        trim_silence: bool = False,
        augmentor: Mapping[str, Mapping[str, Any]] | None = None,
        bad_data: str = "fail",
    ) -> None:
        super().__init__(sample_rate, int_values, trim_silence, augmentor, bad_data)
        if isinstance(labels, str) or not isinstance(labels, Sequence) or not labels:
            raise ValueError(f"labels must be a non-empty list of class names (got {labels!r})")
        labels = [str(label) for label in labels]
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels must be unique (got {labels!r})")
        self.labels = labels
        self._index = {label: i for i, label in enumerate(labels)}

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        """Ports: audio_signal (B, T), audio_length (B,), label (B,), label_length (B,)."""
        return {
            **self._audio_types(),
            "label": ng.NeuralType(("B",), ng.LabelsType(vocab_size=len(self.labels))),
            "label_length": ng.NeuralType(("B",), ng.LengthsType()),
        }

    def _vocabulary(self) -> list[str]:
        return self.labels

    def _target(self, entry: ManifestEntry) -> int:
        return self._index[str(entry.label)]

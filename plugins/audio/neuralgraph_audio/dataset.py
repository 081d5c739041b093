"""Audio data sets and the base of the audio data sources.

:class:`AudioDataset` serves ``{"audio_signal": (T,), target: (U,) or ()}`` items from validated
manifest entries (optionally cropped or padded to a fixed length, and followed by generated
clips of background noise); :class:`AudioDataSource` is the base class that ASR, TTS and
classification data sources build on (manifest validation before training, augmentation in
training only, padding, optional duration bucketing). Bad manifest entries are found before the
first batch (``bad_data: fail`` stops with all of them; ``skip`` drops them).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler

import neuralgraph as ng
from neuralgraph import UserError
from neuralgraph.validators import boolean, check, in_, non_negative_int, positive_int
from neuralgraph_audio.augment import AudioAugmentor
from neuralgraph_audio.batching import DurationBucketBatchSampler, PadCollate
from neuralgraph_audio.io import AudioFileError, crop_or_pad, read_audio, trim_silence
from neuralgraph_audio.manifest import (
    ManifestEntry,
    ManifestReport,
    format_problems,
    validate_manifest,
)
from neuralgraph_audio.noise import NoiseClips

__all__ = ["AudioDataSource", "AudioDataset", "CorruptAudioError"]

logger = logging.getLogger("neuralgraph.audio")


class CorruptAudioError(UserError):
    """An audio file whose header passed the check before training but whose samples cannot
    be decoded (a truncated or damaged file), or that is gone or no longer a regular file
    since; the message names the manifest line.

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

    ``fixed_length`` (samples) crops or zero pads every item to that length
    (:func:`~neuralgraph_audio.io.crop_or_pad`), before the augmentor and again after it (a
    speed change alters the length): at a random position when ``random_crop`` (training),
    centrally otherwise. ``noise_clips`` adds ``noise_clips.count`` items after the entries,
    clips of background noise alone whose target is ``noise_target`` (a classifier's
    ``silence`` class): new noise each time when ``random_crop``, otherwise the same clip for
    the same index (``noise_seed``).
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
        fixed_length: int | None = None,
        random_crop: bool = False,
        noise_clips: NoiseClips | None = None,
        noise_target: int = 0,
        noise_seed: int = 0,
    ) -> None:
        self.paths = [e.audio_filepath for e in entries]
        self.manifests = sorted({e.manifest for e in entries})
        index = {m: i for i, m in enumerate(self.manifests)}
        self.origins = np.array([(index[e.manifest], e.line) for e in entries],
                                dtype=np.int64).reshape(-1, 2)
        self.offsets = np.array([e.offset for e in entries], dtype=np.float64)
        durations = [e.duration for e in entries]
        if noise_clips is not None:
            durations += [noise_clips.length / sample_rate] * noise_clips.count
        self.durations = np.array(durations, dtype=np.float64)
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
        self.fixed_length = fixed_length
        self.random_crop = random_crop
        self.noise_clips = noise_clips
        self.noise_target = noise_target
        self.noise_seed = noise_seed

    def __len__(self) -> int:
        return len(self.paths) + (self.noise_clips.count if self.noise_clips else 0)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index >= len(self.paths):
            return self._noise_item(index - len(self.paths))
        samples = self._read(index)
        if self.trim:
            samples = trim_silence(samples)
        samples = self._fit(samples)
        if self.scalar_target:
            target = torch.tensor(int(self.targets[index]), dtype=torch.int64)
        else:
            start, end = self.bounds[index], self.bounds[index + 1]
            target = torch.from_numpy(self.targets[start:end].copy())
        return {"audio_signal": samples, self.target_key: target}

    def _fit(self, samples: torch.Tensor) -> torch.Tensor:
        """Fixed length (if set), augmentation (if any), fixed length again."""
        if self.fixed_length is not None:
            samples = crop_or_pad(samples, self.fixed_length, random=self.random_crop)
        if self.augmentor is not None:
            samples = self.augmentor(samples)
            if self.fixed_length is not None:
                samples = crop_or_pad(samples, self.fixed_length)
        return samples

    def _noise_item(self, index: int) -> dict[str, torch.Tensor]:
        assert self.noise_clips is not None
        seed = None if self.random_crop else self.noise_seed
        samples = self._fit(self.noise_clips.clip(index, seed=seed))
        target: torch.Tensor = torch.tensor(self.noise_target, dtype=torch.int64)
        if not self.scalar_target:
            target = target.reshape(1)
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
        except AudioFileError as err:  # missing or replaced by a FIFO, a folder... since
            manifest, line = self.origins[index]
            raise CorruptAudioError(
                f"{self.manifests[manifest]}:{line}: {err}; it was a readable audio file when "
                "the manifest was checked before training: restore it or remove the line, then "
                "continue with --resume") from None
        except (soundfile.LibsndfileError, RuntimeError, OSError) as err:
            manifest, line = self.origins[index]
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise CorruptAudioError(
                f"{self.manifests[manifest]}:{line}: corrupt audio: its header was readable "
                f"before training but its samples cannot be decoded ({reason}) "
                f"({self.paths[index]}); remove the line or re-encode the file, then continue "
                "with --resume") from None


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


def _check_loader_args(batch_size: int, num_workers: int, flags: Mapping[str, Any]) -> None:
    # UserErrors, not ParameterErrors: a split's keys reach the data source only when its
    # loader is built, after the check, so there is no key for the checker to point at
    if not positive_int.accepts(batch_size):
        raise UserError(f"batch_size must be a positive int (got {batch_size!r})")
    if not non_negative_int.accepts(num_workers):
        raise UserError(f"num_workers must be an int >= 0 (got {num_workers!r})")
    for name, value in flags.items():
        if not boolean.accepts(value):
            raise UserError(f"{name} must be true or false (got {value!r})")


def _check_durations(min_duration: Any, max_duration: Any) -> None:
    for name, value in (("min_duration", min_duration), ("max_duration", max_duration)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or math.isnan(value) or value < 0):
            raise UserError(f"{name} must be a number of seconds >= 0 or null (got {value!r})")
    if min_duration is not None and max_duration is not None and min_duration > max_duration:
        raise UserError(f"min_duration must be <= max_duration (got {min_duration} > "
                        f"{max_duration})")


class AudioDataSource(ng.DataSource):
    """Base of the data sources that read audio from NeMo manifests (ASR, TTS, classification).

    It owns the audio parameters (``sample_rate``, ``int_values``, ``trim_silence``,
    ``augmentor``, ``bad_data``), validates a split's manifests before the first batch (missing
    or unreadable files, bad durations, targets outside the vocabulary) and builds its loader.
    Batches are dicts::

        audio_signal       (B, T) float32   waveform at ``sample_rate``, zero padded
        audio_length       (B,)   int64     valid samples per row
        <target_key>       (B, U) or (B,)   int64 targets, zero padded
        <target_length_key> (B,)  int64     targets per row (ones for scalar targets)

    Public attributes (what domain models read): ``sample_rate``, the rate in Hz of
    ``audio_signal``, at which files are read (resampled when they differ), and the
    :class:`~neuralgraph.DataSource` declarations it implements: ``inference_ports``
    (``audio_signal``, ``audio_length``), :meth:`example_batch` (random audio) and
    :meth:`evaluation_split` (a manifest path becomes ``manifest_filepath``).

    A subclass declares ``target_key``, ``target_length_key`` and ``manifest_target`` (the
    manifest key validated: "text" or "label") and implements ``_vocabulary`` (what targets are
    checked against) and ``_target`` (an entry's target ids), plus ``output_types``. A subclass
    whose ``dataloader`` takes more split parameters builds its loader with ``_build_loader``,
    which also takes a fixed length and generated noise clips (see :class:`AudioDataset`).
    """

    sample_rate: int
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

    def evaluation_split(self, path: str, **split_params: Any) -> dict[str, Any]:
        """The split parameters of a loader over the manifest ``path``: ``split_params`` with
        ``manifest_filepath=path`` (a manifest, or several separated by commas)."""
        return {**split_params, "manifest_filepath": path}

    def __init__(
        self,
        sample_rate: int = 16000,
        int_values: bool = False,
        trim_silence: bool = False,
        augmentor: Mapping[str, Mapping[str, Any]] | None = None,
        bad_data: str = "fail",
    ) -> None:
        check("sample_rate", sample_rate, positive_int)
        check("bad_data", bad_data, in_(("fail", "skip")))
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
        """Entries that pass validation and the problems found (cached per arguments).

        The manifests' notes (resampling, mixdown) and what was skipped are logged as warnings
        once per manifest, unless ``bad_data: fail`` refuses the data (the error lists why).
        """
        _check_durations(min_duration, max_duration)
        paths = _manifest_list(manifest_filepath)
        key = (tuple(paths), min_duration, max_duration)
        if key not in self._reports:
            entries, problems, reports = [], [], []
            for path in paths:
                report = validate_manifest(
                    path, labels=self._vocabulary(), sample_rate=self.sample_rate, policy="skip",
                    min_duration=min_duration, max_duration=max_duration,
                    target=self.manifest_target,
                )
                entries.extend(report.entries)
                problems.extend(report.problems)
                reports.append(report)
            if not (problems and self.bad_data == "fail"):
                for report in reports:
                    _log_report(report)
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
        found = list(problems) if self.bad_data == "fail" else []
        if split == "train" and self.augmentor is not None:
            found.extend(f"data.params.{problem}" for problem in self.augmentor.problems())
        return found

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
        return self._build_loader(split, manifest_filepath, batch_size, shuffle, num_workers,
                                  min_duration, max_duration, drop_last, pin_memory, bucketing)

    def _build_loader(
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
        *,
        fixed_length: int | None = None,
        noise_clips: NoiseClips | None = None,
        noise_target: int = 0,
    ) -> DataLoader:
        """:meth:`dataloader`'s loader, with :class:`AudioDataset`'s ``fixed_length`` (samples;
        random crops in training) and generated ``noise_clips`` of target ``noise_target``."""
        _check_loader_args(batch_size, num_workers, {"shuffle": shuffle, "drop_last": drop_last,
                                                     "pin_memory": pin_memory,
                                                     "bucketing": bucketing})
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
            fixed_length=fixed_length,
            random_crop=split == "train",
            noise_clips=noise_clips,
            noise_target=noise_target,
            noise_seed=("train", "validation", "test").index(split)
            if split in ("train", "validation", "test") else 3,
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


# (manifest, its size and mtime, message) already logged by this process: a training run
# validates its data before building the model and again in the model's own data source
_LOGGED: set[tuple[str, int, int, str]] = set()


def _log_report(report: ManifestReport) -> None:
    """Warn of a manifest's notes and of the entries left out, once per manifest and message:
    ``warning: m.json: 3 files are at 8000 Hz; resampled to 16000 Hz``, ``warning: m.json:
    skipped 1 entry (1 missing file)``."""
    messages = list(report.notes)
    if report.skipped:
        counts = ", ".join(f"{n} {reason}" for reason, n in sorted(report.skipped.items()))
        total = sum(report.skipped.values())
        messages.append(f"skipped {total} {'entry' if total == 1 else 'entries'} ({counts})")
    try:
        found = os.stat(os.path.expanduser(report.path))
        stamp = (found.st_size, found.st_mtime_ns)
    except OSError:
        stamp = (-1, -1)
    for message in messages:
        key = (os.path.abspath(os.path.expanduser(report.path)), *stamp, message)
        if key not in _LOGGED:
            _LOGGED.add(key)
            logger.warning("warning: %s: %s", report.path, message)



"""Tests of the ASR data sources, audio reading, augmentation and bucketing."""

from __future__ import annotations

import logging
import math
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch.utils.data import DistributedSampler, SequentialSampler

import neuralgraph as ng
from neuralgraph import UserError
from neuralgraph_asr.data import (
    AudioToBPEDataset,
    AudioToCharDataset,
    AudioToClassificationLabelDataset,
)
from neuralgraph_audio import (
    AudioAugmentor,
    DurationBucketBatchSampler,
    PadCollate,
    formant_shift,
    read_audio,
    read_manifest,
    trim_silence,
)


def _manifest_items(corpus, **changes):
    return [{"audio_filepath": str(f), "duration": d, "text": t, **changes}
            for f, d, t in zip(corpus.files, corpus.durations, corpus.texts)]


class TestReadAudio:
    def test_resamples_8k_to_16k(self, corpus, tmp_path):
        """An 8 kHz file comes back at 16 kHz with twice as many samples."""
        data, _ = sf.read(corpus.files[0], dtype="float32")
        low = tmp_path / "low.wav"
        sf.write(low, data[::2], 8000)
        n = sf.info(low).frames
        samples = read_audio(str(low), sample_rate=16000)
        assert samples.dtype == torch.float32 and samples.shape == (2 * n,)

    def test_stereo_is_mixed_down(self, tmp_path):
        """Channels are averaged to one."""
        path = tmp_path / "st.wav"
        sf.write(path, np.stack([np.full(800, 0.5), np.full(800, -0.25)], axis=1), 16000)
        samples = read_audio(str(path), sample_rate=16000)
        assert samples.shape == (800,) and torch.allclose(samples, torch.full((800,), 0.125))

    def test_offset_and_duration(self, corpus):
        """offset and duration select a segment, in seconds."""
        whole = read_audio(str(corpus.files[1]), sample_rate=16000)
        part = read_audio(str(corpus.files[1]), sample_rate=16000, offset=0.5, duration=0.25)
        assert torch.equal(part, whole[8000:12000])

    def test_int_values(self, corpus):
        """int_values reads the same waveform through 32-bit integers."""
        a = read_audio(str(corpus.files[0]), sample_rate=16000)
        b = read_audio(str(corpus.files[0]), sample_rate=16000, int_values=True)
        assert torch.allclose(a, b, atol=1e-6)

    def test_real_recording(self, librivox_manifest):
        """A LibriVox recording reads at its manifest duration."""
        entry = read_manifest(librivox_manifest)[0][1]
        samples = read_audio(entry.audio_filepath, sample_rate=16000)
        assert samples.shape[0] == round(entry.duration * 16000)


class TestTrimSilence:
    def test_cuts_leading_and_trailing_silence(self):
        """One second of silence on each side of a tone is removed, within a frame."""
        tone = torch.sin(torch.arange(8000) / 3.0)
        trimmed = trim_silence(torch.cat([torch.zeros(16000), tone, torch.zeros(16000)]))
        assert 8000 <= trimmed.numel() <= 8000 + 2 * 1024 + 512
        assert trimmed.abs().max() > 0.9

    def test_speech_padding_is_removed(self, corpus):
        """Padding a recording with silence does not change what trimming keeps."""
        speech = read_audio(str(corpus.files[0]), sample_rate=16000)
        padded = torch.cat([torch.zeros(16000), speech, torch.zeros(16000)])
        assert abs(trim_silence(padded).numel() - trim_silence(speech).numel()) <= 1024

    def test_silence_stays(self):
        """An all-zero signal is returned as it is."""
        assert trim_silence(torch.zeros(100)).shape == (100,)


class TestAudioAugmentor:
    def test_speed(self):
        """Speed 1.5 shortens the signal to two thirds."""
        aug = AudioAugmentor({"speed": {"prob": 1.0, "rates": [1.5]}}, 16000)
        assert aug(torch.randn(24000)).shape == (16000,)

    def test_gain_and_noise(self):
        """Gain scales the signal; noise at 20 dB SNR adds 1/10 of its RMS."""
        x = torch.sin(torch.arange(16000) / 5.0)
        gain = AudioAugmentor({"gain": {"min_gain_dbfs": 6.0, "max_gain_dbfs": 6.0}}, 16000)
        assert torch.allclose(gain(x), x * 10 ** (6 / 20))
        noise = AudioAugmentor({"noise": {"min_snr_db": 20.0, "max_snr_db": 20.0}}, 16000)
        added = noise(x) - x
        assert abs(float(added.std() / x.pow(2).mean().sqrt()) - 0.1) < 0.01

    @pytest.mark.parametrize("rate", [8000, 12000])
    def test_band_limit(self, rate):
        """band_limit keeps the length and a tone below rate/2, and removes one above it."""
        t = torch.arange(16000) / 16000
        low, high = torch.sin(2 * torch.pi * 300 * t), torch.sin(2 * torch.pi * 7000 * t)
        aug = AudioAugmentor({"band_limit": {"rates": [rate]}}, 16000)
        out = aug(low + high)
        spectrum = torch.fft.rfft(out).abs()
        assert out.shape == (16000,)
        assert spectrum[300] > 0.95 * torch.fft.rfft(low).abs()[300]
        assert spectrum[7000] < 0.05 * torch.fft.rfft(high).abs()[7000]

    @staticmethod
    def _vowel(f0: float = 120.0, formant: float = 1000.0, seconds: float = 1.0) -> torch.Tensor:
        """A pulse train at ``f0`` through one resonance at ``formant`` Hz: ``(T,)``."""
        rate, n = 16000, int(16000 * seconds)
        pulses = torch.zeros(n)
        pulses[:: round(rate / f0)] = 1.0
        r, theta = 0.9, 2 * math.pi * formant / rate
        a = torch.tensor([1.0, -2 * r * math.cos(theta), r * r])  # a two-pole resonator
        y = AF.lfilter(pulses, a, torch.tensor([1.0, 0.0, 0.0]), clamp=False)
        return y / y.abs().max()

    @staticmethod
    def _centroid_hz(x: torch.Tensor) -> float:
        """The power-weighted mean frequency below 5 kHz of the average STFT power spectrum."""
        window = torch.hann_window(512)
        power = torch.stft(x, 512, 128, window=window, return_complex=True).abs().pow(2).mean(1)
        hz = torch.arange(power.numel()) * 16000 / 512
        band = hz < 5000
        return float((power[band] * hz[band]).sum() / power[band].sum())

    @staticmethod
    def _pitch_hz(x: torch.Tensor) -> float:
        """The autocorrelation's strongest lag between 2.5 and 20 ms, as a frequency."""
        ac = torch.fft.irfft(torch.fft.rfft(x, n=2 * x.numel()).abs().pow(2))[: x.numel()]
        return 16000 / float(ac[40:320].argmax() + 40)

    @pytest.mark.parametrize("ratio", [0.85, 1.2])
    def test_formant_shift(self, ratio):
        """formant_shift moves the spectrum's weight by ``ratio``, keeps pitch and length."""
        x = self._vowel()
        y = formant_shift(x, ratio)
        assert y.shape == x.shape
        assert abs(self._centroid_hz(y) / self._centroid_hz(x) - ratio) < 0.04
        assert abs(self._pitch_hz(y) - self._pitch_hz(x)) < 2

    def test_formant_augmentor(self):
        """The augmentor's formant step keeps the length; ratio 1 or short audio is unchanged."""
        x = self._vowel(seconds=0.5)
        aug = AudioAugmentor({"formant": {"min_ratio": 0.9, "max_ratio": 1.1}}, 16000)
        assert aug(x).shape == x.shape and not torch.equal(aug(x), x)
        assert torch.equal(formant_shift(x, 1.0), x)
        assert torch.equal(formant_shift(x[:400], 1.2), x[:400])

    def test_silence(self):
        """silence puts ``value`` before and after the audio for times in the given ranges."""
        x = torch.ones(1000)
        aug = AudioAugmentor({"silence": {
            "min_start_silence_secs": 0.1, "max_start_silence_secs": 0.1,
            "min_end_silence_secs": 0.0, "max_end_silence_secs": 0.5}}, 16000)
        for _ in range(5):
            y = aug(x)
            assert 1000 + 1600 <= y.numel() <= 1000 + 1600 + 8000
            assert torch.equal(y[:1600], torch.zeros(1600))
            assert torch.equal(y[1600:2600], x)
            assert not y[2600:].any()
        assert torch.equal(AudioAugmentor({"silence": {}}, 16000)(x), x)  # NeMo's default: none

    def test_prob_zero(self):
        """With prob 0 nothing changes."""
        x = torch.randn(1000)
        aug = AudioAugmentor({"white_noise": {"prob": 0.0}, "speed": {"prob": 0.0}}, 16000)
        assert torch.equal(aug(x), x)

    @pytest.mark.parametrize(("config", "message"), [
        ({"echo": {}}, "must be among"),
        ({"gain": {"prob": 2}}, r"'augmentor.gain.prob' must be in \[0, 1\] \(got 2\)"),
        ({"gain": {"min_gain": 1}}, "keys must be among"),
        ({"noise": {"min_snr_db": 30, "max_snr_db": 10}}, "min_snr_db must be <= max_snr_db"),
        ({"speed": {"rates": [0]}},
         r"'augmentor.speed.rates\[0\]' must be a number in \[0.1, 10\]"),
        ({"band_limit": {"rates": [8000.5]}}, "integer sample rates"),
        ({"band_limit": {"rates": []}}, "integer sample rates"),
        ({"band_limit": {"rates": [16000]}}, "below the sample rate 16000"),
        ({"formant": {"min_ratio": 0.2}}, r"'augmentor.formant.min_ratio' must be in \[0.5, 2\]"),
        ({"formant": {"min_ratio": 1.2, "max_ratio": 1.1}}, "min_ratio must be <= max_ratio"),
        ({"silence": {"min_end_silence_secs": -1.0}},
         "'augmentor.silence.min_end_silence_secs' must be >= 0"),
    ])
    def test_bad_config(self, config, message):
        """Bad settings are ValueErrors saying what must hold."""
        with pytest.raises(ValueError, match=message):
            AudioAugmentor(config, 16000)

    @pytest.mark.parametrize(("config", "parameter"), [
        ({"speed": {"prob": 2}}, "augmentor.speed.prob"),
        ({"speed": {"rates": [1.0, 20]}}, "augmentor.speed.rates.1"),
        ({"speed": {"num_rates": "5"}}, "augmentor.speed.num_rates"),
        ({"gain": {"max_gain_dbfs": "loud"}}, "augmentor.gain.max_gain_dbfs"),
        ({"gain": 3}, "augmentor.gain"),
        ({"band_limit": {"rates": [8000.5]}}, "augmentor.band_limit.rates"),
        ({"formant": {"max_ratio": 3}}, "augmentor.formant.max_ratio"),
        ({"silence": {"value": "x"}}, "augmentor.silence.value"),
        ([{"speed": {}}], "augmentor"),
    ])
    def test_bad_value_names_its_key(self, config, parameter):
        """A bad setting is a ParameterError naming augmentor.<kind>.<key> (check points there)."""
        with pytest.raises(ng.ParameterError) as info:
            AudioAugmentor(config, 16000)
        assert info.value.parameter == parameter


class TestAudioToCharDataset:
    def test_output_types(self, char_labels):
        """Ports carry the sample rate and the vocabulary size."""
        types = AudioToCharDataset(char_labels, sample_rate=8000).output_types
        assert list(types) == ["audio_signal", "audio_length", "transcripts", "transcript_length"]
        assert types["audio_signal"].elements_type == ng.AudioSignal(8000)
        assert types["transcripts"].elements_type == ng.LabelsType(28)
        assert [a.kind for a in types["transcripts"].axes] == [ng.AxisKind.Batch, ng.AxisKind.Time]

    def test_constructs_on_meta_device(self, char_labels):
        """The constructor touches no file and works under the meta device."""
        with torch.device("meta"):
            source = AudioToCharDataset(char_labels, augmentor={"speed": {"prob": 0.5}})
        assert source.output_types["transcript_length"].elements_type == ng.LengthsType()

    @pytest.mark.parametrize(("kwargs", "message"), [
        ({"labels": "abc"}, "list of characters"),
        ({"sample_rate": 0}, r"'sample_rate' must be a positive int \(got 0\)"),
        ({"bad_data": "ignore"}, "'bad_data' must be one of 'fail', 'skip'"),
        ({"augmentor": {"reverb": {}}}, "must be among"),
    ])
    def test_bad_params(self, char_labels, kwargs, message):
        """Bad data params are ValueErrors."""
        with pytest.raises(ValueError, match=message):
            AudioToCharDataset(**{"labels": char_labels, **kwargs})

    @pytest.mark.parametrize(("kwargs", "parameter"), [
        ({"labels": "abc"}, "labels"), ({"labels": ["a", "b", "a"]}, "labels.2"),
        ({"sample_rate": 16000.0}, "sample_rate"), ({"bad_data": "ignore"}, "bad_data"),
        ({"augmentor": {"noise": {"prob": -1}}}, "augmentor.noise.prob"),
    ])
    def test_bad_param_names_it(self, char_labels, kwargs, parameter):
        """A bad data param is a ParameterError naming it, for check to point at its key."""
        with pytest.raises(ng.ParameterError) as info:
            AudioToCharDataset(**{"labels": char_labels, **kwargs})
        assert info.value.parameter == parameter

    def test_batch(self, corpus, char_labels):
        """A batch is a dict of padded tensors with lengths, transcripts decode to the text."""
        source = AudioToCharDataset(char_labels)
        loader = source.dataloader("validation", str(corpus.manifest), batch_size=3)
        batch = next(iter(loader))
        assert set(batch) == {"audio_signal", "audio_length", "transcripts", "transcript_length"}
        lengths = [round(round(d, 3) * 16000) for d in corpus.durations[:3]]
        assert batch["audio_length"].tolist() == lengths
        assert batch["audio_signal"].shape == (3, max(lengths))
        assert batch["audio_signal"].dtype == torch.float32
        assert batch["transcripts"].dtype == torch.int64
        assert batch["transcript_length"].tolist() == [len(t) for t in corpus.texts[:3]]
        for row, n, text in zip(batch["transcripts"], batch["transcript_length"], corpus.texts):
            assert source.ids_to_text(row[:n].tolist()) == text
        short = int(batch["audio_length"].argmin())
        assert batch["audio_signal"][short, lengths[short]:].abs().sum() == 0
        assert len(loader) == 2

    def test_workers(self, corpus, char_labels):
        """num_workers=2 loads the same batches as the main process."""
        source = AudioToCharDataset(char_labels)
        a = list(source.dataloader("test", str(corpus.manifest), batch_size=2, num_workers=2))
        b = list(source.dataloader("test", str(corpus.manifest), batch_size=2))
        assert len(a) == 3
        for x, y in zip(a, b):
            assert all(torch.equal(x[k], y[k]) for k in x)

    def test_dataset_pickles(self, corpus, char_labels):
        """The torch dataset and collate function pickle (spawn/forkserver workers)."""
        source = AudioToCharDataset(char_labels, augmentor={"gain": {"prob": 0.5}})
        loader = source.dataloader("train", str(corpus.manifest), batch_size=2)
        dataset = pickle.loads(pickle.dumps(loader.dataset))
        assert dataset[0]["transcripts"].tolist() == source.text_to_ids(corpus.texts[0])
        assert pickle.loads(pickle.dumps(loader.collate_fn)).lengths == loader.collate_fn.lengths

    def test_relative_manifest_and_several(self, corpus, char_labels, librivox_manifest):
        """A comma-separated manifest list concatenates; relative paths and real audio load."""
        source = AudioToCharDataset(char_labels)
        loader = source.dataloader("test", f"{corpus.manifest},{librivox_manifest}",
                                   batch_size=11)
        batch = next(iter(loader))
        assert batch["audio_signal"].shape == (11, 7.1 * 16000)

    def test_duration_filters(self, corpus, char_labels):
        """min_duration / max_duration select utterances."""
        loader = AudioToCharDataset(char_labels).dataloader(
            "train", str(corpus.manifest), batch_size=8, min_duration=1.0, max_duration=2.0)
        assert len(loader.dataset) == 3

    def test_augmentation_only_in_training(self, corpus, char_labels):
        """The augmentor changes training audio and leaves validation audio alone."""
        source = AudioToCharDataset(char_labels, augmentor={"speed": {"rates": [2.0]}})
        n = round(round(corpus.durations[0], 3) * 16000)  # the manifest's duration is read
        train = source.dataloader("train", str(corpus.manifest), batch_size=1)
        valid = source.dataloader("validation", str(corpus.manifest), batch_size=1)
        assert next(iter(valid))["audio_length"].item() == n
        assert abs(next(iter(train))["audio_length"].item() - n / 2) <= 1

    def test_resampled_batch(self, corpus, char_labels, tmp_path, write_manifest):
        """An 8 kHz file in the manifest arrives at the data source's 16 kHz."""
        data, _ = sf.read(corpus.files[3], dtype="float32")
        sf.write(tmp_path / "low.flac", data[::2], 8000)
        frames = sf.info(tmp_path / "low.flac").frames
        m = write_manifest(tmp_path / "m.json", [{"audio_filepath": "low.flac",
                                                  "duration": frames / 8000, "text": "go"}])
        batch = next(iter(AudioToCharDataset(char_labels).dataloader("train", str(m))))
        assert batch["audio_length"].item() == 2 * frames

    def test_trim_silence(self, corpus, char_labels, tmp_path, write_manifest):
        """trim_silence removes a second of padding silence."""
        data, _ = sf.read(corpus.files[5], dtype="float32")
        sf.write(tmp_path / "pad.wav", np.concatenate([np.zeros(16000, "float32"), data]), 16000)
        m = write_manifest(tmp_path / "m.json", [{"audio_filepath": "pad.wav",
                                                  "duration": 1 + len(data) / 16000,
                                                  "text": "stop"}])
        batch = next(iter(AudioToCharDataset(char_labels, trim_silence=True).dataloader(
            "test", str(m))))
        assert batch["audio_length"].item() < len(data) + 2048

    def test_validate_and_fail(self, corpus, char_labels, tmp_path, write_manifest):
        """validate lists the problems; the loader then refuses under bad_data='fail'."""
        items = [*_manifest_items(corpus), {"audio_filepath": "gone.wav", "duration": 1,
                                            "text": "x"}]
        m = str(write_manifest(tmp_path / "m.json", items))
        source = AudioToCharDataset(char_labels)
        problems = source.validate("train", manifest_filepath=m, batch_size=4)
        assert problems == [f"{m}:7: audio file not found ({tmp_path / 'gone.wav'})"]
        with pytest.raises(UserError, match="1 problem in the train data"):
            source.dataloader("train", m)

    def test_skip_bad_data(self, corpus, char_labels, tmp_path, write_manifest, caplog):
        """bad_data='skip' drops bad entries, validate reports nothing, the log counts them."""
        items = [*_manifest_items(corpus), "{oops", {"audio_filepath": "gone.wav",
                                                     "duration": 1, "text": "x"}]
        m = str(write_manifest(tmp_path / "m.json", items))
        source = AudioToCharDataset(char_labels, bad_data="skip")
        with caplog.at_level(logging.WARNING, logger="neuralgraph.audio"):
            assert source.validate("train", manifest_filepath=m) == []
        assert "skipped 2 entries (1 malformed json, 1 missing file)" in caplog.text
        assert len(source.dataloader("train", m).dataset) == 6

    def test_validate_missing_manifest(self, char_labels, tmp_path):
        """A missing manifest is a problem under either policy."""
        source = AudioToCharDataset(char_labels, bad_data="skip")
        problems = source.validate("train", manifest_filepath=str(tmp_path / "x.json"))
        assert problems == [f"manifest file not found: {tmp_path / 'x.json'}"]
        assert source.validate("train") == ["data.train: manifest_filepath is required"]

    def test_bad_split_params(self, corpus, char_labels):
        """Bad loader arguments are UserErrors."""
        source = AudioToCharDataset(char_labels)
        with pytest.raises(UserError, match="batch_size"):
            source.dataloader("train", str(corpus.manifest), batch_size=0)
        with pytest.raises(UserError, match="min_duration must be <= max_duration"):
            source.dataloader("train", str(corpus.manifest), min_duration=3, max_duration=1)
        with pytest.raises(UserError, match="no usable utterances"):
            source.dataloader("train", str(corpus.manifest), max_duration=0.1)


class TestBucketing:
    def test_batches_group_similar_durations(self, corpus, char_labels):
        """Without shuffling, batches follow duration order; every utterance appears once."""
        loader = AudioToCharDataset(char_labels).dataloader(
            "validation", str(corpus.manifest), batch_size=2, bucketing=True)
        batches = list(loader.batch_sampler)
        order = np.argsort(corpus.durations).tolist()
        assert batches == [order[0:2], order[2:4], order[4:6]]
        assert len(list(loader)) == len(loader) == 3

    def test_less_padding(self, corpus, char_labels):
        """Bucketed batches carry less padding than duration-blind ones."""
        def padding(loader):
            return sum(b["audio_signal"].numel() - b["audio_length"].sum().item() for b in loader)

        source = AudioToCharDataset(char_labels)
        plain = source.dataloader("test", str(corpus.manifest), batch_size=2)
        bucketed = source.dataloader("test", str(corpus.manifest), batch_size=2, bucketing=True)
        assert padding(bucketed) < padding(plain)

    def test_shuffle_and_drop_last(self):
        """Shuffled pools change order between passes; drop_last drops the one short batch."""
        torch.manual_seed(0)
        durations = np.arange(101, dtype=float)
        sampler = torch.utils.data.RandomSampler(range(101))
        batches = DurationBucketBatchSampler(sampler, 10, True, durations, pool_batches=2)
        assert batches.shuffle and len(batches) == 10
        first, second = list(batches), list(batches)
        assert len(first) == 10 and all(len(b) == 10 for b in first)
        assert first != second
        spread = np.mean([np.ptp(durations[b]) for b in first])
        assert spread < 60  # random batches of 10 out of 101 spread over ~80 on average

    def test_rank_split(self, monkeypatch):
        """Under torch.distributed each rank gets an equal share, together all indices."""
        durations = np.arange(25, dtype=float)
        dist = torch.distributed
        monkeypatch.setattr(dist, "is_initialized", lambda: True)
        monkeypatch.setattr(dist, "get_world_size", lambda: 2)
        seen = []
        for rank in (0, 1):
            monkeypatch.setattr(dist, "get_rank", lambda rank=rank: rank)
            batches = DurationBucketBatchSampler(
                torch.utils.data.RandomSampler(range(25)), 4, False, durations)
            out = list(batches)
            assert len(out) == len(batches) == 4
            seen += [i for b in out for i in b]
        assert sorted(set(seen)) == list(range(25)) and len(seen) == 26

    def test_distributed_sampler_is_not_split_again(self, corpus, char_labels):
        """Given Lightning's DistributedSampler, durations come from its dataset."""
        loader = AudioToCharDataset(char_labels).dataloader("train", str(corpus.manifest))
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=1, shuffle=False)
        batches = DurationBucketBatchSampler(sampler, 2, False)
        assert len(batches) == 2
        assert sorted(i for b in batches for i in b) == [1, 3, 5]

    @pytest.mark.parametrize("in_hook", [True, False])
    def test_lightning_can_inject_its_sampler(self, corpus, char_labels, in_hook):
        """Lightning's dataloader re-creation swaps in its DistributedSampler, whether the loader
        was made in a LightningModule hook (arguments recorded) or not."""
        from contextlib import ExitStack

        from lightning_fabric.utilities.data import _replace_dunder_methods
        from pytorch_lightning.utilities.data import _update_dataloader
        from torch.utils.data import BatchSampler, DataLoader

        with ExitStack() as stack:
            if in_hook:  # what Lightning does around `train_dataloader()`
                stack.enter_context(_replace_dunder_methods(DataLoader, "dataset"))
                stack.enter_context(_replace_dunder_methods(BatchSampler))
            loader = AudioToCharDataset(char_labels).dataloader(
                "train", str(corpus.manifest), batch_size=2, shuffle=True, bucketing=True)
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=0, shuffle=True)
        new = _update_dataloader(loader, sampler)
        assert new.batch_sampler.sampler is sampler and new.batch_sampler.shuffle
        assert sum(len(b["audio_length"]) for b in new) == 3

    def test_needs_durations(self):
        """Without durations, nor a dataset that has them, the sampler refuses."""
        with pytest.raises(ValueError, match="needs durations"):
            DurationBucketBatchSampler(SequentialSampler(range(3)), 2, False)


class TestAudioToBPEDataset:
    def test_missing_model(self, tmp_path):
        """A tokenizer_model that does not exist is a ValueError naming it."""
        with pytest.raises(ValueError, match=r"tokenizer_model file not found: .*none\.model"):
            AudioToBPEDataset(str(tmp_path / "none.model"))

    def test_ports_and_batch(self, bpe_model, corpus):
        """transcripts declare the SentencePiece vocabulary and decode back to the text."""
        source = AudioToBPEDataset(str(bpe_model))
        assert AudioToBPEDataset.artifacts == ("tokenizer_model",)
        assert source.output_types["transcripts"].elements_type == ng.LabelsType(40)
        batch = next(iter(source.dataloader("train", str(corpus.manifest), batch_size=6)))
        for row, n, text in zip(batch["transcripts"], batch["transcript_length"], corpus.texts):
            assert source.ids_to_text(row[:n].tolist()) == text
        assert batch["transcript_length"].max() < max(len(t) for t in corpus.texts)


class TestAudioToClassificationLabelDataset:
    def test_batch(self, corpus, tmp_path, write_manifest):
        """label is the class index of the manifest's label; label_length is ones."""
        items = [{"audio_filepath": str(f), "duration": d, "label": w}
                 for f, d, w in zip(corpus.files, corpus.durations, ["yes", "no"] * 3)]
        m = str(write_manifest(tmp_path / "m.json", items))
        source = AudioToClassificationLabelDataset(["no", "yes"])
        types = source.output_types
        assert types["label"].elements_type == ng.LabelsType(2)
        assert list(types) == ["audio_signal", "audio_length", "label", "label_length"]
        batch = next(iter(source.dataloader("train", m, batch_size=6)))
        assert batch["label"].tolist() == [1, 0, 1, 0, 1, 0]
        assert batch["label_length"].tolist() == [1] * 6

    def test_unknown_label_is_a_problem(self, corpus, tmp_path, write_manifest):
        """A label outside the list is reported with its line."""
        m = str(write_manifest(tmp_path / "m.json", [
            {"audio_filepath": str(corpus.files[0]), "duration": corpus.durations[0],
             "label": "left"}]))
        problems = AudioToClassificationLabelDataset(["no", "yes"]).validate("test",
                                                                             manifest_filepath=m)
        assert problems == [f"{m}:1: label 'left' is not one of the 2 labels ({corpus.files[0]})"]


class TestPadCollate:
    def test_pads_and_stacks(self):
        """1-D items are zero padded with lengths; 0-dim items are stacked."""
        collate = PadCollate({"a": "a_len"})
        batch = collate([{"a": torch.ones(2), "b": torch.tensor(3)},
                         {"a": torch.ones(3), "b": torch.tensor(4)}])
        assert batch["a"].tolist() == [[1, 1, 0], [1, 1, 1]]
        assert batch["a_len"].tolist() == [2, 3] and batch["b"].tolist() == [3, 4]

"""The ASR user path: train from YAML with the CLI, transcribe, evaluate, export, restore."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from neuralgraph_asr.decoding import flashlight_available
from tests.asr.conftest import write_manifest_lines
from tests.conftest import ROOT, run_cli

DIGITS = ROOT / "examples" / "asr" / "data" / "digits"
GRAPH = ROOT / "examples" / "asr" / "digits_small.yaml"


def _subset(src: Path, dst: Path, n: int) -> Path:
    lines = src.read_text().splitlines()[:n]
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        entry["audio_filepath"] = str(DIGITS / entry["audio_filepath"])
    return write_manifest_lines(dst, entries)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits_small model trained 2 epochs on 48 utterances through `neuralgraph train`."""
    work = tmp_path_factory.mktemp("asr_e2e")
    train = _subset(DIGITS / "train_manifest.json", work / "train.json", 48)
    dev = _subset(DIGITS / "dev_manifest.json", work / "dev.json", 16)
    result = run_cli("train", str(GRAPH), "trainer.max_epochs=2",
                     f"data.train.manifest_filepath={train}",
                     f"data.validation.manifest_filepath={dev}",
                     f"data.test.manifest_filepath={dev}",
                     "data.train.num_workers=0", "data.validation.num_workers=0",
                     "--exp-dir", str(work / "exp"), cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    archive = work / "exp" / "digits_small" / "version_0" / "digits_small.ngm"
    assert archive.is_file()
    return archive


class TestTrainedArchive:
    def test_transcribe_cli(self, trained: Path) -> None:
        """`neuralgraph transcribe` prints one line per audio file."""
        files = sorted((DIGITS / "dev").glob("*.flac"))[:2]
        result = run_cli("transcribe", "--model", str(trained), *map(str, files), "--json")
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert [line["audio_filepath"] for line in lines] == list(map(str, files))
        assert all(isinstance(line["text"], str) for line in lines)
        assert "transcribe: 2/2 files (100%)" in result.stderr  # progress off a terminal

    def test_transcribe_beam_matches_python_api(self, trained: Path) -> None:
        """Beam search runs, and the Python API agrees with the CLI's greedy output."""
        from neuralgraph_asr.model import ASRModel

        model = ASRModel.restore_from(trained)
        files = sorted((DIGITS / "dev").glob("*.flac"))[:3]
        greedy = model.transcribe(files, batch_size=2)
        beam = model.transcribe(files, batch_size=2, decoder="beam", beam_size=4)
        assert len(greedy) == len(beam) == 3
        from neuralgraph_audio import read_audio

        log_probs, lengths = model.log_probs([read_audio(str(f), sample_rate=16000)
                                              for f in files[:2]])
        ids = model.decoder("beam", beam_size=4)(log_probs, lengths)
        assert [model.data_source.ids_to_text(i) for i in ids] == beam[:2]
        result = run_cli("transcribe", "--model", str(trained), *map(str, files))
        assert [line.split("\t")[1] for line in result.stdout.splitlines()] == greedy

    def test_evaluate_json(self, trained: Path) -> None:
        """`neuralgraph evaluate --json` prints a WER fraction."""
        result = run_cli("evaluate", "--model", str(trained), "--manifest",
                         str(DIGITS / "dev_manifest.json"), "--json")
        assert result.returncode == 0, result.stderr
        metrics = json.loads(result.stdout)
        assert 0.0 <= metrics["wer"] <= 1.5 and metrics["utterances"] == 60
        assert "evaluate: 8/8 batches (100%)" in result.stderr  # 60 utterances, batch size 8

    def test_evaluate_takes_the_decoder(self, trained: Path, tmp_path: Path) -> None:
        """Overrides choose beam search with a lexicon and LM made by `neuralgraph asr lm`;
        a bad choice exits 2 naming the metric."""
        result = run_cli("asr", "lm", "--manifest", str(DIGITS / "train_manifest.json"),
                         "--out", str(tmp_path / "lm"))
        assert result.returncode == 0, result.stderr
        base = ("evaluate", "--model", str(trained), "--manifest",
                str(DIGITS / "dev_manifest.json"), "--json")
        choices = {
            "greedy": [],
            "beam": ["++metrics.wer.params.decoding=beam", "++metrics.wer.params.beam_size=8"],
        }
        if flashlight_available():
            choices["lexicon+lm"] = [*choices["beam"],
                                     f"++metrics.wer.params.lexicon={tmp_path / 'lm/lexicon.txt'}",
                                     f"++metrics.wer.params.lm={tmp_path / 'lm/lm.arpa'}"]
        wer = {}
        for name, overrides in choices.items():
            result = run_cli(*base, *overrides)
            assert result.returncode == 0, result.stderr
            wer[name] = json.loads(result.stdout)["wer"]
            assert 0.0 <= wer[name] <= 1.5
        bad = run_cli(*base, "++metrics.wer.params.decoding=viterbi")
        assert bad.returncode == 2 and "decoding must be one of" in bad.stderr
        assert "metrics.wer" in bad.stderr and "Traceback" not in bad.stderr

    @pytest.mark.skipif(not flashlight_available(), reason="flashlight-text is not installed")
    def test_transcribe_with_lexicon_gives_lexicon_words(self, trained: Path,
                                                        tmp_path: Path) -> None:
        """`transcribe --decoder beam --lexicon` outputs only words of the lexicon."""
        result = run_cli("asr", "lm", "--manifest", str(DIGITS / "train_manifest.json"),
                         "--out", str(tmp_path / "lm"))
        assert result.returncode == 0, result.stderr
        words = {line.split()[0] for line in (tmp_path / "lm/lexicon.txt").read_text().splitlines()}
        files = sorted((DIGITS / "dev").glob("*.flac"))[:4]
        result = run_cli("transcribe", "--model", str(trained), *map(str, files), "--json",
                         "--decoder", "beam", "--lexicon", str(tmp_path / "lm/lexicon.txt"),
                         "--lm", str(tmp_path / "lm/lm.arpa"))
        assert result.returncode == 0, result.stderr
        texts = [json.loads(line)["text"] for line in result.stdout.splitlines()]
        assert len(texts) == 4 and all(set(t.split()) <= words for t in texts)

    def test_vtln_warps_the_features_and_keeps_the_best_warp(self, trained: Path) -> None:
        """log_probs(warps=...) reruns the graph on warped mel features; VTLN per speaker
        gives every file of a speaker the warp with the best summed best-path score."""
        from neuralgraph_asr.model import ASRModel
        from neuralgraph_asr.vtln import best_path_scores
        from neuralgraph_audio import VocalTractLengthPerturbation, read_audio

        model = ASRModel.restore_from(trained)
        files = sorted((DIGITS / "dev").glob("*.flac"))[:4]
        audio = [read_audio(str(f), sample_rate=16000) for f in files]
        plain, lengths = model.log_probs(audio)
        same, _ = model.log_probs(audio, warps=[1.0] * 4)
        torch.testing.assert_close(same, plain)
        warped, warped_lengths = model.log_probs(audio, warps=[1.1, 0.9, 1.0, 1.15])
        assert torch.equal(warped_lengths, lengths) and not torch.allclose(warped, plain)
        with torch.no_grad():  # the same by hand: features, warp, the graph after them
            env = model.run({"data.audio_signal": torch.nn.utils.rnn.pad_sequence(
                audio, batch_first=True), "data.audio_length": torch.tensor(
                [len(a) for a in audio])})
            warp = VocalTractLengthPerturbation(sample_rate=16000).warp(
                env["preprocessor.processed_signal"], torch.tensor([1.1, 0.9, 1.0, 1.15]))
            by_hand = model.run({"preprocessor.processed_signal": warp,
                                 "preprocessor.processed_length":
                                     env["preprocessor.processed_length"]})
        torch.testing.assert_close(warped, by_hand["decoder.logprobs"])

        grid = (0.9, 1.0, 1.1)
        speakers = ["a", "a", "b", "b"]
        chosen = model._vtln_warps(files, 3, "speaker", speakers, grid)
        totals = torch.stack([best_path_scores(*model.log_probs(audio, warps=[w] * 4))
                              for w in grid], dim=1)  # (4, K)
        for members in ([0, 1], [2, 3]):
            best = grid[int(totals[members].sum(0).argmax())]
            assert [chosen[i] for i in members] == [best, best]
        texts = model.transcribe(files, batch_size=3, vtln="speaker", speakers=speakers,
                                 vtln_warps=grid)
        by_warp = {w: model.transcribe(files, batch_size=3, vtln="speaker", vtln_warps=[w])
                   for w in grid}
        assert texts == [by_warp[w][i] for i, w in enumerate(chosen)]

    def test_transcribe_vtln_cli(self, trained: Path) -> None:
        """`transcribe --vtln speaker|utterance` prints a line per file; a warp outside
        [0.5, 2] exits 2 without a traceback."""
        files = [str(f) for f in sorted((DIGITS / "dev").glob("*.flac"))[:3]]
        for mode in ("speaker", "utterance"):
            result = run_cli("transcribe", "--model", str(trained), *files, "--vtln", mode,
                             "--vtln-warps", "0.9", "1.0", "1.1")
            assert result.returncode == 0, result.stderr
            assert [line.split("\t")[0] for line in result.stdout.splitlines()] == files
            assert "vtln: scoring 3 warps: 3/3 files (100%)" in result.stderr
        bad = run_cli("transcribe", "--model", str(trained), *files, "--vtln", "speaker",
                      "--vtln-warps", "5")
        assert bad.returncode == 2 and "vtln_warps" in bad.stderr
        assert "Traceback" not in bad.stderr

    def test_transcribe_manifest_wer_equals_evaluate(self, trained: Path) -> None:
        """`transcribe --manifest --wer --json` scores the manifest's texts as `evaluate`
        does (greedy: the same WER), and lists the manifest's files without --wer."""
        manifest = DIGITS / "dev_manifest.json"
        result = run_cli("transcribe", "--model", str(trained), "--manifest", str(manifest),
                         "--wer", "--json", "--batch-size", "8")
        assert result.returncode == 0, result.stderr
        ours = json.loads(result.stdout)
        result = run_cli("evaluate", "--model", str(trained), "--manifest", str(manifest),
                         "--json")
        assert result.returncode == 0, result.stderr
        assert ours["utterances"] == 60 and ours["words"] > 60
        assert ours["wer"] == pytest.approx(json.loads(result.stdout)["wer"], abs=1e-6)
        result = run_cli("transcribe", "--model", str(trained), "--manifest", str(manifest))
        files = [line.split("\t")[0] for line in result.stdout.splitlines()]
        assert files == [str(DIGITS / json.loads(line)["audio_filepath"])
                         for line in manifest.read_text().splitlines()]

    def test_transcribe_manifest_vtln_uses_its_speakers(self, trained: Path,
                                                        tmp_path: Path) -> None:
        """With --manifest, `--vtln speaker` groups files by the manifest's `speaker`: the
        transcripts equal the Python API's with those speakers."""
        from neuralgraph_asr.model import ASRModel

        manifest = _subset(DIGITS / "heldout_manifest.json", tmp_path / "h.json", 6)
        entries = [json.loads(line) for line in manifest.read_text().splitlines()]
        assert len({e["speaker"] for e in entries}) > 1
        grid = ["0.9", "1.0", "1.1"]
        result = run_cli("transcribe", "--model", str(trained), "--manifest", str(manifest),
                         "--vtln", "speaker", "--vtln-warps", *grid, "--json")
        assert result.returncode == 0, result.stderr
        texts = [json.loads(line)["text"] for line in result.stdout.splitlines()]
        model = ASRModel.restore_from(trained)
        expected = model.transcribe([e["audio_filepath"] for e in entries], vtln="speaker",
                                    speakers=[e["speaker"] for e in entries],
                                    vtln_warps=[float(w) for w in grid])
        assert texts == expected

    def test_transcribe_manifest_user_errors(self, trained: Path, tmp_path: Path) -> None:
        """Files and --manifest together, neither, --wer without a manifest, --vtln speaker
        on a manifest without speakers, and a segment (`offset`) each exit 2 saying what is
        wrong."""
        manifest = DIGITS / "dev_manifest.json"
        audio = str(sorted((DIGITS / "dev").glob("*.flac"))[0])
        nameless = write_manifest_lines(tmp_path / "nameless.json", [
            {"audio_filepath": audio, "duration": 1.0, "text": "one"}])
        segment = write_manifest_lines(tmp_path / "segment.json", [
            {"audio_filepath": audio, "duration": 0.5, "offset": 0.2, "text": "one"}])
        cases = {
            "segment": (["--manifest", str(segment)], "have an `offset`"),
            "both": (["--manifest", str(manifest), audio], "got both"),
            "neither": ([], "got neither"),
            "wer": (["--wer", audio], "--wer needs --manifest"),
            "speakers": (["--manifest", str(nameless), "--vtln", "speaker"],
                         "needs a `speaker` on every line"),
        }
        for name, (extra, message) in cases.items():
            result = run_cli("transcribe", "--model", str(trained), *extra)
            assert result.returncode == 2, (name, result.stderr)
            assert message in result.stderr and "Traceback" not in result.stderr, name

    def test_missing_audio_is_user_error(self, trained: Path, tmp_path: Path) -> None:
        """A missing audio file exits 2 with its path, no traceback."""
        result = run_cli("transcribe", "--model", str(trained), str(tmp_path / "nope.flac"))
        assert result.returncode == 2 and "nope.flac" in result.stderr
        assert "Traceback" not in result.stderr

    @pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
    def test_export_matches_pytorch(self, trained: Path, tmp_path: Path, fmt: str) -> None:
        """The exported model gives the PyTorch model's log-probs, at another length too."""
        from neuralgraph.export import export_boundary
        from neuralgraph_asr.model import ASRModel

        out = tmp_path / f"m.{fmt}"
        result = run_cli("export", "--model", str(trained), "--format", fmt, "-o", str(out))
        assert result.returncode == 0, result.stderr
        model = ASRModel.restore_from(trained)
        inputs = export_boundary(model)
        outputs = model.sinks(inputs)
        logprobs = outputs.index("decoder.logprobs")
        signal = 0.1 * torch.randn(2, 27_000, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            env = model.run({"data.audio_signal": signal,
                             "data.audio_length": torch.tensor([27_000, 20_000])})
        feeds = [env[k] for k in inputs]
        if fmt == "onnx":
            ort = pytest.importorskip("onnxruntime")
            session = ort.InferenceSession(str(out))
            got = session.run(None, {i.name: f.numpy() for i, f in
                                     zip(session.get_inputs(), feeds)})[logprobs]
            got = torch.from_numpy(got)
        else:
            with torch.no_grad():
                got = torch.jit.load(str(out))(*feeds)[logprobs]
        torch.testing.assert_close(got, env["decoder.logprobs"], atol=1e-4, rtol=1e-4)

    def test_restore_in_fresh_process(self, trained: Path) -> None:
        """ASRModel.restore_from in a new process transcribes like this one."""
        from neuralgraph_asr.model import ASRModel

        audio = str(sorted((DIGITS / "dev").glob("*.flac"))[0])
        here = ASRModel.restore_from(trained).transcribe([audio])
        code = ("import sys; from neuralgraph_asr.model import ASRModel; "
                "print(ASRModel.restore_from(sys.argv[1]).transcribe([sys.argv[2]])[0])")
        out = subprocess.run([sys.executable, "-c", code, str(trained), audio],
                             capture_output=True, text=True, check=True).stdout
        assert out.rstrip("\n") == here[0]


@pytest.mark.slow
class TestSmallExampleQuality:
    def test_digits_small_learns(self, tmp_path: Path) -> None:
        """The README's main job trains the committed corpus to a usable WER."""
        shutil.copytree(DIGITS, tmp_path / "digits")
        result = run_cli("train", str(GRAPH), f"data_dir={tmp_path / 'digits'}",
                         "--exp-dir", str(tmp_path / "exp"), cwd=tmp_path, timeout=3600)
        assert result.returncode == 0, result.stderr[-3000:]
        archive = tmp_path / "exp" / "digits_small" / "version_0" / "digits_small.ngm"
        result = run_cli("evaluate", "--model", str(archive), "--manifest",
                         str(tmp_path / "digits" / "dev_manifest.json"), "--json")
        assert json.loads(result.stdout)["wer"] < 0.3

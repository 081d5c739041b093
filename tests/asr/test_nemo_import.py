"""`neuralgraph import-nemo`: `.nemo` files saved by NeMo 3.0 itself become `.ngm` archives that
give NeMo's outputs, and hostile `.nemo` files are refused without running anything.

The fixtures (tests/asr/data/nemo/) are written by benchmarks/nemo_import/make_fixtures.py in
NeMo's own environment: three small models (a character and a BPE QuartzNet, a MatchboxNet-style
classifier), NeMo's outputs on real audio, and one training step of the character model (NeMo's
CTC loss and gradients). These tests never import NeMo.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import neuralgraph as ng
from neuralgraph_asr.model import ASRModel
from neuralgraph_asr.nemo_import import (
    MODULE_TARGETS,
    NemoImportError,
    import_nemo,
    read_nemo,
)
from neuralgraph_audio import AudioToMelSpectrogramPreprocessor, AudioToMFCCPreprocessor
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "asr" / "data" / "nemo"
INFO = json.loads((FIXTURES / "inputs.json").read_text(encoding="utf-8"))
MODELS = list(INFO["models"])
TOLERANCE = 1e-4


def _signal(index: int) -> np.ndarray:
    item = INFO["inputs"][index]
    path = ROOT / item["file"]
    if item.get("optional") and not path.is_file():
        pytest.skip("pocketsphinx-testdata is not installed")
    audio, rate = sf.read(path, dtype="float32")
    assert rate == 16000
    start = item.get("offset", 0)
    return audio[start:start + item["samples"] if "samples" in item else None]


def _batch(signals: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in signals])
    x = torch.zeros(len(signals), int(lengths.max()))
    for row, s in enumerate(signals):
        x[row, :len(s)] = torch.from_numpy(s)
    return x, lengths


RUNS = [f"single_{i}" for i in range(len(INFO["inputs"]))] + ["batch"]


def _run_inputs(run: str) -> tuple[torch.Tensor, torch.Tensor]:
    if run == "batch":
        return _batch([_signal(i) for i in INFO["batch"]])
    return _batch([_signal(int(run.split("_")[1]))])


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each fixture imported once (Python API) into a .ngm archive."""
    folder = tmp_path_factory.mktemp("imported")
    out = {}
    for name in MODELS:
        import_nemo(FIXTURES / f"{name}.nemo", folder / f"{name}.ngm")
        out[name] = folder / f"{name}.ngm"
    return out


@pytest.fixture(scope="module")
def restored(archives: dict[str, Path]) -> dict[str, ng.GraphModel]:
    return {name: ng.GraphModel.restore_from(path) for name, path in archives.items()}


class TestMatchesNeMo:
    @pytest.mark.parametrize("run", RUNS)
    @pytest.mark.parametrize("name", MODELS)
    def test_lengths_exact_and_outputs_within_tolerance(
            self, restored: dict[str, ng.GraphModel], name: str, run: str) -> None:
        """The restored archive, run from the data ports as a native graph, gives NeMo's frame
        counts exactly and NeMo's log-probs / logits within 1e-4, alone and in a padded batch."""
        reference = np.load(FIXTURES / f"{name}.npz")
        x, n = _run_inputs(run)
        with torch.no_grad():
            out = restored[name](audio_signal=x, audio_length=n)
        np.testing.assert_array_equal(out["preprocessor.processed_length"].numpy(),
                                      reference[f"{run}_processed_length"])
        if name == "matchboxnet":
            ours, theirs = out["decoder.logits"].numpy(), reference[f"{run}_logits"]
        else:
            np.testing.assert_array_equal(out["encoder.encoded_lengths"].numpy(),
                                          reference[f"{run}_encoded_len"])
            ours, theirs = out["decoder.logprobs"].numpy(), reference[f"{run}_log_probs"]
        assert ours.shape == theirs.shape
        assert float(np.abs(ours - theirs).max()) < TOLERANCE

    @pytest.mark.parametrize("name", MODELS)
    def test_parameter_count_is_nemos(self, restored: dict[str, ng.GraphModel],
                                      name: str) -> None:
        count = sum(p.numel() for p in restored[name].parameters())
        assert count == INFO["models"][name]["parameters"]

    @pytest.mark.parametrize(("name", "override", "frames_differ"), [
        ("quartznet_bpe", "nodes.preprocessor.params.drop_last_frame=false", True),
        ("quartznet_bpe", "nodes.preprocessor.params.stft_pad_mode=reflect", False),
        ("matchboxnet", "nodes.preprocessor.params.ceil_lengths=false", True),
    ])
    def test_each_framing_parameter_is_needed(self, archives: dict[str, Path], name: str,
                                              override: str, frames_differ: bool) -> None:
        """Put back one of today's defaults the import changes and the cut inside speech
        (13,600 samples, 85 hops) no longer matches NeMo: one frame more (NeMo 3.0 reports
        floor(L / hop) mel frames, ceil(L / hop) MFCC frames), or reflected instead of zero
        edges, off by more than the tolerance."""
        reference = np.load(FIXTURES / f"{name}.npz")
        x, n = _run_inputs("single_2")
        model = ng.GraphModel.restore_from(archives[name], overrides=[override])
        with torch.no_grad():
            out = model(audio_signal=x, audio_length=n)
        frames = int(reference["single_2_processed_length"][0])
        assert frames == n.item() // 160 == 85
        assert int(out["preprocessor.processed_length"][0]) == frames + int(frames_differ)
        key, ref = ("decoder.logits", "single_2_logits") if name == "matchboxnet" else \
            ("decoder.logprobs", "single_2_log_probs")
        theirs = reference[ref]
        ours = out[key].numpy()[:, :theirs.shape[1]] if theirs.ndim == 3 else out[key].numpy()
        assert float(np.abs(ours - theirs).max()) > TOLERANCE


TRAIN = FIXTURES / "quartznet_char_train.npz"
TRAIN_LOSS_TOLERANCE = 1e-5  # relative; NeMo's own float32 vs float64 loss: 1.5e-7
TRAIN_GRAD_TOLERANCE = 1e-3  # relative L2 per tensor; NeMo's float32 vs float64: 2.4e-5
NO_RANDOMNESS = ["nodes.preprocessor.params.dither=0.0", "nodes.spec_augment.params.rect_masks=0"]


def _training_step(archive: Path, *, train: bool = True) -> tuple[dict[str, torch.Tensor],
                                                                  dict[str, torch.Tensor]]:
    """One forward + backward pass of the imported character model on the batch of the
    training fixture: the outputs and each parameter's gradient under NeMo's names."""
    reference = np.load(TRAIN)
    model = ng.GraphModel.restore_from(archive, overrides=NO_RANDOMNESS)
    model.train(train)
    x, n = _run_inputs("batch")
    out = model(audio_signal=x, audio_length=n,
                transcripts=torch.from_numpy(reference["targets"]),
                transcript_length=torch.from_numpy(reference["target_lengths"]))
    out["ctc.loss"].backward()
    grads = {name.removeprefix("nodes."): p.grad for name, p in model.named_parameters()}
    return out, grads


@pytest.fixture(scope="module")
def training_step(archives: dict[str, Path]) -> tuple[dict[str, torch.Tensor],
                                                      dict[str, torch.Tensor]]:
    return _training_step(archives["quartznet_char"])


def _rel(ours: torch.Tensor | float, theirs: np.ndarray | float) -> float:
    ours_t = torch.as_tensor(ours, dtype=torch.float64)
    theirs_t = torch.as_tensor(np.asarray(theirs), dtype=torch.float64).reshape(ours_t.shape)
    return float((ours_t - theirs_t).norm() / theirs_t.norm())


class TestTrainingStepMatchesNeMo:
    """A training step (train mode: batch norm on the batch's statistics; dither 0 and the
    spectrogram augmentation without masks, so nothing is random) of the imported character
    QuartzNet gives NeMo's CTC loss and gradients on a padded batch of three utterances with
    their transcripts (``quartznet_char_train.npz``, written by make_fixtures.py)."""

    def test_loss_and_lengths(self, training_step: tuple[dict, dict]) -> None:
        out, _ = training_step
        reference = np.load(TRAIN)
        np.testing.assert_array_equal(out["encoder.encoded_lengths"].numpy(),
                                      reference["encoded_len"])
        loss = float(out["ctc.loss"].detach())
        assert _rel(loss, float(reference["loss"])) < TRAIN_LOSS_TOLERANCE

    def test_gradient_norm_of_every_parameter(self, training_step: tuple[dict, dict]) -> None:
        _, grads = training_step
        reference = np.load(TRAIN)
        norms = {k.removeprefix("grad_norm/"): float(reference[k]) for k in reference.files
                 if k.startswith("grad_norm/")}
        assert set(norms) == set(grads) and len(norms) == INFO["train"]["grad_tensors"]
        far = {k: _rel(float(grads[k].norm()), v) for k, v in norms.items()}
        worst = max(far, key=far.__getitem__)
        assert far[worst] < TRAIN_GRAD_TOLERANCE, (worst, far[worst])

    @pytest.mark.parametrize("name", INFO["train"]["whole_grads"])
    def test_whole_gradients(self, training_step: tuple[dict, dict], name: str) -> None:
        """The decoder, the first depthwise conv, a residual 1x1 conv, a batch norm's scale
        and the dilated depthwise conv (our polyphase path), element by element."""
        _, grads = training_step
        theirs = np.load(TRAIN)[f"grad/{name}"]
        assert tuple(grads[name].shape) == theirs.shape
        assert _rel(grads[name], theirs) < TRAIN_GRAD_TOLERANCE

    def test_an_eval_mode_step_is_not_a_training_step(self, archives: dict[str, Path]) -> None:
        """The same pass with batch norm on its running statistics (eval mode) is far from the
        reference: the fixture pins a training step, not an inference one."""
        out, grads = _training_step(archives["quartznet_char"], train=False)
        reference = np.load(TRAIN)
        loss = float(out["ctc.loss"].detach())
        assert _rel(loss, float(reference["loss"])) > 100 * TRAIN_LOSS_TOLERANCE
        name = "decoder.decoder_layers.0.weight"
        assert _rel(grads[name], reference[f"grad/{name}"]) > 10 * TRAIN_GRAD_TOLERANCE


class TestImportedGraph:
    def test_graph_names_and_ports(self, restored: dict[str, ng.GraphModel]) -> None:
        """Nodes are NeMo's module names; the data source is ours; NeMo's framing is set."""
        char = restored["quartznet_char"]
        assert list(char.graph.config["nodes"]) == ["preprocessor", "spec_augment", "encoder",
                                                    "decoder", "ctc"]
        assert char.graph.config["data"]["module"] == "AudioToCharDataset"
        assert char.graph.config["nodes"]["spec_augment"]["train_only"] is True
        params = char.graph.config["nodes"]["preprocessor"]["params"]
        assert params["stft_pad_mode"] == "constant" and params["drop_last_frame"] is True
        assert restored["quartznet_bpe"].graph.config["data"]["module"] == "AudioToBPEDataset"
        box = restored["matchboxnet"].graph.config
        assert box["data"]["module"] == "AudioToClassificationLabelDataset"
        assert box["nodes"]["preprocessor"]["module"] == "AudioToMFCCPreprocessor"
        assert box["nodes"]["preprocessor"]["params"]["ceil_lengths"] is True
        assert "crop_or_pad_augment" not in box["nodes"]  # NeMo 3.0 never applies it
        assert "loss" not in box

    def test_state_dict_keys_mirror_nemo(self, restored: dict[str, ng.GraphModel]) -> None:
        nemo = read_nemo(FIXTURES / "quartznet_char.nemo")
        ours = set(restored["quartznet_char"].state_dict())
        recomputed = {"preprocessor.featurizer.window", "preprocessor.featurizer.fb"}
        assert {f"nodes.{k}" for k in nemo.weights if k not in recomputed} == ours

    @pytest.mark.parametrize("name", ["quartznet_char", "quartznet_bpe"])
    def test_transcribes(self, archives: dict[str, Path], name: str) -> None:
        """An imported CTC model is an ASRModel like a native one (random weights: any text)."""
        model = ASRModel.restore_from(archives[name])
        files = [ROOT / INFO["inputs"][0]["file"], ROOT / INFO["inputs"][1]["file"]]
        texts = model.transcribe([str(f) for f in files], batch_size=2)
        assert len(texts) == 2 and all(isinstance(t, str) for t in texts)

    def test_bpe_archive_carries_the_tokenizer(self, archives: dict[str, Path]) -> None:
        with tarfile.open(archives["quartznet_bpe"]) as tar:
            names = tar.getnames()
        assert any(n.startswith("artifacts/") and n.endswith("tokenizer.model") for n in names)

    def test_old_gzipped_nemo_imports(self, tmp_path: Path) -> None:
        """NeMo before 1.7 wrote gzipped tars: read too."""
        gz = tmp_path / "old.nemo"
        with tarfile.open(FIXTURES / "matchboxnet.nemo") as src, \
                tarfile.open(gz, "w:gz") as dst:
            for info in src.getmembers():
                dst.addfile(info, src.extractfile(info) if info.isfile() else None)
        model, _ = import_nemo(gz, None)
        assert sum(p.numel() for p in model.parameters()) == \
            INFO["models"]["matchboxnet"]["parameters"]


class TestCommand:
    def test_cli_writes_the_archive(self, tmp_path: Path) -> None:
        out = tmp_path / "m.ngm"
        result = run_cli("import-nemo", str(FIXTURES / "quartznet_char.nemo"), "--out",
                         str(out))
        assert result.returncode == 0, result.stderr
        assert out.is_file()
        assert "EncDecCTCModel" in result.stdout and "49,581 parameters" in result.stdout
        assert "left out" in result.stderr and "optim" in result.stderr

    def test_cli_unknown_target_exits_2_naming_it(self, tmp_path: Path) -> None:
        bad = _rewrite(tmp_path, "quartznet_char", config=lambda c: c["encoder"].update(
            _target_="nemo.collections.asr.modules.ConformerEncoder"))
        result = run_cli("import-nemo", str(bad), "--out", str(tmp_path / "x.ngm"))
        assert result.returncode == 2
        assert "encoder._target_: 'nemo.collections.asr.modules.ConformerEncoder'" in \
            result.stderr
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "x.ngm").exists()


# --- refusals ------------------------------------------------------------------------------


def _members(name: str) -> dict[str, bytes]:
    with tarfile.open(FIXTURES / f"{name}.nemo") as tar:
        return {i.name: tar.extractfile(i).read() for i in tar.getmembers() if i.isfile()}


def _write(path: Path, members: dict[str, bytes],
           extra: Callable[[tarfile.TarFile], None] | None = None) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra:
            extra(tar)
    return path


def _rewrite(tmp_path: Path, name: str, config: Callable[[dict], Any] | None = None,
             weights: Callable[[dict], Any] | None = None) -> Path:
    members = _members(name)
    if config:
        parsed = yaml.safe_load(members["./model_config.yaml"])
        config(parsed)
        members["./model_config.yaml"] = yaml.safe_dump(parsed).encode()
    if weights:
        state = torch.load(io.BytesIO(members["./model_weights.ckpt"]), weights_only=True)
        weights(state)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        members["./model_weights.ckpt"] = buffer.getvalue()
    return _write(tmp_path / f"{name}.nemo", members)


class _Boom:
    """Unpickling this would run code: a weights-only load must refuse it."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path("/tmp/pwned_by_nemo_import").write_text, ("pwned",))


class TestRefusals:
    def test_unknown_parameter_and_module_are_named_together(self, tmp_path: Path) -> None:
        def edit(c: dict) -> None:
            c["preprocessor"]["warp_factor"] = 1.1
            c["encoder"]["quantize"] = True
            c["joint"] = {"_target_": "nemo.collections.asr.modules.RNNTJoint"}
        with pytest.raises(NemoImportError) as err:
            import_nemo(_rewrite(tmp_path, "quartznet_char", config=edit), None)
        text = str(err.value)
        assert "3 problems" in text
        assert "preprocessor.warp_factor" in text
        assert "encoder.quantize: True must be False" in text
        assert "joint: a module ('nemo.collections.asr.modules.RNNTJoint')" in text

    def test_unknown_model_class(self, tmp_path: Path) -> None:
        path = _rewrite(tmp_path, "quartznet_char", config=lambda c: c.update(
            target="nemo.collections.asr.models.EncDecRNNTModel"))
        with pytest.raises(NemoImportError, match="EncDecRNNTModel' is not one the import"):
            import_nemo(path, None)

    def test_unknown_and_missing_weights_are_named(self, tmp_path: Path) -> None:
        def edit(state: dict) -> None:
            state["encoder.encoder.9.mconv.0.conv.weight"] = torch.zeros(1)
            del state["decoder.decoder_layers.0.bias"]
        with pytest.raises(NemoImportError) as err:
            import_nemo(_rewrite(tmp_path, "quartznet_char", weights=edit), None)
        assert "weight 'encoder.encoder.9.mconv.0.conv.weight': no parameter" in str(err.value)
        assert "parameter 'decoder.decoder_layers.0.bias' of the graph: the .nemo file has " \
            "no weight" in str(err.value)

    def test_a_different_mel_filterbank_is_refused(self, tmp_path: Path) -> None:
        path = _rewrite(tmp_path, "quartznet_char", weights=lambda s: s.update({
            "preprocessor.featurizer.fb": s["preprocessor.featurizer.fb"] * 1.01}))
        with pytest.raises(NemoImportError,
                           match=re.escape("preprocessor.featurizer.fb': differs")):
            import_nemo(path, None)

    def test_pickled_code_is_not_run(self, tmp_path: Path) -> None:
        marker = Path("/tmp/pwned_by_nemo_import")
        marker.unlink(missing_ok=True)
        members = _members("quartznet_char")
        members["./model_weights.ckpt"] = pickle.dumps({"x": _Boom()}, protocol=2)
        with pytest.raises(NemoImportError, match="weights_only=True"):
            read_nemo(_write(tmp_path / "evil.nemo", members))
        assert not marker.exists()

    def test_yaml_python_tags_are_refused(self, tmp_path: Path) -> None:
        members = _members("quartznet_char")
        members["./model_config.yaml"] = b"preprocessor: !!python/object/apply:os.system [id]\n"
        with pytest.raises(NemoImportError, match=re.escape("model_config.yaml is not YAML")):
            read_nemo(_write(tmp_path / "evil.nemo", members))

    @pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../b"])
    def test_path_traversal_is_refused(self, tmp_path: Path, name: str) -> None:
        members = {**_members("quartznet_char"), name: b"x"}
        with pytest.raises(NemoImportError, match=re.escape("relative path without '..'")):
            read_nemo(_write(tmp_path / "evil.nemo", members))

    def test_links_are_refused(self, tmp_path: Path) -> None:
        def link(tar: tarfile.TarFile) -> None:
            info = tarfile.TarInfo("tokenizer.model")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        with pytest.raises(NemoImportError, match="symbolic link"):
            read_nemo(_write(tmp_path / "evil.nemo", _members("quartznet_char"), link))

    def test_duplicate_members_are_refused(self, tmp_path: Path) -> None:
        members = _members("quartznet_char")
        def again(tar: tarfile.TarFile) -> None:
            data = members["./model_config.yaml"]
            info = tarfile.TarInfo("model_config.yaml")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        with pytest.raises(NemoImportError, match="appears twice"):
            read_nemo(_write(tmp_path / "dup.nemo", members, again))

    def test_not_a_tar_and_missing_members(self, tmp_path: Path) -> None:
        junk = tmp_path / "junk.nemo"
        junk.write_bytes(b"not a tar at all" * 100)
        with pytest.raises(NemoImportError, match=re.escape("is not a .nemo file")):
            read_nemo(junk)
        members = _members("quartznet_char")
        del members["./model_weights.ckpt"]
        with pytest.raises(NemoImportError, match=re.escape("has no model_weights.ckpt")):
            read_nemo(_write(tmp_path / "partial.nemo", members))

    def test_every_target_maps_to_a_registered_module(self) -> None:
        """The table names NeMo classes by path and ours by registry name; an import needs no
        NeMo (none is installed here) and imports nothing a config names."""
        registry = ng.get_registry()
        assert all(t.startswith("nemo.collections.asr.modules.") for t in MODULE_TARGETS)
        for ours in set(MODULE_TARGETS.values()):
            registry.get("module", ours)
        import_nemo(FIXTURES / "matchboxnet.nemo", None)
        assert not any(m == "nemo" or m.startswith("nemo.") for m in sys.modules)


# --- the preprocessor parameters behind the exact frame counts -------------------------------


class TestFraming:
    def test_drop_last_frame_reports_floor_of_samples_over_hop(self) -> None:
        lengths = torch.tensor([159, 160, 16000, 22778])
        native = AudioToMelSpectrogramPreprocessor()
        nemo3 = AudioToMelSpectrogramPreprocessor(drop_last_frame=True)
        assert native.get_seq_len(lengths).tolist() == [1 + n // 160 for n in lengths.tolist()]
        assert nemo3.get_seq_len(lengths).tolist() == [n // 160 for n in lengths.tolist()]

    def test_constant_padding_makes_a_batch_row_equal_the_utterance_alone(self) -> None:
        """With 25 ms windows the last reported frame of an utterance of 18 hops reaches 40
        samples past its end: zero padding (with pre-emphasis masked past the length) is what
        a padded batch row has there too; reflected samples are not."""
        torch.manual_seed(0)
        short, long = torch.randn(2880), torch.randn(4800)
        x, n = _batch([short.numpy(), long.numpy()])
        for mode, invariant in (("constant", True), ("reflect", False)):
            pre = AudioToMelSpectrogramPreprocessor(window_size=0.025, stft_pad_mode=mode,
                                                    drop_last_frame=True, dither=0.0,
                                                    pad_to=0).eval()
            alone, frames = pre(short[None], torch.tensor([2880]))
            batched, _ = pre(x, n)
            diff = float((batched[:1, :, :alone.shape[-1]] - alone).abs().max())
            assert (diff < 1e-5) is invariant, (mode, diff)
            assert int(frames[0]) == 18

    def test_mfcc_ceil_lengths(self) -> None:
        lengths = torch.tensor([159, 160, 161, 16000])
        signal = torch.zeros(4, 16000)
        _, native = AudioToMFCCPreprocessor()(signal, lengths)
        _, nemo = AudioToMFCCPreprocessor(ceil_lengths=True)(signal, lengths)
        assert native.tolist() == [1, 2, 2, 101]
        assert nemo.tolist() == [1, 1, 2, 100]

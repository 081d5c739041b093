"""No input takes neuralgraph down: bad run names and folders, crafted archives, weights that
become NaN, checkpoints that are not checkpoints, exports that cannot be written (issue 17).

Every case runs as a user would run it, through ``neuralgraph.cli.main`` (or a fresh process
when it trains), and must end with a message that says what must hold, what was found and
where: exit 2 for the user's input, exit 1 for a run that cannot go on (non-finite weights),
never a traceback. docs/faults.md ("Bad archives and run folders") lists the cases.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tarfile
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import neuralgraph as ng
from neuralgraph.cli import main
from neuralgraph.registry import reset_registry
from tests.conftest import TOY
from tests.test_archive_safety import raw_tar

GRAPH = """\
name: toy
seed: 0
trainer: {max_epochs: 1, accelerator: cpu, devices: 1, enable_model_summary: false}
data:
  module: DATA
  params: {dim: 4, out: 1}
  train: {batch_size: 16, shuffle: true, n_samples: 64}
nodes:
  hidden: {module: Linear, params: {in_features: 4, out_features: 8}, inputs: {x: data.x}}
  poison: {module: Poison, params: {at: -1}, inputs: {x: hidden.y}}
  head: {module: Linear, params: {in_features: 8, out_features: 1}, inputs: {x: poison.y}}
  mse: {module: MSE, inputs: {pred: head.y, target: data.y}}
loss: mse.loss
optim: {name: adam, lr: 0.01}
"""

# A second test plugin: a module whose buffer becomes infinite while the loss stays finite (a
# diverging running statistic), and the toy data source with inference ports (exportable).
PLUGIN = '''\
import torch
import neuralgraph as ng
from ng_toy import ToyRegression

FEATURES = ng.ChannelType()


class Poison(ng.NeuralModule):
    """Identity on (B, D); its buffer ``stat`` becomes inf at training call ``at``."""

    def __init__(self, at: int = -1) -> None:
        super().__init__()
        self.at, self.calls = at, 0
        self.register_buffer("stat", torch.zeros(1))

    @property
    def input_types(self):
        return {"x": ng.NeuralType(("B", "D"), FEATURES)}

    @property
    def output_types(self):
        return {"y": ng.NeuralType(("B", "D"), FEATURES)}

    def forward(self, x):
        if self.training:
            if self.calls == self.at:
                self.stat.fill_(float("inf"))
            self.calls += 1
        return x


class ExportableToy(ToyRegression):
    inference_ports = ("x",)


@ng.hookimpl
def register_modules(registry):
    registry.add_module(Poison)


@ng.hookimpl
def register_data_sources(registry):
    registry.add_data_source(ExportableToy)
'''
PLUGINS = "ng_toy,ng_badruns"


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "ng_badruns.py").write_text(PLUGIN)
    return folder


@pytest.fixture()
def env(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Both test plugins loaded, in this process and in the processes it starts."""
    path = os.pathsep.join([str(plugin_dir), str(TOY)])
    monkeypatch.setenv("NEURALGRAPH_PLUGINS", PLUGINS)
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.syspath_prepend(str(plugin_dir))
    monkeypatch.delenv("NEURALGRAPH_RUN_VERSION", raising=False)
    reset_registry()
    return {"NEURALGRAPH_PLUGINS": PLUGINS, "PYTHONPATH": path}


@pytest.fixture()
def work(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A deep working folder (so that '../../..' stays inside tmp_path) holding graph.yaml."""
    folder = tmp_path / "a" / "b" / "c"
    folder.mkdir(parents=True)
    (folder / "graph.yaml").write_text(GRAPH.replace("DATA", "ToyRegression"))
    monkeypatch.chdir(folder)
    return folder


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- 1. a graph's name and --version choose no path --------------------------------------------

NAMES = [  # (override or graph line, what the message says)
    pytest.param("name=../../../x", "it has a '/' or '\\'", id="dotdot"),
    pytest.param("name=/tmp/neuralgraph-abs", "it has a '/' or '\\'", id="absolute"),
    pytest.param("name=a\\\\b", "it has a '/' or '\\'", id="backslash"),
    pytest.param("name=..", "it starts with '.'", id="parent"),
    pytest.param("name=.hidden", "it starts with '.'", id="hidden"),
    pytest.param("name=" + "x" * 201, "longer than 200 bytes", id="long"),
]


@pytest.mark.parametrize("command", ["check", "train"])
@pytest.mark.parametrize("override,why", NAMES)
def test_name_is_one_folder_name(work, tmp_path, capsys, command, override, why):
    """`name` from an override: exit 2 at the override, nothing written anywhere."""
    before = _files(tmp_path)
    extra = ["--exp-dir", "E"] if command == "train" else []
    code, err = _cli(capsys, command, "graph.yaml", override, *extra)
    assert code == 2, err
    line = next(x for x in err.splitlines() if "error:" in x)
    assert line.startswith("override #1") and override[:40] in line, line  # at the override
    assert "error: name: 'name' must be a single folder name" in line
    assert why in err
    assert _files(tmp_path) == before


@pytest.mark.parametrize("line,why", [
    pytest.param("name: ../../evil", "it has a '/'", id="dotdot"),
    pytest.param("name: /etc/evil", "it has a '/'", id="absolute"),
    pytest.param('name: "a\\0b"', "a NUL or another control character", id="nul"),
    pytest.param('name: "a\\nb"', "a NUL or another control character", id="newline"),
])
def test_name_in_the_graph_file(work, tmp_path, capsys, line, why):
    """`name:` written in a shared graph file: exit 2 at its line for check and train."""
    text = (work / "graph.yaml").read_text().replace("name: toy", line)
    (work / "graph.yaml").write_text(text)
    before = _files(tmp_path)
    for command in (["check"], ["train", "--exp-dir", "E"]):
        code, err = _cli(capsys, command[0], "graph.yaml", *command[1:])
        assert code == 2, err
        assert "graph.yaml:1: error: name: 'name' must be a single folder name" in err
        assert why in err
    assert _files(tmp_path) == before


@pytest.mark.parametrize("version,why", [
    ("../x", "it has a '/'"), ("/tmp/neuralgraph-abs", "it has a '/'"),
    ("..", "it starts with '.'"), ("", "it is empty"),
])
def test_version_is_one_folder_name(work, tmp_path, capsys, version, why):
    """--version names one folder under EXP/NAME: anything else is exit 2, nothing written."""
    before = _files(tmp_path)
    code, err = _cli(capsys, "train", "graph.yaml", "--exp-dir", "E", "--version", version)
    assert code == 2, err
    assert f"error: --version must be a single folder name under E/toy; {why}" in err
    assert _files(tmp_path) == before


# --- 2. archives: no member larger than the file, only what meta.json lists ---------------------


@pytest.fixture()
def archive(work: Path) -> Path:
    """A valid archive of a toy graph with one artifact (artifacts/0/factor.txt)."""
    (work / "factor.txt").write_text("2.5")
    graph = ng.Graph.from_string(f"""
name: toy
data: {{module: ToyRegression, params: {{dim: 4, out: 1}}}}
nodes:
  scale: {{module: Scale, params: {{path: {work / 'factor.txt'}}}, inputs: {{x: data.x}}}}
  head: {{module: Linear, params: {{in_features: 4, out_features: 1}}, inputs: {{x: scale.y}}}}
  mse: {{module: MSE, inputs: {{pred: head.y, target: data.y}}}}
loss: mse.loss
""")
    return ng.GraphModel(graph).save_to(work / "model.ngm")


def _members(path: Path) -> list[tuple[str, bytes, dict]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read(), {}) for m in tar]  # type: ignore[union-attr]


def _listing(members: list[tuple[str, bytes, dict]], *names: str) -> list[tuple[str, bytes, dict]]:
    """``members`` with meta.json listing ``names`` as artifacts of the Scale node too."""
    out = []
    for name, data, options in members:
        if name == "meta.json":
            meta = json.loads(data)
            meta["artifacts"] += [{"key": ["nodes", "scale", "params", "path"], "member": n}
                                  for n in names]
            data = json.dumps(meta).encode()
        out.append((name, data, options))
    return out


GB = 1 << 30
ARCHIVES: list[tuple[str, Callable[[list], list], str]] = [
    ("sparse_1000_mb",  # a 2 KB file whose artifact claims 1000 MB of holes
     lambda m: [(n, d, {"sparse": 1000 << 20} if n.startswith("artifacts/") else o)
                for n, d, o in m],
     r"refusing member 'artifacts/0/factor\.txt': it is a sparse file \(claiming 1048576000 "
     r"B\); an archive holds only regular files"),
    ("three_sparse_7.9_gb",  # each under the 8 GB member limit
     lambda m: _listing(m, "artifacts/1/a", "artifacts/2/b", "artifacts/3/c")
     + [(f"artifacts/{i}/{c}", b"x", {"sparse": int(7.9 * GB)}) for i, c in
        ((1, "a"), (2, "b"), (3, "c"))],
     r"refusing member 'artifacts/1/a': it is a sparse file"),
    ("size_beyond_the_file",  # a header that claims 100 MB, with 3 bytes stored
     lambda m: [(n, d, {"size": 100 << 20} if n.startswith("artifacts/") else o)
                for n, d, o in m],
     r"bad\.ngm is not a complete neuralgraph archive \(\.ngm\)"),
    ("unlisted_member",
     lambda m: [*m, ("artifacts/7/extra.bin", b"\0" * 4096, {})],
     r"refusing member 'artifacts/7/extra\.bin': meta\.json does not list it as an artifact"),
    ("file_and_folder",  # artifacts/0 a file and the folder of artifacts/0/factor.txt
     lambda m: [*_listing(m, "artifacts/0"), ("artifacts/0", b"x", {})],
     r"refusing member 'artifacts/0/factor\.txt': the member 'artifacts/0' is a file, so it "
     r"cannot also be a folder"),
    ("same_name_twice",
     lambda m: [*m, ("weights.safetensors", b"not weights", {})],
     r"refusing member 'weights\.safetensors': it appears twice"),
]


@pytest.mark.parametrize("change,message", [pytest.param(c, m, id=i) for i, c, m in ARCHIVES])
def test_crafted_archive_exits_2(archive, work, tmp_path, capsys, change, message):
    """`neuralgraph evaluate --model BAD.ngm`: exit 2 with the member named, nothing written
    outside, and no more memory than the file's size (a sparse member was expanded before)."""
    bad = work / "bad.ngm"
    bad.write_bytes(raw_tar(change(_members(archive))))
    assert bad.stat().st_size < 64 << 10
    before = _files(tmp_path)
    tracemalloc.start()
    try:
        code, err = _cli(capsys, "evaluate", "--model", str(bad), "--data", "m.json")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 2, err
    assert re.search(message, err), err
    assert peak < 32 << 20, f"{peak} B traced"
    assert _files(tmp_path) == before


# --- 3. non-finite weights: training stops, nothing is saved with them -------------------------

# SGD with a learning rate near float32's largest value: its first step overflows some weights to
# inf while every loss before was finite ('check' accepts the rate: it is a finite number).
HUGE_SGD = "optim={name: sgd, lr: 3.0e+38}"
WEIGHTS = [  # (overrides, where training was, the tensor named)
    pytest.param([HUGE_SGD], "at global step 1 (epoch 0, batch 1)", "nodes.head.linear.weight",
                 id="huge_step"),
    pytest.param([HUGE_SGD, "+nonfinite_loss=stop"], "at global step 1 (epoch 0, batch 1)",
                 "nodes.head.linear.weight", id="huge_step_stop"),
    pytest.param([HUGE_SGD, "+trainer.max_steps=1"], "at the end of epoch 0 (global step 1)",
                 "nodes.head.linear.weight", id="huge_last_step"),
    pytest.param(["nodes.poison.params.at=3", "data.train.batch_size=1",
                  "data.train.n_samples=256"],
                 "after global step 100 (epoch 0, checked every 100 batches)",
                 "nodes.poison.stat (1 of 1)", id="buffer_inf_periodic"),
    pytest.param(["nodes.poison.params.at=3", "+checkpoint.every_n_train_steps=2"],
                 "when a checkpoint was to be written at global step 4 (it was not written)",
                 "nodes.poison.stat (1 of 1)", id="buffer_inf_checkpoint"),
]


@pytest.mark.parametrize("overrides,when,tensor", WEIGHTS)
def test_nonfinite_weights_stop_training(work, capsys, overrides, when, tensor):
    """Weights that become NaN or inf stop `neuralgraph train` with exit 1 and one message
    naming how many values and which tensors; no archive is written and every checkpoint on
    disk holds finite weights."""
    code, err = _cli(capsys, "train", "graph.yaml", *overrides, "--exp-dir", "E", "--version",
                     "v")
    assert code == 1, err[-3000:]
    line = next(x for x in err.splitlines() if x.startswith("error:"))
    assert line.startswith(f"error: the weights are not finite {when}: "), line
    assert "values are NaN or infinite, in" in line and "training stopped" in line
    assert tensor in line.split(" tensors: ")[1]
    run = work / "E" / "toy" / "v"
    assert not list(run.glob("*.ngm"))
    for ckpt in run.glob("checkpoints/*.ckpt"):
        state = torch.load(ckpt, weights_only=True)["state_dict"]
        assert all(torch.isfinite(t).all() for t in state.values()), ckpt
    if "checkpoint" in " ".join(overrides):
        assert (run / "checkpoints" / "last.ckpt").is_file()  # the one of step 2


def test_archive_never_holds_nonfinite_weights(work, tmp_path):
    """`GraphModel.save_to` refuses NaN or inf weights, naming how many and where."""
    model = ng.GraphModel(ng.Graph.from_yaml(work / "graph.yaml"))
    with torch.no_grad():
        model.nodes["head"].linear.weight[0, :3] = float("nan")
        model.nodes["poison"].stat.fill_(float("-inf"))
    with pytest.raises(FloatingPointError, match=(
            r"refusing to save .*m\.ngm: 4 of 50 values are NaN or infinite, in 2 of 5 "
            r"tensors: nodes\.poison\.stat \(1 of 1\), nodes\.head\.linear\.weight \(3 of 8\); "
            r"an archive never holds non-finite weights")):
        model.save_to(tmp_path / "m.ngm")
    assert not list(tmp_path.glob("*m.ngm*"))


# --- 4. run folders, checkpoints and exports that cannot be used -------------------------------

ROOT_WRITES = os.geteuid() == 0  # root writes into read-only folders: those cases cannot fail
read_only = pytest.mark.skipif(ROOT_WRITES, reason="root ignores file permissions")


def _file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("in the way\n")


def _read_only(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)


RUN_FOLDERS = [  # (what is done to the work folder, the message)
    pytest.param(lambda w: _file(w / "E"), "E: the run's files cannot be written into "
                 "E/toy/v: E is a file, not a folder", id="exp_dir_is_a_file"),
    pytest.param(lambda w: _file(w / "E" / "toy" / "v"), "E: the run's files cannot be written "
                 "into E/toy/v: E/toy/v is a file, not a folder", id="run_folder_is_a_file"),
    pytest.param(lambda w: _file(w / "E" / "toy" / "v" / "checkpoints"),
                 "E: the run's files cannot be written into E/toy/v/checkpoints: "
                 "E/toy/v/checkpoints is a file, not a folder", id="checkpoints_is_a_file"),
    pytest.param(lambda w: _read_only(w / "E"), "E: the run's files cannot be written into "
                 "E/toy/v: Permission denied", id="exp_dir_read_only", marks=read_only),
    pytest.param(lambda w: _read_only(w / "E" / "toy" / "v" / "checkpoints"),
                 "E: the run's files cannot be written into E/toy/v/checkpoints: Permission "
                 "denied", id="checkpoints_read_only", marks=read_only),
]


@pytest.mark.parametrize("spoil,message", RUN_FOLDERS)
def test_run_folder_cannot_be_written(work, capsys, spoil, message):
    """A file where a folder must be, or a read-only folder: exit 2 before training."""
    spoil(work)
    code, err = _cli(capsys, "train", "graph.yaml", "--exp-dir", "E", "--version", "v")
    assert code == 2, err
    assert f"error: --exp-dir {message}" in err


class Canary:
    """Unpickling this runs ``open(path, 'w')``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _zip_not_checkpoint(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("notes.txt", "not a checkpoint")


def _pickled_code(path: Path) -> None:
    torch.save({"state_dict": {}, "global_step": 3, "x": Canary(path.parent / "canary")}, path)


def _not_lightning(path: Path) -> None:
    torch.save({"weights": torch.zeros(2)}, path)


@pytest.mark.parametrize("write,message", [
    pytest.param(_zip_not_checkpoint, r"is not a complete checkpoint \(damaged, or a zip file "
                 r"that is not a checkpoint: .*\); other checkpoints there: none", id="zip"),
    pytest.param(_pickled_code, r"holds more than tensors and plain data, and loading it would "
                 r"run code from the file \(refused: .*\)", id="pickled_code"),
    pytest.param(_not_lightning, r"is not a Lightning checkpoint \(it has no state_dict and "
                 r"global_step\)", id="not_lightning"),
])
def test_resume_refuses_what_is_not_a_checkpoint(work, capsys, write, message):
    """`train --resume` reads last.ckpt as Lightning would, weights only: anything else is
    exit 2 naming the file, and no code from it runs."""
    ckpt = work / "E" / "toy" / "version_0" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    write(ckpt)
    code, err = _cli(capsys, "train", "graph.yaml", "--exp-dir", "E", "--resume")
    assert code == 2, err
    assert re.search(r"error: --resume: E/toy/version_0/checkpoints/last\.ckpt "
                                   + message, err), err
    assert not (ckpt.parent / "canary").exists()


@pytest.fixture()
def exportable(work: Path) -> Path:
    """An archive whose data source declares inference ports (it can be exported)."""
    graph = ng.Graph.from_string(GRAPH.replace("DATA", "ExportableToy"))
    return ng.GraphModel(graph).save_to(work / "model.ngm")


@pytest.mark.parametrize("output,fmt,message", [
    pytest.param("missing/m.onnx", "onnx", "--output missing/m.onnx: its folder missing does "
                 "not exist", id="no_folder"),
    pytest.param("model.ngm/m.ts", "torchscript", "--output model.ngm/m.ts: its folder "
                 "model.ngm is a file, not a folder", id="folder_is_a_file"),
    pytest.param(".", "torchscript", "--output .: it is a folder, not a file name",
                 id="a_folder"),
    pytest.param("ro/m.onnx", "onnx", "--output ro/m.onnx: nothing can be written in ro: "
                 "Permission denied", id="read_only", marks=read_only),
])
def test_export_cannot_write(exportable, work, capsys, output, fmt, message):
    """An export to a path that cannot be written: exit 2 naming --output."""
    _read_only(work / "ro")
    code, err = _cli(capsys, "export", "--model", "model.ngm", "--format", fmt,
                     "--output", output)
    assert code == 2, err
    assert f"error: {message}" in err


def test_export_without_onnx(exportable, work, capsys, monkeypatch):
    """ONNX export without the onnx package says which extra installs it; torchscript still
    works."""
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` fails
    code, err = _cli(capsys, "export", "--model", "model.ngm", "--format", "onnx")
    assert code == 2, err
    assert ("error: --format onnx needs the 'onnx' package, which is not installed: pip "
            "install 'neuralgraph[export]'") in err
    assert not (work / "model.onnx").exists()
    assert main(["export", "--model", "model.ngm", "--format", "torchscript"]) == 0
    assert (work / "model.ts").is_file()


def test_export_writes(exportable, work, capsys):
    """Control: the same archive exports to ONNX where the path is writable."""
    pytest.importorskip("onnx")
    code, err = _cli(capsys, "export", "--model", "model.ngm", "--format", "onnx",
                     "--output", "out.onnx")
    assert code == 0, err
    assert (work / "out.onnx").stat().st_size > 0


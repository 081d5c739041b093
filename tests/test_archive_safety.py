"""Archives are data, never code: crafted .ngm files that try to run code or write outside the
restore folder are refused with a clear message (exit 2 from the CLI), and nothing runs.

Each test starts from a valid archive of a toy graph (with one artifact file) and changes one
member. Canary payloads would create ``canary`` files if anything executed them.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import yaml

from neuralgraph import Graph, GraphError, UserError
from neuralgraph.archive import FORMAT_VERSION, ArchiveError
from neuralgraph.cli import main
from neuralgraph.model import GraphModel

GRAPH = """\
name: safe
data:
  module: ToyRegression
  params: {dim: 4, out: 1}
nodes:
  scale: {module: Scale, params: {path: FACTOR}, inputs: {x: data.x}}
  head: {module: Linear, params: {in_features: 4, out_features: 1}, inputs: {x: scale.y}}
  mse: {module: MSE, inputs: {pred: head.y, target: data.y}}
loss: mse.loss
"""


class Canary:
    """Unpickling this runs ``open(path, 'w')``: the file appears if anything unpickles it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (str(self.path), "w"))


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder for the test's files; restores extract into tmp_path/tmp, cwd is tmp_path/cwd."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.chdir(tmp_path / "cwd")
    yield tmp_path


@pytest.fixture()
def archive(workspace: Path) -> Path:
    """A valid archive of the toy graph, its factor file (2.5) packed as an artifact."""
    factor = workspace / "factor.txt"
    factor.write_text("2.5")
    model = GraphModel(Graph.from_string(GRAPH.replace("FACTOR", str(factor))))
    return model.save_to(workspace / "model.ngm")


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore


def _write(path: Path, members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> Path:
    """A tar with ``members`` (name -> bytes) and extra header-only members (links...)."""
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return path


def _header(info: tarfile.TarInfo, sparse_size: int | None = None) -> bytes:
    """A GNU tar header for ``info``; with ``sparse_size``, a GNU sparse member (type 'S') that
    stores ``info.size`` bytes at the end of a file of ``sparse_size`` bytes (holes before)."""
    if sparse_size is None:
        return info.tobuf(tarfile.GNU_FORMAT)
    info.type = tarfile.GNUTYPE_SPARSE
    buf = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    buf[386:398] = tarfile.itn(sparse_size - info.size, 12, tarfile.GNU_FORMAT)  # offset
    buf[398:410] = tarfile.itn(info.size, 12, tarfile.GNU_FORMAT)  # bytes stored
    buf[483:495] = tarfile.itn(sparse_size, 12, tarfile.GNU_FORMAT)  # the file's size
    buf[148:156] = b" " * 8
    buf[148:156] = b"%06o\0 " % sum(buf)
    return bytes(buf)


def raw_tar(members: list[tuple[str, bytes, dict]]) -> bytes:
    """A tar written byte by byte: (name, stored data, options) with options ``sparse``
    (the size a sparse member claims) and ``size`` (a header size other than the data's)."""
    out = io.BytesIO()
    for name, data, options in members:
        info = tarfile.TarInfo(name)
        info.size = options.get("size", len(data))
        info.mode = 0o644
        out.write(_header(info, options.get("sparse")))
        out.write(data + b"\0" * (-len(data) % 512))
    out.write(b"\0" * 1024)
    return out.getvalue()


def _changed(archive: Path, name: str = "bad.ngm", **members: bytes | None) -> Path:
    """A copy of ``archive`` with members replaced (``None`` removes one); keyword names use
    ``_`` for ``.`` and ``__`` for ``/``."""
    contents = _members(archive)
    for key, data in members.items():
        member = key.replace("__", "/").replace("_", ".")
        if data is None:
            contents.pop(member, None)
        else:
            contents[member] = data
    return _write(archive.parent / name, contents)


def _files_outside(workspace: Path) -> list[str]:
    """Files under the workspace other than the test's own (at its top) and the artifacts of
    restore folders (tmp/ngm-*/artifacts/...)."""
    found = []
    for path in workspace.rglob("*"):
        rel = path.relative_to(workspace)
        if path.is_dir() or len(rel.parts) == 1:
            continue
        if rel.parts[0] == "tmp" and rel.parts[1].startswith("ngm-") and \
                rel.parts[2:3] == ("artifacts",):
            continue
        found.append(str(rel))
    return found


def _refused(path: Path, match: str) -> str:
    with pytest.raises(UserError, match=match) as err:
        GraphModel.restore_from(path)
    return str(err.value)


class TestValidArchive:
    def test_round_trip_with_artifact(self, archive, workspace):
        """The valid archive restores; its artifact is a copy in a new ngm-* temporary folder."""
        model = GraphModel.restore_from(archive)
        path = Path(model.plan.nodes["scale"].params["path"])
        assert path.read_text() == "2.5"
        assert path.parent.parent.parent.name.startswith("ngm-")
        assert path.is_relative_to(workspace / "tmp")
        out = model(x=torch.ones(2, 4))
        assert out["scale.y"].eq(2.5).all()


class TestWeightsAreNotPickles:
    def test_pickle_named_safetensors(self, archive, workspace):
        """A pickle whose unpickling would create a file is refused as weights; nothing runs."""
        canary = workspace / "canary"
        payload = pickle.dumps({"nodes.head.linear.weight": Canary(canary)})
        bad = _changed(archive, weights_safetensors=payload)
        _refused(bad, "weights.safetensors is not a safetensors file")
        assert not canary.exists()

    def test_torch_save_weights(self, archive, workspace):
        """A torch.save (zip of pickles) state dict in place of safetensors is refused."""
        canary = workspace / "canary"
        buffer = io.BytesIO()
        torch.save({"w": torch.zeros(1), "x": Canary(canary)}, buffer)
        bad = _changed(archive, weights_safetensors=buffer.getvalue())
        _refused(bad, "is not a safetensors file")
        assert not canary.exists()

    def test_extra_pickle_member(self, archive):
        """A member outside the layout (a weights.pt next to the safetensors) is refused."""
        contents = _members(archive) | {"weights.pt": b"\x80\x04K\x01."}
        _refused(_write(archive.parent / "bad.ngm", contents), "refusing member 'weights.pt'")

    def test_weights_of_another_shape(self, archive):
        """Safetensors weights whose shapes do not fit the graph are refused, not a crash."""
        from safetensors.torch import save

        state = GraphModel.restore_from(archive).state_dict()
        state = {k: torch.zeros(*v.shape, 3) for k, v in state.items()}
        _refused(_changed(archive, weights_safetensors=save(state)),
                 "the weights do not fit the graph")


class TestMembers:
    @pytest.mark.parametrize("name", ["/tmp/evil", "../evil", "artifacts/../../evil",
                                      "artifacts/0/../../../evil", "./graph.yaml",
                                      "artifacts\\..\\evil"])
    def test_paths_outside(self, archive, workspace, name):
        """Absolute names, '..' and odd spellings are refused before anything is written."""
        contents = _members(archive) | {name: b"x"}
        bad = _write(workspace / "bad.ngm", contents)
        _refused(bad, "refusing member")
        assert _files_outside(workspace) == []

    @pytest.mark.parametrize("kind,target", [
        (tarfile.SYMTYPE, "/etc/passwd"), (tarfile.SYMTYPE, "../../outside"),
        (tarfile.LNKTYPE, "/etc/passwd"), (tarfile.LNKTYPE, "graph.yaml"),
        (tarfile.FIFOTYPE, ""), (tarfile.CHRTYPE, ""),
    ])
    def test_links_and_special_files(self, archive, workspace, kind, target):
        """Symbolic links, hard links (even to members), FIFOs and devices are refused."""
        info = tarfile.TarInfo("artifacts/0/factor.txt")
        info.type, info.linkname = kind, target
        contents = _members(archive)
        del contents["artifacts/0/factor.txt"]
        bad = _write(workspace / "bad.ngm", contents, [info])
        message = _refused(bad, "refusing member 'artifacts/0/factor.txt'")
        assert "regular files" in message
        assert _files_outside(workspace) == []

    def test_directory_outside(self, archive, workspace):
        """A directory member named outside the layout is refused too."""
        info = tarfile.TarInfo("../outside")
        info.type = tarfile.DIRTYPE
        bad = _write(workspace / "bad.ngm", _members(archive), [info])
        _refused(bad, "refusing member '../outside'")

    def test_artifact_listed_outside(self, archive, workspace):
        """meta.json cannot point an artifact at a path outside artifacts/ or at a key that is
        not a module parameter."""
        meta = json.loads(_members(archive)["meta.json"])
        for artifact in ({"key": ["nodes", "scale", "params", "path"], "member": "../x"},
                         {"key": ["nodes", "scale", "module"], "member": "artifacts/0/factor.txt"},
                         {"key": ["trainer", "default_root_dir"],
                          "member": "artifacts/0/factor.txt"}):
            meta["artifacts"] = [artifact]
            _refused(_changed(archive, meta_json=json.dumps(meta).encode()), "artifact")
        assert _files_outside(workspace) == []

    @pytest.mark.parametrize("artifacts", [[1], "abc", [{"member": ["a"]}], {"a": 1},
                                           [{"key": "x", "member": "artifacts/0/factor.txt"}]])
    def test_malformed_artifact_table(self, archive, artifacts):
        """A malformed artifact table in meta.json is an ArchiveError, not a crash."""
        meta = json.loads(_members(archive)["meta.json"])
        meta["artifacts"] = artifacts
        with pytest.raises(ArchiveError):
            GraphModel.restore_from(_changed(archive, meta_json=json.dumps(meta).encode()))

    def test_artifact_code_is_not_run(self, archive, workspace):
        """A Python file packed as an artifact is only copied into the restore folder."""
        canary = workspace / "canary"
        contents = _members(archive)
        contents["artifacts/0/factor.txt"] = b"2.5"
        contents["artifacts/0/sitecustomize.py"] = f"open({str(canary)!r}, 'w')\n".encode()
        meta = json.loads(contents["meta.json"])
        meta["artifacts"].append({"key": ["nodes", "scale", "params", "path"],
                                  "member": "artifacts/0/sitecustomize.py"})
        contents["meta.json"] = json.dumps(meta).encode()
        model = GraphModel.restore_from(_write(workspace / "bad.ngm", contents))
        assert Path(model.plan.nodes["scale"].params["path"]).name == "sitecustomize.py"
        assert not canary.exists()
        assert _files_outside(workspace) == []


class TestSizes:
    """Members claim no more than the file holds, and only what meta.json lists is read."""

    def _restore(self, archive: Path, extra: list[tuple[str, bytes, dict]],
                 sparse: int | None = None, listed: tuple[str, ...] = ()) -> str:
        members = [(n, d, {"sparse": sparse} if sparse and n.startswith("artifacts/") else {})
                   for n, d in _members(archive).items()]
        meta = json.loads(members[0][1])
        meta["artifacts"] += [{"key": ["nodes", "scale", "params", "path"], "member": n}
                              for n in listed]
        members[0] = ("meta.json", json.dumps(meta).encode(), {})
        bad = archive.parent / "bad.ngm"
        bad.write_bytes(raw_tar(members + extra))
        tracemalloc.start()
        try:
            with pytest.raises(ArchiveError) as err:
                GraphModel.restore_from(bad)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20, f"{peak} B traced restoring a {bad.stat().st_size} B archive"
        return str(err.value)

    def test_sparse_member(self, archive, workspace):
        """A GNU sparse artifact claiming 1000 MB in a 5 KB file is refused from its header
        (it was expanded to 1000 MB of zeros in memory and on disk before)."""
        message = self._restore(archive, [], sparse=1000 << 20)
        assert "refusing member 'artifacts/0/factor.txt': it is a sparse file (claiming " \
            "1048576000 B)" in message
        assert _files_outside(workspace) == []

    def test_large_sparse_members(self, archive):
        """Three sparse members of 7.9 GB each (under the per-member limit) are refused."""
        names = ("artifacts/1/a", "artifacts/2/b", "artifacts/3/c")
        extra = [(n, b"x", {"sparse": int(7.9 * (1 << 30))}) for n in names]
        assert "refusing member 'artifacts/1/a': it is a sparse file" in \
            self._restore(archive, extra, listed=names)

    def test_size_beyond_the_file(self, archive):
        """A header claiming 100 MB with 3 bytes stored is an incomplete archive."""
        members = [(n, d, {"size": 100 << 20} if n.startswith("artifacts/") else {})
                   for n, d in _members(archive).items()]
        bad = archive.parent / "bad.ngm"
        bad.write_bytes(raw_tar(members))
        _refused(bad, "is not a complete neuralgraph archive")

    def test_unlisted_member(self, archive):
        """An artifact that meta.json does not list is refused before it is read."""
        message = self._restore(archive, [("artifacts/7/extra.bin", b"\0" * 8192, {})])
        assert "refusing member 'artifacts/7/extra.bin': meta.json does not list it" in message

    def test_file_and_folder(self, archive, workspace):
        """`artifacts/0` a file while `artifacts/0/factor.txt` needs it as a folder: refused
        (a NotADirectoryError traceback before)."""
        message = self._restore(archive, [("artifacts/0", b"x", {})], listed=("artifacts/0",))
        assert "the member 'artifacts/0' is a file, so it cannot also be a folder" in message
        assert _files_outside(workspace) == []

    def test_same_name_twice(self, archive):
        """A member given twice (tar keeps the last) is refused."""
        message = self._restore(archive, [("weights.safetensors", b"x", {})])
        assert "refusing member 'weights.safetensors': it appears twice" in message


class TestGraph:
    def _graph(self, archive: Path, change: Callable[[dict], None]) -> Path:
        config = yaml.safe_load(_members(archive)["graph.yaml"])
        change(config)
        return _changed(archive, graph_yaml=yaml.safe_dump(config).encode())

    @pytest.mark.parametrize("module", ["os.system", "subprocess.Popen", "builtins.eval",
                                        "neuralgraph.model.GraphModel", "ng_toy.os.system",
                                        "torch.nn.Linear"])
    def test_dotted_import_paths(self, archive, module):
        """A module named by an import path is looked up in the registry only: unknown."""
        bad = self._graph(archive, lambda c: c["nodes"]["head"].update(module=module))
        with pytest.raises(GraphError, match=f"unknown module '{module}'"):
            GraphModel.restore_from(bad)

    def test_unknown_data_source(self, archive):
        """The data source is a registry name too."""
        bad = self._graph(archive, lambda c: c["data"].update(module="os.popen"))
        with pytest.raises(GraphError, match=r"unknown data source 'os\.popen'"):
            GraphModel.restore_from(bad)

    def test_yaml_python_tags(self, archive, workspace):
        """graph.yaml with !!python/object tags is refused by the safe loader; nothing runs."""
        canary = workspace / "canary"
        original = _members(archive)["graph.yaml"].decode().splitlines(keepends=True)
        assert original[0].startswith("name:")  # replaced, so that no key appears twice
        text = (f"name: !!python/object/apply:os.system ['touch {canary}']\n"
                + "".join(original[1:]))
        with pytest.raises(GraphError, match="invalid YAML: could not determine a constructor"):
            GraphModel.restore_from(_changed(archive, graph_yaml=text.encode()))
        assert not canary.exists()

    def test_interpolation_is_refused(self, archive):
        """A ${oc.env:...} interpolation (which would read the environment) is refused."""
        bad = self._graph(archive, lambda c: c.update(name="${oc.env:HOME}"))
        _refused(bad, "interpolation")

    def test_alias_bomb_is_refused(self, archive):
        """YAML aliases (a "billion laughs" graph expands exponentially) are refused at once."""
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
                  f"*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
        text = "\n".join(lines) + "\n" + _members(archive)["graph.yaml"].decode()
        _refused(_changed(archive, graph_yaml=text.encode()), "YAML aliases")

    def test_not_a_mapping(self, archive):
        """A graph.yaml that is not a mapping is a GraphError naming the member."""
        with pytest.raises(GraphError, match=r"graph\.yaml:1"):
            GraphModel.restore_from(_changed(archive, graph_yaml=b"- 1\n- 2\n"))


class TestMetadata:
    def test_newer_format(self, archive):
        """An archive from a newer format says which and asks to upgrade."""
        meta = json.loads(_members(archive)["meta.json"])
        meta.update(format_version=FORMAT_VERSION + 1, neuralgraph_version="9.0")
        message = _refused(_changed(archive, meta_json=json.dumps(meta).encode()),
                           "upgrade neuralgraph")
        assert f"archive format {FORMAT_VERSION + 1} by neuralgraph 9.0" in message
        assert f"reads format {FORMAT_VERSION} or older" in message

    @pytest.mark.parametrize("meta", [b"{}", b"[]", b'{"format_version": "1"}',
                                      b'{"format_version": true}', b'{"format_version": 0}',
                                      b"not json", b"\xff\xfe"])
    def test_bad_meta(self, archive, meta):
        """A meta.json without a usable format version is an ArchiveError."""
        with pytest.raises(ArchiveError, match=r"meta\.json"):
            GraphModel.restore_from(_changed(archive, meta_json=meta))

    @pytest.mark.parametrize("missing", ["meta_json", "graph_yaml", "weights_safetensors"])
    def test_missing_member(self, archive, missing):
        """Each required member missing is named."""
        with pytest.raises(ArchiveError, match="the archive has no"):
            GraphModel.restore_from(_changed(archive, **{missing: None}))

    def test_truncated_and_compressed(self, archive, workspace):
        """A truncated archive and a gzip-compressed tar are refused, not a crash."""
        with tarfile.open(archive) as tar:
            start = tar.getmember("weights.safetensors").offset_data
        cut = workspace / "cut.ngm"
        cut.write_bytes(archive.read_bytes()[: start + 10])  # ends inside the weights
        _refused(cut, "not a complete neuralgraph archive")
        packed = workspace / "packed.ngm"
        with tarfile.open(packed, "w:gz") as tar:
            for name, content in _members(archive).items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        _refused(packed, "not a complete neuralgraph archive")
        garbage = workspace / "garbage.ngm"
        garbage.write_bytes(os.urandom(4096))
        _refused(garbage, "not a complete neuralgraph archive")


class TestCommandLine:
    @pytest.mark.parametrize("change", ["pickle", "dotted", "symlink", "newer"])
    def test_evaluate_exits_2(self, archive, workspace, capsys, change):
        """`neuralgraph evaluate --model BAD.ngm` prints one message and exits 2."""
        canary = workspace / "canary"
        contents = _members(archive)
        extra = []
        if change == "pickle":
            contents["weights.safetensors"] = pickle.dumps(Canary(canary))
        elif change == "dotted":
            contents["graph.yaml"] = contents["graph.yaml"].replace(b"module: Linear",
                                                                    b"module: os.system")
        elif change == "symlink":
            info = tarfile.TarInfo("artifacts/1/x")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            extra.append(info)
        else:
            meta = json.loads(contents["meta.json"])
            meta["format_version"] = 99
            contents["meta.json"] = json.dumps(meta).encode()
        bad = _write(workspace / "bad.ngm", contents, extra)
        manifest = workspace / "m.json"
        manifest.write_text("{}\n")
        code = main(["evaluate", "--model", str(bad), "--manifest", str(manifest)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 3
        assert not canary.exists()

    def test_transcribe_exits_2(self, archive, workspace, capsys):
        """The ASR plugin's `neuralgraph transcribe --model BAD.ngm` refuses the same way."""
        pytest.importorskip("neuralgraph_asr")
        contents = _members(archive)
        contents["weights.safetensors"] = pickle.dumps(Canary(workspace / "canary"))
        bad = _write(workspace / "bad.ngm", contents)
        code = main(["transcribe", "--model", str(bad), str(workspace / "a.wav")])
        err = capsys.readouterr().err
        assert code == 2 and "is not a safetensors file" in err
        assert not (workspace / "canary").exists()

"""The ``.ngm`` model archive: a tar of data, never code.

Members: ``meta.json`` (format version, artifact table), ``graph.yaml`` (the resolved graph),
``weights.safetensors`` (no pickle) and ``artifacts/...`` (tokenizer models, vocabularies: files
named by modules' ``artifacts`` parameters). Saving writes a temporary file and renames it, so a
crash leaves the previous archive intact. Restoring accepts only those member names, only regular
files, and rebuilds modules through the registry alone.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

import torch
import yaml

from neuralgraph.errors import UserError

if TYPE_CHECKING:
    from neuralgraph.model import GraphModel

__all__ = ["FORMAT_VERSION", "ArchiveError", "restore_archive", "save_archive"]

FORMAT_VERSION = 1
META, GRAPH, WEIGHTS, ARTIFACTS = "meta.json", "graph.yaml", "weights.safetensors", "artifacts"
MAX_MEMBER_BYTES = 8 << 30
Artifact = tuple[str, list[str]]  # a member of artifacts/ and the parameter's key path


class ArchiveError(UserError):
    """An archive that is not a valid ``.ngm`` file, or one this version refuses to load."""


# --- saving ----------------------------------------------------------------------------------


def _artifact_slots(config: dict[str, Any], model: GraphModel) -> list[tuple[list[str], str]]:
    """(key path to the parameter, file path) of every artifact the graph names."""
    slots: list[tuple[list[str], str]] = []
    plans = [("nodes", n, p) for n, p in model.plan.nodes.items()]
    plans += [("metrics", n, p) for n, p in model.plan.metrics.items()]
    for section, name, plan in plans:
        for param in getattr(plan.cls, "artifacts", ()):
            value = plan.params.get(param)
            if isinstance(value, str):
                slots.append(([section, name, "params", param], value))
    if model.plan.data is not None:
        for param in getattr(model.plan.data.cls, "artifacts", ()):
            value = model.plan.data.params.get(param)
            if isinstance(value, str):
                slots.append((["data", "params", param], value))
    return slots


def _set(config: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        config = config[key]
    config[path[-1]] = value


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def save_archive(model: GraphModel, path: Path) -> Path:
    """Write ``model`` to ``path`` atomically; returns the path."""
    from safetensors.torch import save

    import neuralgraph
    from neuralgraph.model import NonFiniteWeightsError, nonfinite_summary

    config = json.loads(json.dumps(model.graph.config))  # a deep, plain copy
    artifacts = []
    for i, (key_path, file) in enumerate(_artifact_slots(config, model)):
        source = Path(file)
        if not source.is_file():
            raise UserError(f"artifact '{'.'.join(key_path)}' names a missing file: {file}")
        member = f"{ARTIFACTS}/{i}/{source.name}"
        artifacts.append({"key": key_path, "member": member, "source": source})
        _set(config, key_path, member)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    if bad := nonfinite_summary(state.items()):
        raise NonFiniteWeightsError(f"refusing to save {path}: {bad}; an archive never holds "
                                    "non-finite weights")
    meta = {
        "format_version": FORMAT_VERSION,
        "neuralgraph_version": neuralgraph.__version__,
        "artifacts": [{"key": a["key"], "member": a["member"]} for a in artifacts],
    }
    with atomic_write(path) as handle:
        with tarfile.open(fileobj=handle, mode="w") as tar:
            _add_bytes(tar, META, json.dumps(meta, indent=1).encode())
            _add_bytes(tar, GRAPH, yaml.safe_dump(config, sort_keys=False).encode())
            _add_bytes(tar, WEIGHTS, save(state))
            for artifact in artifacts:
                _add_bytes(tar, artifact["member"], artifact["source"].read_bytes())
    return path


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file next to ``path``, renamed onto it when the block
    ends without error: a crash or kill mid-write leaves the previous file intact.

    The file gets the usual permissions (``0666`` minus the umask), not ``mkstemp``'s ``0600``;
    the file and the rename are fsynced.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), file_mode())
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def file_mode() -> int:
    """The permissions a new file gets here: ``0o666`` minus the process's umask (``mkstemp``
    makes private ``0o600`` files)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- restoring -------------------------------------------------------------------------------


def _safe_member_name(name: str) -> bool:
    pure = PurePosixPath(name)
    if pure.is_absolute() or "\\" in name or any(part in ("..", "") for part in pure.parts):
        return False
    if name in (META, GRAPH, WEIGHTS):
        return True
    return len(pure.parts) >= 2 and pure.parts[0] == ARTIFACTS


def _read_members(path: Path) -> tuple[dict[str, bytes], dict[str, Any], list[Artifact]]:
    """Every member's bytes, the metadata and its artifact table; refuses links, special
    files, sparse files, names outside the layout, a name given twice, and artifacts that
    ``meta.json`` does not list (before reading them).

    Only plain (uncompressed) tars are read, and every member's data must lie inside the file
    before any is read: the members together are never larger than the archive. (A GNU sparse
    member could claim far more than it stores, so sparse members are refused.)
    """
    if not path.is_file():
        raise ArchiveError(f"model archive not found: {path}")
    size = path.stat().st_size
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            infos = tar.getmembers()  # the headers alone: data is skipped, not read
            files = _check_layout(path, infos, size)
            members[META] = _read_data(tar, files[META])
            meta = _read_meta(path, members)
            artifacts = _artifact_table(path, meta)
            unlisted = sorted(set(files) - {META, GRAPH, WEIGHTS} - {a[0] for a in artifacts})
            if unlisted:
                raise ArchiveError(f"{path}: refusing member '{unlisted[0]}': meta.json does not "
                                   "list it as an artifact, and an archive holds only meta.json, "
                                   "graph.yaml, weights.safetensors and the artifacts it lists")
            for name, info in files.items():
                if name != META:
                    members[name] = _read_data(tar, info)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"{path} is not a complete neuralgraph archive (.ngm): "
                           f"{exc}") from None
    return members, meta, artifacts


def _check_layout(path: Path, infos: list[tarfile.TarInfo],
                  size: int) -> dict[str, tarfile.TarInfo]:
    """The regular-file members by name, once every header is checked (names, types, sizes
    within the file, no name twice, no file where another member needs a folder)."""
    files: dict[str, tarfile.TarInfo] = {}
    for info in infos:
        _check_member(path, info)
        if info.isdir():
            continue
        if info.name in files:
            raise ArchiveError(f"{path}: refusing member '{info.name}': it appears twice")
        if info.offset_data + info.size > size:
            raise tarfile.ReadError(f"member '{info.name}' claims {info.size} B but the file "
                                    f"ends {max(0, size - info.offset_data)} B after its start")
        files[info.name] = info
    for name in files:
        parent = PurePosixPath(name).parent
        while parent != PurePosixPath("."):
            if str(parent) in files:
                raise ArchiveError(f"{path}: refusing member '{name}': the member '{parent}' is "
                                   "a file, so it cannot also be a folder")
            parent = parent.parent
    for required in (META, GRAPH, WEIGHTS):
        if required not in files:
            raise ArchiveError(f"{path}: the archive has no {required}")
    return files


def _read_data(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(info)
    if handle is None:
        raise tarfile.ReadError(f"member '{info.name}' cannot be read")
    data = handle.read()
    if len(data) != info.size:
        raise tarfile.ReadError(f"member '{info.name}' is truncated")
    return data


def _artifact_table(path: Path, meta: dict[str, Any]) -> list[Artifact]:
    """``meta.json``'s artifacts as (member, key path) pairs, each checked: a member under
    ``artifacts/``, a key that is a module parameter."""
    artifacts = meta.get("artifacts", [])
    if not isinstance(artifacts, list):
        raise ArchiveError(f"{path}: meta.json 'artifacts' must be a list")
    table: list[Artifact] = []
    for artifact in artifacts:
        member = artifact.get("member") if isinstance(artifact, dict) else None
        key = artifact.get("key") if isinstance(artifact, dict) else None
        if not isinstance(member, str) or not _safe_member_name(member) or \
                not member.startswith(f"{ARTIFACTS}/"):
            raise ArchiveError(f"{path}: meta.json lists a bad artifact {artifact!r}")
        if not _artifact_key(key):
            raise ArchiveError(f"{path}: artifact key {key!r} is not a module parameter")
        table.append((member, key))
    return table


def _check_member(path: Path, info: tarfile.TarInfo) -> None:
    if not (info.isfile() or info.isdir()):
        kind = "a symbolic link" if info.issym() else "a hard link" if info.islnk() else \
            "a device, FIFO or other special file"
        target = f" to '{info.linkname}'" if info.linkname else ""
        raise ArchiveError(f"{path}: refusing member '{info.name}': it is {kind}{target}; an "
                           "archive holds only regular files")
    if info.issparse():
        raise ArchiveError(f"{path}: refusing member '{info.name}': it is a sparse file "
                           f"(claiming {info.size} B); an archive holds only regular files")
    if not _safe_member_name(info.name.rstrip("/") if info.isdir() else info.name) and \
            not (info.isdir() and info.name.rstrip("/") == ARTIFACTS):
        raise ArchiveError(f"{path}: refusing member '{info.name}': only meta.json, "
                           "graph.yaml, weights.safetensors and artifacts/... may appear, with "
                           "relative paths and no '..'")
    if info.size > MAX_MEMBER_BYTES:
        raise ArchiveError(f"{path}: member '{info.name}' is too large ({info.size} B)")


def _extract_dir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="ngm-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def _read_meta(path: Path, members: dict[str, bytes]) -> dict[str, Any]:
    try:
        meta = json.loads(members[META])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{path}: meta.json is not JSON: {exc}") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ArchiveError(f"{path}: meta.json has no format_version (a positive int)")
    if version > FORMAT_VERSION:
        raise ArchiveError(f"{path} was written in archive format {version} by neuralgraph "
                           f"{meta.get('neuralgraph_version')}; this neuralgraph "
                           f"{_version()} reads format {FORMAT_VERSION} or older: upgrade "
                           "neuralgraph")
    return meta


def _version() -> str:
    import neuralgraph

    return str(neuralgraph.__version__)


def _read_graph_text(path: Path, members: dict[str, bytes]) -> str:
    """graph.yaml as text: plain data, as ``save_archive`` writes it (no YAML aliases, which
    can expand to exponential size, and no ``${...}`` interpolations, which can read
    environment variables)."""
    try:
        text = members[GRAPH].decode("utf-8")
        events = list(yaml.parse(text, Loader=yaml.SafeLoader))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ArchiveError(f"{path}: graph.yaml is not YAML: {exc}") from None
    if any(isinstance(e, yaml.AliasEvent) for e in events):
        raise ArchiveError(f"{path}: graph.yaml uses YAML aliases; archives hold plain, "
                           "resolved graphs")
    if any(isinstance(e, yaml.ScalarEvent) and "${" in e.value for e in events):
        raise ArchiveError(f"{path}: graph.yaml has a '${{...}}' interpolation; archives hold "
                           "resolved graphs")
    return text


def restore_archive(path: Path, cls: type[GraphModel], map_location: str | torch.device = "cpu",
                    overrides: Any = ()) -> GraphModel:
    """Rebuild a model from an archive; refuses anything that is not plain data.

    Nothing from the archive is executed: the graph is YAML read with the safe loader, modules
    are found in the registry by name (never imported by a path the archive gives), weights are
    safetensors (no pickle), and artifacts are written into a new temporary folder.
    """
    from neuralgraph.config import apply_overrides, parse_yaml
    from neuralgraph.graph import Graph

    members, _, artifacts = _read_members(path)
    config, index = parse_yaml(_read_graph_text(path, members), f"{path}:{GRAPH}")
    _place_artifacts(path, artifacts, members, config)
    config = apply_overrides(config, list(overrides), index)
    model = cls(Graph(config, index))
    _load_weights(path, members[WEIGHTS], model)
    model.to(map_location)
    model.eval()
    return model


def _place_artifacts(path: Path, artifacts: list[Artifact], members: dict[str, bytes],
                     config: dict[str, Any]) -> None:
    """Write the artifact members into a new temporary folder; point the graph at them."""
    directory: Path | None = None
    for member, key in artifacts:
        if member not in members:
            raise ArchiveError(f"{path}: artifact '{member}' is listed but missing")
        directory = directory or _extract_dir()
        target = directory / member
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(members[member])
        _set_path(config, key, str(target), path)


def _artifact_key(key: Any) -> bool:
    """Whether ``key`` is where ``save_archive`` puts artifacts: a node's, a metric's or the
    data source's parameter."""
    if not isinstance(key, list) or not all(isinstance(k, str) for k in key):
        return False
    return (len(key) == 4 and key[0] in ("nodes", "metrics") and key[2] == "params") or \
        (len(key) == 3 and key[:2] == ["data", "params"])


def _load_weights(path: Path, data: bytes, model: GraphModel) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        state = load(data)
    except (SafetensorError, ValueError, OSError, RuntimeError) as exc:
        raise ArchiveError(f"{path}: weights.safetensors is not a safetensors file (refusing "
                           f"anything else, e.g. a pickle): {exc}") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes differ
        first = str(exc).strip().splitlines()
        raise ArchiveError(f"{path}: the weights do not fit the graph: "
                           f"{' '.join(line.strip() for line in first[:3])}") from None
    if missing or unexpected:
        raise ArchiveError(f"{path}: the weights do not match the graph (missing: "
                           f"{missing[:5]}, unexpected: {unexpected[:5]})")


def _set_path(config: dict[str, Any], key: list[Any], value: str, path: Path) -> None:
    node: Any = config
    try:
        for part in key[:-1]:
            node = node[part]
        if not isinstance(node, dict) or key[-1] not in node:
            raise KeyError(key[-1])
        node[key[-1]] = value
    except (KeyError, TypeError, IndexError):
        raise ArchiveError(f"{path}: artifact key {key} is not in the graph") from None

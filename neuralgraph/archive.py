"""The ``.ngm`` model archive: a tar of data, never code.

Members: ``meta.json`` (format version, artifact table), ``graph.yaml`` (the resolved graph),
``weights.safetensors`` (no pickle) and ``artifacts/...`` (tokenizer models, vocabularies: files
named by modules' ``artifacts`` parameters). Saving writes a temporary file and renames it, so a
crash leaves the previous archive intact. Restoring accepts only those member names, only regular
files, and rebuilds modules through the registry alone.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import torch
import yaml

from neuralgraph.errors import UserError

if TYPE_CHECKING:
    from neuralgraph.model import GraphModel

__all__ = ["FORMAT_VERSION", "ArchiveError", "restore_archive", "save_archive"]

FORMAT_VERSION = 1
META, GRAPH, WEIGHTS, ARTIFACTS = "meta.json", "graph.yaml", "weights.safetensors", "artifacts"
MAX_MEMBER_BYTES = 8 << 30


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
    meta = {
        "format_version": FORMAT_VERSION,
        "neuralgraph_version": neuralgraph.__version__,
        "artifacts": [{"key": a["key"], "member": a["member"]} for a in artifacts],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            with tarfile.open(fileobj=handle, mode="w") as tar:
                _add_bytes(tar, META, json.dumps(meta, indent=1).encode())
                _add_bytes(tar, GRAPH, yaml.safe_dump(config, sort_keys=False).encode())
                _add_bytes(tar, WEIGHTS, save(state))
                for artifact in artifacts:
                    _add_bytes(tar, artifact["member"], artifact["source"].read_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


# --- restoring -------------------------------------------------------------------------------


def _safe_member_name(name: str) -> bool:
    pure = PurePosixPath(name)
    if pure.is_absolute() or "\\" in name or any(part in ("..", "") for part in pure.parts):
        return False
    if name in (META, GRAPH, WEIGHTS):
        return True
    return len(pure.parts) >= 2 and pure.parts[0] == ARTIFACTS


def _read_members(path: Path) -> dict[str, bytes]:
    if not path.is_file():
        raise ArchiveError(f"model archive not found: {path}")
    try:
        tar = tarfile.open(path, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveError(f"{path} is not a neuralgraph archive (.ngm): {exc}") from None
    members: dict[str, bytes] = {}
    with tar:
        for info in tar.getmembers():
            if info.isdir():
                continue
            if not info.isfile():
                kind = "a symlink" if info.issym() else "a hard link" if info.islnk() else \
                    "a special file"
                raise ArchiveError(f"{path}: refusing member '{info.name}': it is {kind}")
            if not _safe_member_name(info.name):
                raise ArchiveError(f"{path}: refusing member '{info.name}': only meta.json, "
                                   "graph.yaml, weights.safetensors and artifacts/... may "
                                   "appear, with relative paths and no '..'")
            if info.size > MAX_MEMBER_BYTES:
                raise ArchiveError(f"{path}: member '{info.name}' is too large ({info.size} B)")
            handle = tar.extractfile(info)
            assert handle is not None
            members[info.name] = handle.read()
    for required in (META, GRAPH, WEIGHTS):
        if required not in members:
            raise ArchiveError(f"{path}: the archive has no {required}")
    return members


def _extract_dir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="ngm-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def restore_archive(path: Path, cls: type[GraphModel], map_location: str | torch.device = "cpu",
                    overrides: Any = ()) -> GraphModel:
    """Rebuild a model from an archive; refuses anything that is not plain data."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    from neuralgraph.graph import Graph

    members = _read_members(path)
    try:
        meta = json.loads(members[META])
        config = yaml.safe_load(members[GRAPH])
    except (ValueError, yaml.YAMLError) as exc:
        raise ArchiveError(f"{path}: unreadable metadata: {exc}") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(version, int):
        raise ArchiveError(f"{path}: meta.json has no format_version")
    if version > FORMAT_VERSION:
        raise ArchiveError(f"{path} was written in archive format {version} by neuralgraph "
                           f"{meta.get('neuralgraph_version')}; this neuralgraph reads format "
                           f"{FORMAT_VERSION} or older: upgrade neuralgraph")
    if not isinstance(config, dict):
        raise ArchiveError(f"{path}: graph.yaml is not a mapping")
    artifacts = meta.get("artifacts", [])
    if artifacts:
        directory = _extract_dir()
        for artifact in artifacts:
            member = artifact.get("member")
            if member not in members:
                raise ArchiveError(f"{path}: artifact '{member}' is listed but missing")
            target = directory / member
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(members[member])
            _set_path(config, artifact.get("key", []), str(target), path)
    graph = Graph.from_config(config, overrides=list(overrides))
    model = cls(graph)
    try:
        state = load(members[WEIGHTS])
    except (SafetensorError, ValueError, OSError) as exc:
        raise ArchiveError(f"{path}: weights.safetensors is not a safetensors file: "
                           f"{exc}") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ArchiveError(f"{path}: the weights do not match the graph (missing: "
                           f"{missing[:5]}, unexpected: {unexpected[:5]})")
    model.to(map_location)
    model.eval()
    return model


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

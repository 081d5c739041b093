"""The catalog of pretrained models: entries that plugins register, and fetching their files.

A plugin adds :class:`PretrainedEntry` values with ``registry.add_pretrained(entry)`` from its
``register_pretrained`` hook. An entry names its file's sources, tried in order:

- ``package:PKG/path/in/package.ngm``: a file shipped inside an installed package (small models);
- ``https://...`` or ``http://...``: downloaded into the cache folder (:func:`cache_dir`,
  ``~/.cache/neuralgraph`` or ``$NEURALGRAPH_CACHE``), streamed into ``FILE.part`` with a
  progress bar, resumed with an HTTP ``Range`` request after an interruption, checked against
  the entry's size and sha256, then renamed onto ``FILE`` (a rename is atomic: a reader never
  sees half a file);
- a local path (``/models/x.ngm``, ``~/x.ngm``).

Every file is checked against the entry's sha256 before it is returned: a corrupt or changed file
is refused and fetched again, never loaded. :func:`resolve_model` is what every ``--model``
option calls: an existing path wins, else a catalog name, else a :class:`~neuralgraph.UserError`
listing close names.

This module imports no torch: ``neuralgraph pretrained list|info|download`` stay fast.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import http.client
import importlib.util
import os
import re
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from neuralgraph.errors import UserError

if TYPE_CHECKING:
    from neuralgraph.registry import Entry, Registry

__all__ = [
    "DownloadError",
    "Measured",
    "PretrainedEntry",
    "cache_dir",
    "cached_path",
    "catalog",
    "fetch",
    "human_size",
    "lookup",
    "lookup_entry",
    "resolve_model",
    "sha256_of",
]

CACHE_ENV = "NEURALGRAPH_CACHE"
CHUNK = 1 << 16
TIMEOUT_S = 30.0
ATTEMPTS = 4  # connections per URL: the first, and resumes after interruptions
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class DownloadError(UserError):
    """A pretrained model's file could not be fetched from any of its sources (the message
    says why for each, and, for URLs, where to put the file by hand)."""


# --- catalog entries -------------------------------------------------------------------------


@attrs.frozen
class Measured:
    """One figure measured for a pretrained model, on data it was not trained on.

    Attributes:
        metric: what was measured (``"WER"``).
        value: the figure (``4.65``).
        unit: written after the value (``"%"``).
        data: the data it was measured on (``"600 held-out utterances of unseen voices,
            data/digits8k/heldout_manifest.json"``).
        how: the command or the decoding that gave it (``"transcribe --wer, greedy"``).
    """

    metric: str
    value: float
    unit: str = ""
    data: str = ""
    how: str = ""

    def __str__(self) -> str:
        value = f"{self.metric} {self.value:g}{self.unit}"
        return value + "".join(f"  {part}" for part in (self.data, self.how) if part)

    @property
    def short(self) -> str:
        """``WER 4.65%``."""
        return f"{self.metric} {self.value:g}{self.unit}"


def _tuple_of_str(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


@attrs.frozen
class PretrainedEntry:
    """A pretrained model in the catalog: what it is, where its file comes from, how to check
    it, and what was measured for it. ``neuralgraph pretrained info NAME`` prints
    :meth:`to_card`.

    Attributes:
        name: what users type (``GraphModel.from_pretrained(name)``, ``--model name``):
            lowercase letters, digits, ``-``, ``_`` and ``.``.
        task: what it does (``"speech recognition"``).
        description: one or two sentences: the architecture, the vocabulary, its limits.
        sources: where the file is, tried in order: ``package:PKG/path``, ``https://``,
            ``http://`` URLs, local paths (a string for one source).
        sha256: the file's SHA-256, 64 lowercase hex digits; a file that differs is refused.
        size: the file's size in bytes.
        license: the license of the weights (an SPDX identifier).
        metrics: the figures measured on held-out data; the first is the headline that
            ``neuralgraph pretrained list`` shows.
        recipe: how it was trained (the graph file, the command, the seed, the time).
        training_data: what it was trained on.
    """

    name: str
    task: str
    description: str
    sources: tuple[str, ...] = attrs.field(converter=_tuple_of_str)
    sha256: str = attrs.field(converter=str.lower)
    size: int
    license: str
    metrics: tuple[Measured, ...] = attrs.field(default=(), converter=tuple)
    recipe: str = ""
    training_data: str = ""

    def __attrs_post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"a pretrained model's name must be lowercase letters, digits, "
                             f"'-', '_' or '.' (got {self.name!r})")
        if not _SHA256.match(self.sha256):
            raise ValueError(f"pretrained model '{self.name}': sha256 must be 64 hex digits "
                             f"(got {self.sha256!r})")
        if not self.sources:
            raise ValueError(f"pretrained model '{self.name}' names no source")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size <= 0:
            raise ValueError(f"pretrained model '{self.name}': size must be a positive number "
                             f"of bytes (got {self.size!r})")
        bad = [m for m in self.metrics if not isinstance(m, Measured)]
        if bad:
            raise ValueError(f"pretrained model '{self.name}': metrics must be Measured "
                             f"values (got {bad[0]!r})")

    @property
    def headline(self) -> str:
        """The first measured figure, short (``WER 4.65%``), or ``-``."""
        return self.metrics[0].short if self.metrics else "-"

    @property
    def filename(self) -> str:
        """The file's name in the cache: the entry's name and its first source's suffix."""
        suffixes = [Path(_source_path(s)).suffix for s in self.sources]
        return self.name + next((s for s in suffixes if s), ".ngm")

    def to_card(self, plugin: str | None = None) -> str:
        """The model card: what it is, how it was trained, on what, the figures measured on
        held-out data, the license, the checksum and the sources."""
        title = f"{self.name} — {self.task}" + (f" (plugin '{plugin}')" if plugin else "")
        lines = [title, "", *textwrap.wrap(" ".join(self.description.split()), 96), ""]
        if self.recipe:
            lines += ["recipe:", *_indent(self.recipe), ""]
        if self.training_data:
            lines += ["training data:", *_indent(self.training_data), ""]
        if self.metrics:
            lines.append("measured on held-out data:")
            for m in self.metrics:
                lines.append(f"  {m.short}")
                lines += [f"      {part}" for part in (m.data, m.how) if part]
            lines.append("")
        lines += [f"license: {self.license}",
                  f"size:    {human_size(self.size)} ({self.size} bytes)",
                  f"sha256:  {self.sha256}",
                  "sources:", *(f"  {s}" for s in self.sources)]
        return "\n".join(lines)


def _indent(text: str) -> list[str]:
    return [f"  {line}" if line else "" for line in text.strip().splitlines()]


def human_size(size: int) -> str:
    """``1.1 MB``: bytes in decimal units."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000  # type: ignore[assignment]
    raise AssertionError  # unreachable


# --- the catalog -----------------------------------------------------------------------------


def catalog(registry: Registry | None = None) -> list[tuple[str, PretrainedEntry]]:
    """Every entry as ``(plugin, entry)``, sorted by name, from ``registry`` or from the
    plugins' ``register_pretrained`` hooks (:func:`neuralgraph.registry.get_catalog`)."""
    registry = _registry(registry)
    return sorted(((e.plugin, e.obj) for e in registry.entries("pretrained_model")),
                  key=lambda pe: (pe[1].name, pe[0]))


def lookup(name: str, registry: Registry | None = None) -> PretrainedEntry:
    """The entry called ``name`` (or ``plugin.name``); an unknown name is a UserError with a
    "did you mean"."""
    return lookup_entry(name, registry).obj


def lookup_entry(name: str, registry: Registry | None = None) -> Entry:
    """The registry's record of ``name``: ``.obj`` the entry, ``.plugin`` who registered it."""
    registry = _registry(registry)
    try:
        return registry.get("pretrained_model", name)
    except UserError as exc:
        if "several plugins" in str(exc):
            raise
        raise UserError(f"unknown pretrained model '{name}'{_did_you_mean(name, registry)} "
                        "('neuralgraph pretrained list' shows the catalog)") from None


def _did_you_mean(name: str, registry: Registry) -> str:
    """``; did you mean 'a' or 'b'?``: names that look like ``name`` or contain it."""
    names = sorted({e.name for e in registry.entries("pretrained_model")})
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    close += [n for n in names if name.lower() in n.lower() and n not in close]
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{c}'" for c in close[:3]) + "?"


def _registry(registry: Registry | None) -> Registry:
    if registry is not None:
        return registry
    from neuralgraph.registry import get_catalog

    return get_catalog()


def resolve_model(arg: str | os.PathLike[str], registry: Registry | None = None,
                  progress: bool = True) -> Path:
    """What a ``--model`` option names, as a local file: an existing path wins, else a catalog
    name (its file fetched and checked), else a UserError listing the close names."""
    path = Path(arg).expanduser()
    if path.exists():
        return path
    text = os.fspath(arg)
    registry = _registry(registry)
    try:
        entry = registry.get("pretrained_model", text).obj
    except UserError as exc:
        if "several plugins" in str(exc):
            raise
        raise UserError(f"'{text}' is neither a file nor a pretrained model's name"
                        f"{_did_you_mean(text, registry)} ('neuralgraph pretrained list' shows "
                        "the names)") from None
    return fetch(entry, progress=progress)


# --- fetching --------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where downloads go: ``$NEURALGRAPH_CACHE``, else ``~/.cache/neuralgraph``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "neuralgraph"


def cached_path(entry: PretrainedEntry) -> Path:
    """Where ``entry``'s downloaded file lives (and where to put it by hand when offline)."""
    return cache_dir() / "pretrained" / entry.filename


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, in lowercase hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _matches(entry: PretrainedEntry, path: Path) -> str | None:
    """None when ``path`` is ``entry``'s file, else what is wrong with it."""
    size = path.stat().st_size
    if size != entry.size:
        return f"it has {size} bytes, the catalog says {entry.size}"
    digest = sha256_of(path)
    if digest != entry.sha256:
        return f"its sha256 is {digest}, the catalog says {entry.sha256}"
    return None


def _source_path(source: str) -> str:
    """The path part of a source (a URL's path, a package resource's, a file's)."""
    if source.startswith(("http://", "https://")):
        return urllib.parse.urlsplit(source).path
    return source.removeprefix("package:")


def _package_file(source: str) -> Path:
    """``package:PKG/rel/path`` as a file path, found without importing the package."""
    package, _, rel = source.removeprefix("package:").partition("/")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package '{package}' is not installed")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / rel
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"'{rel}' is not in the installed package '{package}'")


def fetch(entry: PretrainedEntry, progress: bool = True) -> Path:
    """The local path of ``entry``'s file, checked against its size and sha256.

    Sources are tried in order; a package or local file is used where it is, a URL's file is
    downloaded into :func:`cached_path` (reused when it is still intact). Raises
    :class:`DownloadError` naming every source and why it failed.
    """
    failures: list[str] = []
    offline: list[str] = []
    for source in entry.sources:
        if source.startswith(("http://", "https://")):
            try:
                return _fetch_url(entry, source, progress)
            except _Offline as exc:
                failures.append(f"{source}: {exc}")
                offline.append(source)
            except (DownloadError, OSError) as exc:
                failures.append(f"{source}: {exc}")
            continue
        try:
            path = (_package_file(source) if source.startswith("package:")
                    else Path(source).expanduser())
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            wrong = _matches(entry, path)
        except OSError as exc:
            failures.append(f"{source}: {exc}")
            continue
        if wrong is None:
            return path
        failures.append(f"{source}: refused, {wrong}")
    message = f"cannot fetch pretrained model '{entry.name}':\n" + "\n".join(
        f"  {line}" for line in failures)
    if offline:
        message += (f"\nIf this machine is offline, download {offline[0]} on one that is not, "
                    f"and put it at {cached_path(entry)} (sha256 {entry.sha256}); "
                    f"{CACHE_ENV} moves the cache folder.")
    raise DownloadError(message)


class _Offline(OSError):
    """The server could not be reached at all (no network, refused, unknown host)."""


class _Interrupted(OSError):
    """A transfer stopped before the end; the partial file is kept, to resume from."""


def _fetch_url(entry: PretrainedEntry, url: str, progress: bool) -> Path:
    """Download ``url`` into the cache (resuming a partial file), check it, rename it."""
    final = cached_path(entry)
    final.parent.mkdir(parents=True, exist_ok=True)
    with _locked(final):
        if final.is_file():
            wrong = _matches(entry, final)
            if wrong is None:
                return final
            print(f"pretrained: the cached {final} is not '{entry.name}' ({wrong}): "
                  "fetching it again", file=sys.stderr)
            final.unlink()
        part = final.with_name(final.name + ".part")
        resumed = part.is_file() and part.stat().st_size > 0
        _download(entry, url, part, progress)
        wrong = _matches(entry, part)
        if wrong is not None and resumed:  # perhaps a stale partial file: once more, whole
            part.unlink()
            _download(entry, url, part, progress)
            wrong = _matches(entry, part)
        if wrong is not None:
            part.unlink()
            raise DownloadError(f"downloaded file refused and deleted: {wrong}")
        os.replace(part, final)
        _fsync_dir(final.parent)
        return final


def _download(entry: PretrainedEntry, url: str, part: Path, progress: bool) -> None:
    """Stream ``url`` into ``part`` until it holds ``entry.size`` bytes, resuming with Range
    after an interruption (up to ATTEMPTS connections)."""
    from neuralgraph.progress import Progress

    last_error: BaseException | None = None
    kib = 1024
    with Progress(-(-entry.size // kib), f"download {entry.name}", unit="KiB",
                  disable=not progress) as bar:
        for _ in range(ATTEMPTS):
            have = part.stat().st_size if part.is_file() else 0
            if have >= entry.size:
                if have == entry.size:
                    return
                part.unlink()  # longer than the file: not a prefix of it
                have = 0
            bar.update(have // kib - bar.n)
            try:
                _transfer(url, part, have, entry.size, bar)
            except _Interrupted as exc:
                last_error = exc
                continue
            if part.stat().st_size >= entry.size:
                bar.update(bar.total - bar.n)
                return
            last_error = _Interrupted(f"the connection closed after {part.stat().st_size} of "
                                      f"{entry.size} bytes")
    raise DownloadError(f"download interrupted {ATTEMPTS} times ({last_error}); "
                        f"run the command again to resume from the {part.stat().st_size} "
                        f"bytes kept in {part}")


def _transfer(url: str, part: Path, have: int, size: int, bar: Any) -> None:
    """One connection: append to ``part`` from byte ``have`` (a server that ignores the Range
    header sends the whole file: ``part`` starts over)."""
    headers = {"User-Agent": "neuralgraph-pretrained/1", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is not a prefix the server knows
            part.unlink()
            raise _Interrupted("the server refused to resume (HTTP 416): starting over") \
                from None
        raise DownloadError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _Offline(f"cannot connect ({exc.reason})") from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _Interrupted(f"{type(exc).__name__}: {exc}") from None
    with response:
        start = 0
        if response.status == 206:
            match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            start = int(match.group(1)) if match else -1
            if start != have:
                part.unlink(missing_ok=True)
                raise _Interrupted(f"the server resumed at byte {start}, not {have}")
        elif response.status != 200:
            raise DownloadError(f"HTTP {response.status} {response.reason}")
        mode = "ab" if start else "wb"  # 200: the whole file, whatever was asked
        if not start:
            bar.update(-bar.n)
        written = start
        try:
            with open(part, mode) as handle:
                while written < size:
                    block = response.read(min(CHUNK, size - written))
                    if not block:
                        break
                    handle.write(block)
                    before = written // 1024
                    written += len(block)
                    bar.update(written // 1024 - before)
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            raise _Interrupted(f"{type(exc).__name__} after {written} of {size} bytes") \
                from None


@contextlib.contextmanager
def _locked(final: Path) -> Iterator[None]:
    """Hold an exclusive lock next to ``final`` (two processes never write one ``.part``)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    lock = final.with_name(f".{final.name}.lock")
    with open(lock, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (a no-op where folders cannot be opened)."""
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


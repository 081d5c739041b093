"""The catalog of pretrained models (neuralgraph/pretrained.py): entries from plugins' hooks,
downloads from a real HTTP server on the loopback address (resume, checksums, servers that
ignore Range, 404, no server), and `neuralgraph pretrained list` showing a plugin's entries."""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import neuralgraph as ng
from neuralgraph.cli import main
from neuralgraph.pretrained import (
    DownloadError,
    Measured,
    PretrainedEntry,
    cache_dir,
    cached_path,
    catalog,
    fetch,
    lookup,
    resolve_model,
)
from neuralgraph.registry import Registry

PAYLOAD = bytes(range(256)) * 160  # 40960 bytes: several chunks, several KiB


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test downloads into its own cache folder."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NEURALGRAPH_CACHE", str(folder))
    return folder


def _entry(*sources: str, data: bytes = PAYLOAD, name: str = "toy-model",
           **fields: Any) -> PretrainedEntry:
    return PretrainedEntry(
        name=name, task="regression", description="A test entry.", sources=sources,
        sha256=hashlib.sha256(data).hexdigest(), size=len(data), license="MIT",
        metrics=(Measured("MSE", 0.25, "", "held-out rows", "evaluate"),), **fields)


# --- a real HTTP server on the loopback address ----------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range`` unless ``server.ranges`` is false; the byte
    counts in ``server.drops`` make the next responses stop early and close the connection."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        server: Any = self.server
        wanted = self.headers.get("Range")
        server.requests.append((self.path, wanted))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if wanted and server.ranges:
            start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if server.ranges else "none")
        self.end_headers()
        if server.drops:
            self.wfile.write(body[: server.drops.pop(0)])  # then the connection drops
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def server() -> Iterator[Any]:
    """A threaded HTTP server on 127.0.0.1 (a free port), with ``url(path)``."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests, httpd.drops, httpd.ranges = {}, [], [], True
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


class TestDownload:
    def test_download_checks_and_lands_in_the_cache(self, server: Any,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
        """A URL's file is streamed into the cache with progress lines, checked, renamed
        (no partial file left), and reused afterwards without a request."""
        server.files["/m.ngm"] = PAYLOAD
        entry = _entry(server.url("/m.ngm"))
        path = fetch(entry)
        assert path == cached_path(entry) == cache_dir() / "pretrained" / "toy-model.ngm"
        assert path.read_bytes() == PAYLOAD
        assert not list(path.parent.glob("*.part"))
        assert "download toy-model: 40/40 KiB (100%)" in capsys.readouterr().err
        assert fetch(entry) == path and len(server.requests) == 1

    def test_dropped_connection_resumes_with_range(self, server: Any) -> None:
        """A connection that drops mid-file is resumed with a Range request from the bytes
        already written, twice in a row if need be."""
        server.files["/m.ngm"] = PAYLOAD
        server.drops = [10000, 5000]
        path = fetch(_entry(server.url("/m.ngm")), progress=False)
        assert path.read_bytes() == PAYLOAD
        assert [r for _, r in server.requests] == [None, "bytes=10000-", "bytes=15000-"]

    def test_partial_file_of_an_earlier_run_is_resumed(self, server: Any) -> None:
        """A ``.part`` left by an interrupted run (killed, Ctrl-C) is continued, not restarted."""
        server.files["/m.ngm"] = PAYLOAD
        entry = _entry(server.url("/m.ngm"))
        part = cached_path(entry).with_name("toy-model.ngm.part")
        part.parent.mkdir(parents=True)
        part.write_bytes(PAYLOAD[:12345])
        assert fetch(entry, progress=False).read_bytes() == PAYLOAD
        assert server.requests == [("/m.ngm", "bytes=12345-")]

    def test_interrupted_too_often_keeps_the_part_to_resume(self, server: Any) -> None:
        """After four connections that all drop, the error says how to resume, and the next
        run does resume."""
        server.files["/m.ngm"] = PAYLOAD
        server.drops = [1000] * 4
        entry = _entry(server.url("/m.ngm"))
        with pytest.raises(DownloadError, match=r"interrupted 4 times.*run the command again "
                                                r"to resume from the 4000 bytes"):
            fetch(entry, progress=False)
        assert fetch(entry, progress=False).read_bytes() == PAYLOAD
        assert server.requests[-1] == ("/m.ngm", "bytes=4000-")

    def test_wrong_checksum_is_refused(self, server: Any) -> None:
        """A file whose sha256 differs from the catalog's is refused and deleted, never
        left where it would be loaded."""
        server.files["/m.ngm"] = PAYLOAD[::-1]  # same size, other bytes
        entry = _entry(server.url("/m.ngm"))
        with pytest.raises(DownloadError, match=r"refused and deleted: its sha256 is "
                                                rf"{hashlib.sha256(PAYLOAD[::-1]).hexdigest()}"):
            fetch(entry, progress=False)
        assert not [p.name for p in cached_path(entry).parent.iterdir()
                    if p.name.startswith("toy-model")]

    def test_stale_partial_file_is_fetched_again_whole(self, server: Any) -> None:
        """A ``.part`` whose bytes are not the file's (the file changed on the server) fails
        the checksum after resuming; the download then starts over and succeeds."""
        server.files["/m.ngm"] = PAYLOAD
        entry = _entry(server.url("/m.ngm"))
        part = cached_path(entry).with_name("toy-model.ngm.part")
        part.parent.mkdir(parents=True)
        part.write_bytes(b"x" * 20000)
        assert fetch(entry, progress=False).read_bytes() == PAYLOAD
        assert [r for _, r in server.requests] == ["bytes=20000-", None]

    def test_corrupt_cached_file_is_fetched_again(self, server: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
        """A cached file that no longer matches (bit rot, a truncated copy) is not loaded: it
        is downloaded again."""
        server.files["/m.ngm"] = PAYLOAD
        entry = _entry(server.url("/m.ngm"))
        cached = cached_path(entry)
        cached.parent.mkdir(parents=True)
        cached.write_bytes(PAYLOAD[:-1] + b"!")
        assert fetch(entry, progress=False).read_bytes() == PAYLOAD
        assert "is not 'toy-model'" in capsys.readouterr().err
        assert len(server.requests) == 1

    def test_server_that_ignores_range(self, server: Any) -> None:
        """A server that answers a Range request with the whole file (200): the partial file
        starts over instead of getting the file appended to it."""
        server.files["/m.ngm"] = PAYLOAD
        server.ranges = False
        server.drops = [7000]
        entry = _entry(server.url("/m.ngm"))
        assert fetch(entry, progress=False).read_bytes() == PAYLOAD
        assert [r for _, r in server.requests] == [None, "bytes=7000-"]

    def test_404(self, server: Any) -> None:
        """A missing file is an error naming the URL and the status, and no offline hint."""
        url = server.url("/gone.ngm")
        with pytest.raises(DownloadError) as info:
            fetch(_entry(url), progress=False)
        assert f"{url}: HTTP 404" in str(info.value)
        assert "offline" not in str(info.value)

    def test_connection_refused_says_where_to_put_the_file(self) -> None:
        """With no server (offline), the error names the URL and where to put the file by
        hand, with its sha256."""
        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        url = f"http://127.0.0.1:{port}/m.ngm"
        entry = _entry(url)
        with pytest.raises(DownloadError) as info:
            fetch(entry, progress=False)
        message = str(info.value)
        assert f"{url}: cannot connect" in message
        assert f"If this machine is offline, download {url}" in message
        assert f"put it at {cached_path(entry)} (sha256 {entry.sha256})" in message
        assert "NEURALGRAPH_CACHE" in message

    def test_file_put_there_by_hand_is_used_offline(self) -> None:
        """Having done what the offline message says, the model loads with no network."""
        entry = _entry("http://127.0.0.1:9/m.ngm")
        cached_path(entry).parent.mkdir(parents=True)
        cached_path(entry).write_bytes(PAYLOAD)
        assert fetch(entry, progress=False) == cached_path(entry)

    def test_sources_are_tried_in_order(self, server: Any, tmp_path: Path) -> None:
        """A 404 mirror, then a local file with other bytes (refused), then a good URL."""
        server.files["/m.ngm"] = PAYLOAD
        wrong = tmp_path / "wrong.ngm"
        wrong.write_bytes(b"y" * len(PAYLOAD))
        entry = _entry(server.url("/old.ngm"), str(wrong), server.url("/m.ngm"))
        assert fetch(entry, progress=False).read_bytes() == PAYLOAD
        with pytest.raises(DownloadError, match=r"wrong.ngm: refused, its sha256 is"):
            fetch(_entry(str(wrong)), progress=False)

    def test_package_and_local_sources_are_used_in_place(self, tmp_path: Path) -> None:
        """A file inside an installed package and a local path are checked, not copied."""
        local = tmp_path / "m.ngm"
        local.write_bytes(PAYLOAD)
        assert fetch(_entry(str(local))) == local
        shipped = Path(ng.__file__).parent / "hookspecs.py"
        entry = _entry("package:neuralgraph/hookspecs.py", data=shipped.read_bytes())
        assert fetch(entry) == shipped
        with pytest.raises(DownloadError, match="not in the installed package 'neuralgraph'"):
            fetch(_entry("package:neuralgraph/nope.ngm"))


class TestEntries:
    def test_bad_entries(self) -> None:
        """Names, checksums, sizes and sources are checked when an entry is made."""
        with pytest.raises(ValueError, match="lowercase"):
            _entry("/x.ngm", name="Big Model")
        with pytest.raises(ValueError, match="64 hex digits"):
            PretrainedEntry("m", "t", "d", "/x", "abc", 1, "MIT")
        with pytest.raises(ValueError, match="positive number of bytes"):
            PretrainedEntry("m", "t", "d", "/x", "0" * 64, 0, "MIT")
        with pytest.raises(ValueError, match="names no source"):
            PretrainedEntry("m", "t", "d", (), "0" * 64, 1, "MIT")

    def test_card(self) -> None:
        """The card has the task, recipe, data, figures, license, checksum and sources."""
        entry = _entry("https://example.org/m.ngm", recipe="train.yaml, seed 0",
                       training_data="rows.txt")
        card = entry.to_card("gain")
        for part in ("toy-model — regression (plugin 'gain')", "recipe:\n  train.yaml, seed 0",
                     "training data:\n  rows.txt", "measured on held-out data:\n  MSE 0.25",
                     "license: MIT", "41.0 kB (40960 bytes)", entry.sha256,
                     "sources:\n  https://example.org/m.ngm"):
            assert part in card


# --- the registry hook -----------------------------------------------------------------------


def _plugin_module(entry: PretrainedEntry) -> types.ModuleType:
    module = types.ModuleType("thirdparty_models")

    @ng.hookimpl
    def register_pretrained(registry: Registry) -> None:
        registry.add_pretrained(entry)

    module.register_pretrained = register_pretrained
    return module


class TestRegisterPretrained:
    def test_a_third_party_plugin_adds_entries(self, tmp_path: Path) -> None:
        """register_pretrained adds entries with registry.add_pretrained; they are looked up
        by short or qualified name and resolve to their files."""
        local = tmp_path / "m.ngm"
        local.write_bytes(PAYLOAD)
        entry = _entry(str(local), name="third-model")
        registry = Registry()
        registry.register_plugin(_plugin_module(entry), "third")
        assert registry.plugins["third"].available
        assert ("third", entry) in catalog(registry)
        assert lookup("third.third-model", registry) is entry
        assert resolve_model("third-model", registry) == local
        assert registry.by_plugin("third") == {"pretrained_model": ["third-model"]}

    def test_something_else_than_an_entry_is_refused(self) -> None:
        """add_pretrained of a non-entry makes the plugin unavailable, with the reason."""
        module = types.ModuleType("broken_models")
        module.register_pretrained = ng.hookimpl(
            lambda registry: registry.add_pretrained({"name": "x"}))
        registry = Registry()
        registry.register_plugin(module, "broken")
        assert "takes a neuralgraph.pretrained.PretrainedEntry" in registry.plugins[
            "broken"].error

    def test_neuralgraph_plugins_module_is_listed(self, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
        """A plugin module named in NEURALGRAPH_PLUGINS adds entries that `pretrained list`
        shows and `--model` accepts, next to the shipped ones."""
        local = tmp_path / "m.ngm"
        local.write_bytes(PAYLOAD)
        (tmp_path / "my_models.py").write_text(
            "import neuralgraph as ng\n"
            "from neuralgraph.pretrained import PretrainedEntry\n\n\n"
            "@ng.hookimpl\n"
            "def register_pretrained(registry):\n"
            f"    registry.add_pretrained(PretrainedEntry('mine', 'toy task', 'Mine.', "
            f"{str(local)!r}, {hashlib.sha256(PAYLOAD).hexdigest()!r}, {len(PAYLOAD)}, "
            "'MIT'))\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setenv("NEURALGRAPH_PLUGINS", "my_models")
        assert main(["pretrained", "list"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert any(re.match(r"mine +toy task +41\.0 kB +- +\[my_models\]$", li) for li in lines)
        assert resolve_model("mine") == local

"""neuralgraph.progress: lines off a terminal (counts right, at most one per interval, a last
one), a tqdm bar on one, nothing when disabled; importing neuralgraph does not import tqdm."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from neuralgraph import Progress


class FakeClock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


class TestLines:
    def test_at_most_one_line_per_interval_and_one_at_the_total(self) -> None:
        """Off a terminal: nothing before `interval` seconds, then at most one line per
        interval with the count so far, and a line when the count reaches the total."""
        clock, out = FakeClock(), io.StringIO()
        with Progress(10, "synth train", unit="utterances", interval=5, stream=out,
                      clock=clock) as progress:  # fmt: skip
            progress.update(2)
            clock.now += 4.9
            progress.update()
            assert _lines(out) == []  # not yet 5 s
            clock.now += 0.1
            progress.update()  # 4 at 5 s
            clock.now += 1
            progress.update(2)  # within the interval: no line
            clock.now += 5
            progress.update()  # 7 at 11 s
            progress.update(3)  # the total, at once
        assert _lines(out) == [
            "synth train: 4/10 utterances (40%), 5 s",
            "synth train: 7/10 utterances (70%), 11 s",
            "synth train: 10/10 utterances (100%), 11 s",
        ]
        assert progress.n == 10

    def test_last_line_on_close(self) -> None:
        """Work that stops short of the total (or has none) gets its count printed on close,
        once; a count already shown is not repeated."""
        clock, out = FakeClock(), io.StringIO()
        progress = Progress(None, "reading manifests", unit="lines", stream=out, clock=clock)
        progress.update(8000)
        clock.now += 2.4
        progress.close()
        progress.close()
        assert _lines(out) == ["reading manifests: 8000 lines, 2 s"]

        out = io.StringIO()
        with Progress(3, "x", stream=out, clock=clock) as progress:
            progress.update(3)
        assert _lines(out) == ["x: 3/3 it (100%), 0 s"]

        out = io.StringIO()
        with pytest.raises(KeyboardInterrupt), Progress(5, "x", stream=out, clock=clock) as p:
            p.update(2)
            raise KeyboardInterrupt
        assert _lines(out) == ["x: 2/5 it (40%), 0 s"]

    def test_empty_total(self) -> None:
        """A total of 0 is done at once (100%), not a division by zero."""
        out = io.StringIO()
        with Progress(0, "dev", unit="utterances", stream=out, clock=FakeClock()) as progress:
            progress.update(0)
        assert _lines(out) == ["dev: 0/0 utterances (100%), 0 s"]

    def test_default_stream_is_stderr(self, capsys: pytest.CaptureFixture[str]) -> None:
        with Progress(1, "step") as progress:
            progress.update()
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("step: 1/1 it (100%), ")


class TestDisabled:
    def test_nothing_printed(self) -> None:
        """disable=True prints nothing, on a terminal or not, but still counts."""
        for out in (io.StringIO(), FakeTTY()):
            clock = FakeClock()
            with Progress(4, "quiet", disable=True, interval=0, stream=out,
                          clock=clock) as progress:  # fmt: skip
                for _ in range(4):
                    clock.now += 60
                    progress.update()
            assert out.getvalue() == "" and progress.n == 4


class TestTerminal:
    def test_tqdm_bar(self) -> None:
        """On a terminal the progress is a tqdm bar with the description and unit."""
        out = FakeTTY()
        with Progress(5, "synth dev", unit="utterances", stream=out) as progress:
            progress.update(5)
        text = out.getvalue()
        assert "synth dev" in text and "5/5" in text and "100%" in text
        assert "synth dev: 5/5 utterances (100%)" not in text  # the bar, not the line


def test_import_neuralgraph_does_not_import_tqdm() -> None:
    """tqdm is imported when a bar is shown, not by `import neuralgraph` nor the module."""
    code = ("import sys, neuralgraph, neuralgraph.progress; "
            "print('tqdm' in sys.modules)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)  # fmt: skip
    assert result.stdout.strip() == "False"

"""Progress of long-running commands, on stderr: a tqdm bar on a terminal, a line now and then
off one (a log file, a CI job, a pipe), nothing for library callers that ask for silence.

    from neuralgraph import Progress

    with Progress(len(files), "transcribe", unit="files") as progress:
        for path in files:
            ...
            progress.update()

Off a terminal this prints lines such as ``transcribe: 120/600 files (20%), 42 s``: at most one
every ``interval`` seconds, one as soon as the count reaches ``total``, and one on closing if the
count moved since the last line. tqdm is imported only when a bar is shown, so importing this
module (and ``neuralgraph``) stays cheap.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

__all__ = ["Progress"]


class Progress:
    """A count of work done towards ``total`` (None: unknown), shown on ``stream``.

    Args:
        total: the count at which the work is done, or None when it is not known in advance
            (lines then read ``desc: 8000 lines, 3 s``).
        desc: what is being done, the start of every line (and the bar's label).
        unit: what is counted, as the lines print it after the count ("utterances", "files").
        disable: show nothing (the count is still kept); for library callers.
        interval: least number of seconds between two lines off a terminal.
        stream: where to write (default: ``sys.stderr`` at construction). A bar is shown when
            its ``isatty()`` is true, lines otherwise.
        clock: seconds, monotonic (tests inject their own).

    Use it as a context manager, or call :meth:`close` when the work is over.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        *,
        disable: bool = False,
        interval: float = 10.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.disable = disable
        self.interval = interval
        self.stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._start = self._last = clock()
        self._n = 0
        self._printed: int | None = None  # the count the last line showed
        self._closed = False
        self._bar: Any = None
        if not disable and _isatty(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream,
                             dynamic_ncols=True)  # fmt: skip

    @property
    def n(self) -> int:
        """The count so far."""
        return self._n

    @property
    def elapsed(self) -> float:
        """Seconds since this progress was created."""
        return self._clock() - self._start

    def update(self, n: int = 1) -> None:
        """Add ``n`` to the count (show the new count if it is time to)."""
        self._n += n
        if self.disable or self._closed:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = self._clock()
        done = self.total is not None and self._n >= self.total and self._printed != self._n
        due = self._n and now - self._last >= self.interval
        if done or due:
            self._print(now)

    def close(self) -> None:
        """End the display: close the bar, or print the last count if no line showed it yet."""
        if self._closed:
            return
        self._closed = True
        if self.disable:
            return
        if self._bar is not None:
            self._bar.close()
        elif self._printed != self._n:
            self._print(self._clock())

    def _line(self, now: float) -> str:
        """E.g. ``synth train: 1200/8000 utterances (15%), 42 s``."""
        elapsed = f"{now - self._start:.0f} s"
        if self.total is None:
            return f"{self.desc}: {self._n} {self.unit}, {elapsed}"
        percent = 100 * self._n // self.total if self.total else 100
        return f"{self.desc}: {self._n}/{self.total} {self.unit} ({percent}%), {elapsed}"

    def _print(self, now: float) -> None:
        self._last = now
        self._printed = self._n
        print(self._line(now), file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False

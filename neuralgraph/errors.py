"""Errors that are the user's to fix: the CLI prints them and exits 2, without a traceback."""

from __future__ import annotations

import attrs

__all__ = ["GraphError", "Location", "Problem", "UserError"]


class UserError(ValueError):
    """A mistake in the user's input (a file, an argument, a name). Exit code 2."""


@attrs.frozen
class Location:
    """Where in the user's input something is: a file and line, or an override."""

    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.file is None:
            return "<config>"
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}"


@attrs.frozen
class Problem:
    """One problem found in a graph: a sentence, where it is, and which node/port it concerns."""

    message: str
    location: Location = attrs.field(factory=Location)
    node: str | None = None
    port: str | None = None
    severity: str = "error"  # or "warning"
    source: str | None = None  # the edge's source port ("encoder.outputs"), for type problems
    expected: str | None = None  # the type the port declares
    found: str | None = None  # the type that arrives
    key: str | None = None  # the key path in the graph file ("nodes.decoder.inputs.x")

    def __str__(self) -> str:
        where = f"{self.key}: " if self.key else ""
        return f"{self.location}: {self.severity}: {where}{self.message}"


class GraphError(UserError):
    """The graph has problems; ``problems`` lists every one of them (errors and warnings)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.location.file or "",
                                                        p.location.line or 0))
        problems = self.problems
        errors = [p for p in problems if p.severity == "error"]
        head = f"{len(errors)} problem{'s' if len(errors) != 1 else ''} in the graph:"
        super().__init__("\n".join([head, *(str(p) for p in problems)]))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

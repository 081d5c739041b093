"""No graph file and no override takes neuralgraph down (issue 17): each bad input below makes
`neuralgraph check` exit 2 within seconds, with a message that says what must hold, what was
found and where (file:line, or "override #N on the command line (...)"), and no traceback.

One table: (case, graph text or bytes, overrides, exit code, message fragments). In a graph
text, ``# <-`` marks the line the message must name; a fragment's ``{file}`` and ``{line}`` are
the graph file and that line. Inputs that are not regular files (a FIFO, a symbolic link to
/dev/zero) run in a subprocess with a timeout, as a user would meet them.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path

import pytest

from neuralgraph.cli import main
from tests.conftest import run_cli

# tests/toy/regression.yaml, checked with the toy plugin (tests/toy/ng_toy.py)
BASE = """\
name: toy_regression
seed: 0
dim: 8
trainer: {max_epochs: 3, accelerator: cpu, devices: 1, log_every_n_steps: 5}
data:
  module: ToyRegression
  params: {dim: "${dim}", out: 1}
  train: {batch_size: 16, shuffle: true, n_samples: 256}
  validation: {batch_size: 32, n_samples: 64}
nodes:
  hidden:
    module: Linear
    params: {in_features: "${dim}", out_features: 16}
    inputs: {x: data.x}
  drop:
    module: Dropout
    train_only: true
    params: {p: 0.1}
    inputs: {x: hidden.y}
  head:
    module: Linear
    params: {in_features: 16, out_features: 1}
    inputs: {x: drop.y}
  mse:
    module: MSE
    inputs: {pred: head.y, target: data.y}
loss: mse.loss
optim: {name: adam, lr: 0.01}
"""
SECONDS = 10.0  # every case ends well within this on 2 shared cores


def laughs(levels: int) -> str:
    """A "billion laughs" alias bomb: each level an anchored list of 9 aliases of the level
    before it. Level 5 is marked: its first alias goes past the bound (aliases before it add
    74,718 nodes, and it adds 66,430)."""
    lines = ["lol0: &lol0 [" + ", ".join(["lol"] * 9) + "]"]
    for i in range(1, levels + 1):
        mark = "  # <-" if i == 5 else ""
        lines.append(f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 9) + "]" + mark)
    return BASE + "\n".join(lines) + "\n"


def replace(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def nested(depth: int) -> str:
    return BASE + "deep: " + "[" * depth + "]" * depth + "  # <-\n"


def interpolation_bomb(levels: int) -> str:
    lines = ["t0: " + "[" + ", ".join(["lol"] * 10) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"t{i}: [" + ", ".join([f"'${{t{i - 1}}}'"] * 10) + "]")
    return BASE + "\n".join(lines) + "\n"


def text_bomb(levels: int) -> str:
    lines = ['s0: "' + "lol" * 30 + '"']
    for i in range(1, levels + 1):
        lines.append(f's{i}: "' + f"${{s{i - 1}}}" * 10 + '"')
    return BASE + "\n".join(lines) + "\n"


MERGE_KEYS = BASE.replace("nodes:\n", """\
linear: &linear {module: Linear, inputs: {x: data.x}}
nodes:
""").replace("""  hidden:
    module: Linear
    params: {in_features: "${dim}", out_features: 16}
    inputs: {x: data.x}""", """  hidden:
    <<: *linear
    params: {in_features: "${dim}", out_features: 16}""").replace("""  head:
    module: Linear
""", """  head:
    <<: *linear
""")

OVERRIDE_BOMB = ["+b0=[" + ",".join(["lol"] * 10) + "]",
                 *(f"+b{i}=[" + ",".join([f"${{b{i - 1}}}"] * 10) + "]" for i in range(1, 7))]


def override(number: int, text: str) -> str:
    return f"override #{number} on the command line ({text}): error: "


CASES: list[tuple[str, str | bytes, list[str], int, list[str]]] = [
    # -- 1. YAML aliases: bounded, and located at the alias that goes past the bound
    ("alias bomb, 9 levels", laughs(9), [], 2,
     ["{file}:{line}: error: the alias *lol4 repeats 66,430 nodes, which brings the nodes that "
      "aliases add to 141,148; aliases may add at most 100,000 nodes to a graph file"]),
    ("alias bomb, 5 levels", laughs(5), [], 2, ["{file}:{line}: error: the alias *lol4"]),
    ("alias bomb, 5 levels, with an override", laughs(5), ["seed=1"], 2,
     ["{file}:{line}: error: the alias *lol4"]),
    ("recursive alias", BASE + "loop: &loop [a, *loop]  # <-\n", [], 2,
     ["{file}:{line}: error: the alias *loop is inside the node anchored &loop"]),
    ("small merge keys keep working", MERGE_KEYS, [], 0, ["ok — 4 nodes"]),
    ("an alias bomb of 4 levels is within the bound", laughs(4), [], 0, ["ok — 4 nodes"]),
    ("nesting 500 deep", nested(500), [], 2,
     ["{file}:{line}: error: nested deeper than 64 levels", "may nest at most 64 levels"]),
    ("nesting 1000 deep (libyaml's own limit)", nested(1000), [], 2,
     ["error: invalid YAML: exceeded maximum nesting depth"]),
    ("interpolation bomb", interpolation_bomb(7), [], 2,
     ["interpolations may copy at most 100,000", "(an interpolation bomb?)"]),
    ("text interpolation bomb", text_bomb(9), [], 2,
     ["interpolations may copy at most 100,000"]),
    ("interpolation bomb from overrides", BASE, OVERRIDE_BOMB, 2,
     ["interpolations may copy at most 100,000"]),
    # -- 2. keys written twice
    ("duplicate section", BASE + "trainer: {max_epochs: 1}  # <-\n", [], 2,
     ["{file}:{line}: error: duplicate key 'trainer' (first at line 4)"]),
    ("duplicate node", replace("  mse:\n", "  head:  # <-\n    module: Linear\n  mse:\n"), [], 2,
     ["{file}:{line}: error: nodes: duplicate key 'head' (first at line 20)"]),
    ("duplicate parameter", replace("{in_features: 16, out_features: 1}",
                                    "{in_features: 16, out_features: 1, in_features: 8}  # <-"),
     [], 2, ["{file}:{line}: error: nodes.head.params: duplicate key 'in_features' (first at "
             "line 22, column 14)"]),
    ("duplicate merge key", MERGE_KEYS.replace("    <<: *linear\n    params: {in",
                                               "    <<: *linear\n    <<: *linear  # <-\n"
                                               "    params: {in"), [], 2,
     ["{file}:{line}: error: nodes.hidden: duplicate key '<<'", "<<: [*a, *b]"]),
    ("a list as a key", BASE + "? [a, b]  # <-\n: 1\n", [], 2,
     ["{file}:{line}: error: keys must be strings (found a sequence used as a key)"]),
    # -- 3. bytes that are not UTF-8 text
    ("Latin-1 text", replace("name: toy_regression", "name: toy_régression  # <-")
     .encode("latin-1"), [], 2,
     ["{file}:{line}: error: not UTF-8 text: byte 0xe9 at column 12 is not valid UTF-8"]),
    ("UTF-16", BASE.encode("utf-16"), [], 2,
     ["{file}:1: error: not UTF-8 text", "UTF-16 byte-order mark"]),
    ("binary bytes", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00", [], 2,
     ["{file}:1: error: not UTF-8 text: byte 0x89 at column 1", "a binary file?"]),
    ("a NUL byte in UTF-8 text", replace("seed: 0", "seed: 0\x00  # <-").encode(), [], 2,
     ["{file}:{line}: error: character U+0000 at column 8 cannot appear in YAML text"]),
    # -- 5. a problem that comes from an override is reported at the override
    ("override: a string for an int", BASE, ["nodes.head.params.in_features=abc"], 2,
     [override(1, "nodes.head.params.in_features=abc") + "nodes.head.params.in_features: "
      "'in_features' must be an int (got 'abc' that is a str)"]),
    ("override: a size that no longer fits", BASE, ["nodes.head.params.in_features=32"], 2,
     ["axis sizes differ (D is 16, the port needs 32); " + "override #1 on the command line "
      "(nodes.head.params.in_features=32) changed a value here"]),
    ("override: a sweep", BASE, ["seed=1,2"], 2,
     [override(1, "seed=1,2") + "the value '1,2' is a sweep or a function"]),
    ("override: nesting 100 deep", BASE, ["+deep=" + "[" * 100 + "]" * 100], 2,
     ["error: the override nests 101 levels deep", "may nest at most 64 levels"]),
    # -- 6. numbers out of range, caught by `check` at their line or override
    ("max_epochs=abc", BASE, ["trainer.max_epochs=abc"], 2,
     [override(1, "trainer.max_epochs=abc") + "trainer.max_epochs: 'max_epochs' must be an int "
      ">= 0 or -1 (no limit) or null (got 'abc' that is a str)"]),
    ("max_epochs=1e999", BASE, ["trainer.max_epochs=1e999"], 2,
     ["'max_epochs' must be an int >= 0 or -1 (no limit) or null (got inf that is a float)"]),
    ("max_epochs=-5", BASE, ["trainer.max_epochs=-5"], 2,
     ["'max_epochs' must be an int >= 0 or -1 (no limit) or null (got -5)"]),
    ("max_epochs: -5 in the file", replace("log_every_n_steps: 5}",
                                           "log_every_n_steps: 5}  # <-").replace(
        "max_epochs: 3", "max_epochs: -5"), [], 2,
     ["{file}:{line}: error: trainer.max_epochs: 'max_epochs' must be an int >= 0 or -1"]),
    ("devices=0", BASE, ["trainer.devices=0"], 2,
     [override(1, "trainer.devices=0") + "trainer.devices: 'devices' must be a positive int, "
      "-1 (every device), 'auto', or a non-empty list of device indices (got 0)"]),
    ("batch_size=-1", BASE, ["data.train.batch_size=-1"], 2,
     [override(1, "data.train.batch_size=-1") + "data.train.batch_size: 'batch_size' must be "
      "a positive int (got -1)"]),
    ("batch_size=0", BASE, ["data.validation.batch_size=0"], 2,
     ["data.validation.batch_size: 'batch_size' must be a positive int (got 0)"]),
    ("batch_size: '16' in the file", replace("shuffle: true, n_samples: 256}",
                                             "shuffle: true, n_samples: 256}  # <-").replace(
        "batch_size: 16,", "batch_size: '16',"), [], 2,
     ["{file}:{line}: error: data.train.batch_size: 'batch_size' must be a positive int (got "
      "'16' that is a str)"]),
    ("num_workers=-1", BASE, ["+data.train.num_workers=-1"], 2,
     [override(1, "+data.train.num_workers=-1") + "data.train.num_workers: 'num_workers' must "
      "be an int >= 0 (got -1)"]),
    ("n_samples: a string (the loader's annotation)", BASE, ["data.train.n_samples=many"], 2,
     ["data.train.n_samples: 'n_samples' must be an int (got 'many' that is a str)"]),
    ("lr=fast", BASE, ["optim.lr=fast"], 2,
     [override(1, "optim.lr=fast") + "optim.lr: 'lr' must be a finite number > 0 (got 'fast' "
      "that is a str)"]),
    ("lr=-0.5", BASE, ["optim.lr=-0.5"], 2, ["'lr' must be a finite number > 0 (got -0.5)"]),
    ("lr=nan", BASE, ["optim.lr=nan"], 2, ["'lr' must be a finite number > 0 (got nan)"]),
    ("lr: .nan in the file", replace("lr: 0.01}", "lr: .nan}  # <-"), [], 2,
     ["{file}:{line}: error: optim.lr: 'lr' must be a finite number > 0 (got nan)"]),
    ("good values still pass", BASE, ["trainer.max_epochs=-1", "trainer.devices=auto",
                                      "optim.lr=1e-3", "+data.train.num_workers=0"], 0, ["ok"]),
]


def marked_line(text: str | bytes) -> int | None:
    lines = (text.decode("latin-1") if isinstance(text, bytes) else text).splitlines()
    return next((n for n, line in enumerate(lines, 1) if "# <-" in line), None)


@pytest.mark.parametrize(("case", "text", "overrides", "code", "fragments"), CASES,
                         ids=[case[0] for case in CASES])
def test_bad_input(tmp_path: Path, case: str, text: str | bytes, overrides: list[str],
                   code: int, fragments: list[str]) -> None:
    """`neuralgraph check GRAPH OVERRIDES...` exits with the code, printing each fragment, and
    returns within SECONDS."""
    path = tmp_path / "g.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        got = main(["check", str(path), *overrides])
    elapsed = time.monotonic() - start
    printed = out.getvalue() + err.getvalue()
    assert got == code, printed
    assert "Traceback" not in printed
    line = marked_line(text)
    for fragment in fragments:
        assert fragment.format(file=path, line=line) in printed, printed
    assert elapsed < SECONDS, f"{case}: {elapsed:.1f} s"


def test_duration_of_a_split(tmp_path: Path) -> None:
    """`data.train.max_duration: long` (the ASR data source's split key, annotated
    ``float | None``) is caught by `check` at its line."""
    pytest.importorskip("neuralgraph_asr")
    example = Path(__file__).parent.parent / "examples" / "asr" / "digits_small.yaml"
    text = example.read_text()
    assert "  train: {" in text
    path = tmp_path / "g.yaml"
    path.write_text(text.replace("  train: {", "  train: {max_duration: long,\n          ", 1))
    line = path.read_text().splitlines().index("  train: {max_duration: long,") + 1
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["check", str(path)]) == 2
    assert (f"{path}:{line}: error: data.train.max_duration: 'max_duration' must be a number "
            ">= 0 or null (got 'long' that is a str)") in err.getvalue()


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_zero_link(path: Path) -> None:
    path.symlink_to("/dev/zero")


def make_large(path: Path) -> None:
    with path.open("wb") as file:  # sparse: 17 MiB that take no disk space
        file.truncate(17 * 2**20)


SPECIAL: list[tuple[str, object, str, str]] = [
    ("FIFO", make_fifo, "check", "not a regular file (it is a FIFO)"),
    ("FIFO, train", make_fifo, "train", "not a regular file (it is a FIFO)"),
    ("symbolic link to /dev/zero", make_zero_link, "check",
     "not a regular file (it is a character device, /dev/zero)"),
    ("directory", Path.mkdir, "check", "not a regular file (it is a directory)"),
    ("larger than 16 MiB", make_large, "check",
     "larger than 16 MiB (17,825,792 bytes); a graph file must be at most 16,777,216 bytes"),
]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX special files")
@pytest.mark.parametrize(("case", "make", "command", "fragment"), SPECIAL,
                         ids=[case[0] for case in SPECIAL])
def test_not_a_regular_file(tmp_path: Path, case: str, make: object, command: str,
                            fragment: str) -> None:
    """Only regular files of at most 16 MiB are read: a FIFO would block `check` and `train`
    forever, /dev/zero would fill memory. Run as a user would, in a process with a timeout."""
    path = tmp_path / "g.yaml"
    make(path)  # type: ignore[operator]
    result = run_cli(command, str(path), "--exp-dir", str(tmp_path / "exp"), timeout=120) \
        if command == "train" else run_cli(command, str(path), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"error: graph file {path}: {fragment}" in result.stderr, result.stderr

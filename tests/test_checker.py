"""The static checker: every problem at once, each with file:line, node and port."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import neuralgraph as ng
from neuralgraph.errors import GraphError
from neuralgraph.validators import check, in_, odd, positive_int

BASE = """\
name: t
data:
  module: ToyRegression
  params: {dim: 8}
  train: {batch_size: 4}
nodes:
  hidden:
    module: Linear
    params: {in_features: 8, out_features: 16}
    inputs: {x: data.x}
  head:
    module: Linear
    params: {in_features: 16, out_features: 1}
    inputs: {x: hidden.y}
  mse:
    module: MSE
    inputs: {pred: head.y, target: data.y}
loss: mse.loss
optim: {name: adam, lr: 0.01}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "graph.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path, overrides: list[str] | None = None) -> list[ng.Problem]:
    with pytest.raises(GraphError) as info:
        ng.Graph.from_yaml(path, overrides or []).check()
    return info.value.errors


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


class TestValidGraph:
    def test_base_checks(self, tmp_path: Path) -> None:
        """The base graph has no problems and yields a plan in topological order."""
        graph = ng.Graph.from_yaml(write(tmp_path, BASE))
        assert graph.check() == []
        assert list(graph.plan().nodes) == ["hidden", "head", "mse"]

    def test_interpolation(self, tmp_path: Path) -> None:
        """Extra keys interpolate into params."""
        text = BASE.replace("name: t", "name: t\nwidth: 16").replace(
            "out_features: 16", "out_features: '${width}'")
        graph = ng.Graph.from_yaml(write(tmp_path, text))
        graph.check()
        assert graph.plan().nodes["hidden"].params["out_features"] == 16


class TestNames:
    def test_unknown_module_did_you_mean(self, tmp_path: Path) -> None:
        """An unknown module suggests the close name, at the module's line."""
        path = write(tmp_path, BASE.replace("module: MSE", "module: MSQ"))
        (problem,) = problems(path)
        assert "did you mean 'MSE'" in problem.message
        assert problem.location.line == line_of(path, "module: MSQ")
        assert problem.node == "mse"

    def test_qualified_name(self, tmp_path: Path) -> None:
        """A qualified plugin.Name always works."""
        graph = ng.Graph.from_yaml(write(tmp_path, BASE.replace("module: MSE",
                                                                "module: ng_toy.MSE")))
        graph.check()

    def test_dotted_import_path_is_not_imported(self, tmp_path: Path) -> None:
        """A Python import path is just an unknown name: nothing is imported."""
        path = write(tmp_path, BASE.replace("module: MSE", "module: os.system"))
        (problem,) = problems(path)
        assert "unknown module 'os.system'" in problem.message

    def test_unknown_port_and_node(self, tmp_path: Path) -> None:
        """Unknown source ports and nodes are reported with suggestions, each at its line."""
        path = write(tmp_path, BASE.replace("{x: hidden.y}", "{x: hiden.y}").replace(
            "{pred: head.y,", "{pred: head.z,"))
        found = problems(path)
        messages = " | ".join(p.message for p in found)
        assert "unknown node 'hiden'; did you mean 'hidden'" in messages
        assert "'head' has no output port 'z'" in messages
        lines = {p.location.line for p in found}
        assert lines == {line_of(path, "hiden.y"), line_of(path, "head.z")}

    def test_unknown_input_port(self, tmp_path: Path) -> None:
        """An input that the module does not declare is reported."""
        path = write(tmp_path, BASE.replace("{x: data.x}", "{x: data.x, bias: data.x}"))
        (problem,) = problems(path)
        assert "has no input port 'bias'" in problem.message
        assert problem.port == "bias"

    def test_unconnected_required_input(self, tmp_path: Path) -> None:
        """A required input left unconnected is reported with the expected type."""
        path = write(tmp_path, BASE.replace("{pred: head.y, target: data.y}", "{pred: head.y}"))
        (problem,) = problems(path)
        assert "required input 'target'" in problem.message
        assert "RegressionValuesType" in problem.message


class TestParams:
    def test_unknown_param(self, tmp_path: Path) -> None:
        """An unknown parameter suggests the close one at its own line."""
        path = write(tmp_path, BASE.replace("in_features: 16,", "in_featres: 16,"))
        found = problems(path)
        assert any("no parameter 'in_featres'; did you mean 'in_features'" in p.message
                   for p in found)

    def test_constructor_rejects_value(self, tmp_path: Path) -> None:
        """A value the constructor refuses becomes a problem with its message."""
        path = write(tmp_path, BASE.replace("out_features: 1}", "out_features: -1}"))
        (problem,) = problems(path)
        assert "must be > 0" in problem.message

    def test_optimizer_and_scheduler(self, tmp_path: Path) -> None:
        """Unknown optimizer names and parameters are caught before training."""
        path = write(tmp_path, BASE.replace("{name: adam, lr: 0.01}",
                                            "{name: adan, lr: 0.01, sched: {name: Cosine}}"))
        messages = " | ".join(p.message for p in problems(path))
        assert "unknown optimizer 'adan'" in messages
        path = write(tmp_path, BASE.replace("{name: adam, lr: 0.01}",
                                            "{name: adam, lrate: 0.01}"))
        assert "no parameter 'lrate'" in problems(path)[0].message

    def test_trainer_key(self, tmp_path: Path) -> None:
        """An unknown trainer key suggests the Lightning argument."""
        path = write(tmp_path, BASE + "trainer: {max_epoch: 2}\n")
        (problem,) = problems(path)
        assert "did you mean 'max_epochs'" in problem.message
        assert problem.location.line == line_of(path, "max_epoch")


class Stack(ng.NeuralModule):
    """Blocks of odd kernels: a module whose constructor names its bad parameters."""

    def __init__(self, width: int = 32, mode: str = "avg",
                 blocks: list[dict[str, int]] | None = None) -> None:
        super().__init__()
        check("width", width, positive_int)
        check("mode", mode, in_(("avg", "max")))
        for i, block in enumerate(blocks or []):
            check(f"blocks.{i}.kernel", block.get("kernel"), positive_int, odd)
        check("hidden", width // 16, positive_int)  # derived: not a key of the file
        if width > 64:
            raise ValueError(f"width must be <= 64 (got {width})")
        self.width = width

    @property
    def input_types(self) -> dict[str, ng.NeuralType]:
        return {}

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        return {"y": ng.NeuralType(("B", "D"), ng.FloatType())}


STACK = """\
name: p
nodes:
  stack:
    module: Stack
    params:
      width: 32
      mode: avg
      blocks:
      - kernel: 3
      - {kernel: 5}
"""


def stack_problems(tmp_path: Path, text: str, overrides: list[str] | None = None) -> list[
        ng.Problem]:
    registry = ng.Registry()
    registry.add_module(Stack)
    with pytest.raises(GraphError) as info:
        ng.Graph.from_yaml(write(tmp_path, text), overrides or []).plan(registry)
    return info.value.errors


class TestParameterErrors:
    def test_at_the_parameters_own_line(self, tmp_path: Path) -> None:
        """A ParameterError is reported at the parameter's key, with its name, the requirement
        and the value."""
        path = write(tmp_path, STACK.replace("mode: avg", "mode: sum"))
        (problem,) = stack_problems(tmp_path, STACK.replace("mode: avg", "mode: sum"))
        assert problem.location.line == line_of(path, "mode: sum")
        assert problem.key == "nodes.stack.params.mode"
        assert problem.node == "stack"
        assert problem.message == "'mode' must be one of 'avg', 'max' (got 'sum')"

    def test_nested_key_in_a_list(self, tmp_path: Path) -> None:
        """A dotted sub-key (blocks.1.kernel) points at that list item's own key."""
        text = STACK.replace("{kernel: 5}", "{kernel: 4}").replace("kernel: 3", "kernel: 7")
        (problem,) = stack_problems(tmp_path, text)
        path = write(tmp_path, text)
        assert problem.location.line == line_of(path, "{kernel: 4}")
        assert problem.location.column == line_of_column(path, "kernel: 4")
        assert problem.key == "nodes.stack.params.blocks.1.kernel"
        assert problem.message == "'blocks[1].kernel' must be an odd positive int (got 4)"
        text = STACK.replace("kernel: 3", "kernel: 0")
        (problem,) = stack_problems(tmp_path, text)
        assert problem.location.line == line_of(write(tmp_path, text), "kernel: 0")

    def test_key_not_in_the_file(self, tmp_path: Path) -> None:
        """A parameter the file does not write (a derived value) falls back to params' line."""
        text = STACK.replace("width: 32", "width: 8")
        (problem,) = stack_problems(tmp_path, text)
        assert problem.location.line == line_of(write(tmp_path, text), "params:")
        assert problem.message == "'hidden' must be a positive int (got 0)"

    def test_set_by_an_override(self, tmp_path: Path) -> None:
        """A bad value given on the command line is reported at that override."""
        (problem,) = stack_problems(tmp_path, STACK, ["nodes.stack.params.width=true"])
        assert "override #1" in str(problem.location)
        assert problem.message == "'width' must be a positive int (got True that is a bool)"

    def test_plain_value_error_stays_at_params(self, tmp_path: Path) -> None:
        """A constructor's plain ValueError is reported at the node's params, as before."""
        text = STACK.replace("width: 32", "width: 128")
        (problem,) = stack_problems(tmp_path, text)
        assert problem.location.line == line_of(write(tmp_path, text), "params:")
        assert "bad parameter for Stack (node 'stack'): width must be <= 64" in problem.message


ASR_GRAPH = """\
name: bad_params
labels: [" ", a, b, c]
data:
  module: AudioToCharDataset
  params:
    labels: ${labels}
    augmentor:
      speed:
        prob: 2
nodes:
  preprocessor:
    module: AudioToMelSpectrogramPreprocessor
    params:
      sample_rate: 0
      features: 16
    inputs: {input_signal: data.audio_signal, length: data.audio_length}
  encoder:
    module: ConvASREncoder
    params:
      feat_in: 16
      activation: relu
      jasper:
      - {filters: 8, repeat: 1, kernel: [3], stride: [1], dilation: [1], dropout: 0.0,
         residual: false}
      - filters: 8
        repeat: 1
        kernel: [0]
        stride: [1]
        dilation: [1]
        dropout: 0.0
        residual: false
    inputs: {audio_signal: preprocessor.processed_signal, length: preprocessor.processed_length}
"""


class TestParameterErrorsInTheCLI:
    def test_each_at_its_own_line(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`neuralgraph check` prints each bad constructor argument at its own line, as
        file:line: error: key: 'name' must be <requirement> (got <value>), and exits 2."""
        pytest.importorskip("neuralgraph_asr")
        from neuralgraph.cli import main

        path = write(tmp_path, ASR_GRAPH)
        assert main(["check", str(path)]) == 2
        err = capsys.readouterr().err
        expected = [
            (line_of(path, "prob: 2"), "data.params.augmentor.speed.prob",
             "'augmentor.speed.prob' must be in [0, 1] (got 2)"),
            (line_of(path, "sample_rate: 0"), "nodes.preprocessor.params.sample_rate",
             "'sample_rate' must be a positive int (got 0)"),
            (line_of(path, "kernel: [0]"), "nodes.encoder.params.jasper.1.kernel.0",
             "'jasper[1].kernel[0]' must be a positive int (got 0)"),
        ]
        for line, key, message in expected:
            assert f"{path}:{line}: error: {key}: {message}" in err.splitlines(), err

    def test_a_value_given_on_the_command_line(self, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
        """A bad value set by an override is reported at that override."""
        pytest.importorskip("neuralgraph_asr")
        from neuralgraph.cli import main

        text = ASR_GRAPH.replace("prob: 2", "prob: 0.5").replace("sample_rate: 0",
                                                                   "sample_rate: 16000")
        path = write(tmp_path, text.replace("kernel: [0]", "kernel: [5]"))
        override = "nodes.encoder.params.jasper.1.dropout=1.5"
        assert main(["check", str(path), override]) == 2
        err = capsys.readouterr().err
        assert f"override #1 on the command line ({override})" in err
        assert "'jasper[1].dropout' must be in [0, 1) (got 1.5)" in err


def line_of_column(path: Path, needle: str) -> int:
    """The 1-based column of ``needle`` on its line."""
    for line in path.read_text().splitlines():
        if needle in line:
            return line.index(needle) + 1
    raise AssertionError(needle)


class TestTypes:
    def test_size_mismatch(self, tmp_path: Path) -> None:
        """A 16-vs-32 feature mismatch is caught statically, with both types as fields."""
        path = write(tmp_path, BASE.replace("in_features: 16,", "in_features: 32,"))
        (problem,) = problems(path)
        assert "axis sizes differ" in problem.message
        assert problem.source == "hidden.y"
        assert problem.expected is not None and "D=32" in problem.expected
        assert problem.found is not None and "D=16" in problem.found
        assert problem.location.line == line_of(path, "{x: hidden.y}")

    def test_element_mismatch(self, tmp_path: Path) -> None:
        """Feeding features where regression targets are expected is an element mismatch."""
        path = write(tmp_path, BASE.replace("target: data.y", "target: head.y"))
        (problem,) = problems(path)
        assert "head.y" in problem.message and "mse.target" in problem.message

    def test_every_problem_at_once(self, tmp_path: Path) -> None:
        """Several independent mistakes are all reported together."""
        text = BASE.replace("module: MSE", "module: MSQ").replace(
            "in_features: 16,", "in_features: 32,") + "trainer: {max_epoch: 2}\n"
        assert len(problems(write(tmp_path, text))) == 3


class TestStructure:
    def test_cycle(self, tmp_path: Path) -> None:
        """A cycle is reported with its path."""
        path = write(tmp_path, BASE.replace("{x: data.x}", "{x: head.y}").replace(
            "in_features: 8,", "in_features: 1,").replace("out_features: 1}",
                                                          "out_features: 1}"))
        found = problems(path)
        assert any("cycle" in p.message and "hidden" in p.message for p in found)

    def test_train_only_must_preserve_type(self, tmp_path: Path) -> None:
        """A train_only node whose output differs from its input is refused."""
        text = BASE.replace("  head:\n    module: Linear\n",
                            "  head:\n    module: Linear\n    train_only: true\n")
        (problem,) = problems(write(tmp_path, text))
        assert "train_only" in problem.message

    def test_invalid_yaml(self, tmp_path: Path) -> None:
        """Broken YAML is reported with its line."""
        path = write(tmp_path, "name: t\nnodes:\n  a: [1, 2\n")
        (problem,) = problems(path)
        assert "invalid YAML" in problem.message and problem.location.line is not None

    def test_top_level_typo(self, tmp_path: Path) -> None:
        """A misspelled top-level key is caught (extra keys are otherwise free)."""
        found = problems(write(tmp_path, BASE.replace("nodes:", "node:")))
        assert any("did you mean 'nodes'" in p.message for p in found)

    def test_bad_interpolation(self, tmp_path: Path) -> None:
        """An interpolation of a missing key is reported at its line."""
        path = write(tmp_path, BASE.replace("out_features: 16", "out_features: '${width}'"))
        (problem,) = problems(path)
        assert "width" in problem.message
        assert problem.location.line == line_of(path, "${width}")

    def test_train_only_carries_sizes(self, tmp_path: Path) -> None:
        """Sizes flow through a train_only node, so a mismatch behind it is still an error."""
        text = BASE.replace("""  head:
    module: Linear
    params: {in_features: 16, out_features: 1}
    inputs: {x: hidden.y}""", """  drop:
    module: Dropout
    train_only: true
    inputs: {x: hidden.y}
  head:
    module: Linear
    params: {in_features: 16, out_features: 1}
    inputs: {x: drop.y}""")
        assert ng.Graph.from_yaml(write(tmp_path, text)).check() == []
        (problem,) = problems(write(tmp_path, text.replace("in_features: 16,",
                                                           "in_features: 17,")))
        assert "axis sizes differ" in problem.message and problem.source == "drop.y"


class TestOverrides:
    def test_change_add_delete(self, tmp_path: Path) -> None:
        """Hydra's =, + and ~ change, add and delete keys."""
        path = write(tmp_path, BASE + "trainer: {max_epochs: 2, accelerator: cpu}\n")
        graph = ng.Graph.from_yaml(path, ["trainer.max_epochs=5",
                                          "+trainer.gradient_clip_val=1.0",
                                          "~trainer.accelerator",
                                          "data.train.batch_size=64"])
        assert graph.config["trainer"] == {"max_epochs": 5, "gradient_clip_val": 1.0}
        assert graph.config["data"]["train"]["batch_size"] == 64

    def test_override_errors_point_at_the_override(self, tmp_path: Path) -> None:
        """Problems caused by an override name the override."""
        path = write(tmp_path, BASE)
        with pytest.raises(GraphError) as info:
            ng.Graph.from_yaml(path, ["trainer.max_epochs=5"])
        assert "to add it write +trainer.max_epochs" in str(info.value)
        found = problems(path, ["nodes.head.module=Linaer"])
        assert "override #1 on the command line (nodes.head.module=Linaer)" in str(
            found[0].location)

    def test_override_parse_error(self, tmp_path: Path) -> None:
        """An override that is not Hydra grammar is a user error."""
        with pytest.raises(GraphError, match="cannot parse override"):
            ng.Graph.from_yaml(write(tmp_path, BASE), ["a.b=[1,"])


class TestUnknownSizes:
    def test_unknown_size_warns(self, tmp_path: Path) -> None:
        """An axis size that only the run knows is a warning, not a guess."""
        text = BASE.replace("""  head:
    module: Linear
    params: {in_features: 16, out_features: 1}
    inputs: {x: hidden.y}""", """  drop:
    module: Dropout
    inputs: {x: hidden.y}
  head:
    module: Linear
    params: {in_features: 16, out_features: 1}
    inputs: {x: drop.y}""")
        warnings = ng.Graph.from_yaml(write(tmp_path, text)).check()
        assert len(warnings) == 1 and "not known before build" in warnings[0].message
        assert warnings[0].severity == "warning"

"""Validators as values: each accepts what it should, refuses the rest, and says so in one
sentence with the parameter's name, the requirement and the value."""

from __future__ import annotations

import math
import pickle
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

import neuralgraph as ng
from neuralgraph import validators as v
from neuralgraph.validators import ParameterError, check

ROOT = Path(__file__).resolve().parent.parent


def refusal(value: Any, *validators: v.Validator, name: str = "x") -> ParameterError:
    """The error ``check`` raises for ``value``."""
    with pytest.raises(ParameterError) as info:
        check(name, value, *validators)
    return info.value


class TestParameterError:
    def test_fields_and_message(self) -> None:
        """The error carries parameter, requirement and value, and words them as attrs does."""
        err = refusal(4, v.positive_int, v.odd, name="kernel")
        assert (err.parameter, err.requirement, err.got) == ("kernel", "an odd positive int", 4)
        assert str(err) == "'kernel' must be an odd positive int (got 4)"

    def test_is_a_value_error_and_a_user_error(self) -> None:
        """Callers that catch ValueError (or the CLI, UserError) still catch it."""
        err = refusal(0, v.positive_int)
        assert isinstance(err, ValueError) and isinstance(err, ng.UserError)

    def test_class_named_when_the_type_is_wrong(self) -> None:
        """A value of the wrong type has its class named; a value out of range does not."""
        assert str(refusal("16000", v.positive_int, name="sample_rate")) == \
            "'sample_rate' must be a positive int (got '16000' that is a str)"
        assert str(refusal(-3, v.positive_int, name="sample_rate")) == \
            "'sample_rate' must be a positive int (got -3)"

    def test_nested_name(self) -> None:
        """A dotted path names a nested key; number parts are shown as list indices."""
        err = refusal(0, v.positive_int, name="jasper.3.kernel")
        assert err.parameter == "jasper.3.kernel"
        assert str(err).startswith("'jasper[3].kernel' must be a positive int")

    def test_within_prefixes_the_name(self) -> None:
        """within() re-roots an error under the parameter that holds it."""
        err = refusal(2, v.between(0, 1), name="speed.prob").within("augmentor")
        assert err.parameter == "augmentor.speed.prob"
        assert str(err) == "'augmentor.speed.prob' must be in [0, 1] (got 2)"

    def test_long_values_are_shortened(self) -> None:
        """A long value is abbreviated in the message and kept whole in ``got``."""
        value = list(range(100))
        err = refusal(value, v.satisfies(lambda x: False, "short"))
        assert len(str(err)) < 120 and err.got == value

    def test_pickles(self) -> None:
        """The error survives pickling (data loader workers, multiprocessing) with its fields."""
        err = pickle.loads(pickle.dumps(refusal(0, v.positive_int, name="a.1")))
        assert (err.parameter, err.got) == ("a.1", 0)
        assert str(err) == "'a[1]' must be a positive int (got 0)"

    def test_exported(self) -> None:
        """ng.ParameterError and ng.validators are the public names."""
        assert ng.ParameterError is ParameterError and ng.validators is v
        assert {"ParameterError", "validators"} <= set(ng.__all__)

    def test_import_stays_light(self) -> None:
        """import neuralgraph and the validators imports no torch."""
        code = ("import sys, neuralgraph as ng; ng.validators.check('x', 1, ng.validators.odd); "
                "assert 'torch' not in sys.modules")
        subprocess.run([sys.executable, "-c", code], check=True)


class TestBoolIsNoInt:
    @pytest.mark.parametrize("validator", [v.positive_int, v.non_negative_int, v.odd, v.number,
                                           v.instance_of(int), v.ge(0), v.between(0, 1)])
    def test_bool_refused(self, validator: v.Validator) -> None:
        """True is never an int nor a number, and the message says it is a bool."""
        assert not validator.accepts(True)
        assert str(refusal(True, validator)).endswith("(got True that is a bool)")

    def test_bool_when_asked(self) -> None:
        """instance_of(bool) and boolean take true and false, and nothing else."""
        assert v.instance_of(bool).accepts(False) and v.boolean.accepts(True)
        assert str(refusal(1, v.boolean, name="nesterov")) == \
            "'nesterov' must be true or false (got 1 that is an int)"

    def test_true_is_not_a_choice_of_one(self) -> None:
        """in_((0, 1)) refuses True although True == 1."""
        assert v.in_((0, 1)).accepts(1) and not v.in_((0, 1)).accepts(True)


class TestValidators:
    @pytest.mark.parametrize(("validator", "good", "bad", "requirement"), [
        (v.positive_int, [1, 10**9], [0, -1, 1.0, "1", None], "a positive int"),
        (v.non_negative_int, [0, 3], [-1, 0.0], "an int >= 0"),
        (v.odd, [1, -3, 33], [0, 4, 3.0], "odd"),
        (v.number, [0, 1.5, -2, math.inf], [math.nan, "1", None], "a number"),
        (v.finite, [0, 1.5], [math.inf, -math.inf, math.nan], "finite"),
        (v.boolean, [True, False], [0, "true"], "true or false"),
        (v.sequence, [[], (1,), [1, 2]], ["ab", {"a": 1}, 3], "a list"),
        (v.non_empty, [[1], "a", {"k": 1}], [[], "", 3], "non-empty"),
        (v.instance_of(int, float), [1, 2.5], ["1", True], "an int or a float"),
        (v.instance_of(str), ["a"], [1], "a string"),
        (v.in_(("avg", "max")), ["avg", "max"], ["sum", None, ["avg"]], "one of 'avg', 'max'"),
        (v.in_(("per_feature", None)), [None], ["none"], "one of 'per_feature', null"),
        (v.between(0, 1), [0, 0.5, 1], [-0.1, 1.1, "0.5"], "in [0, 1]"),
        (v.between(0, 1, high_open=True), [0, 0.99], [1, 1.0], "in [0, 1)"),
        (v.between(0.5, 2, low_open=True), [0.51, 2], [0.5], "in (0.5, 2]"),
        (v.ge(0), [0, 3.5], [-1e-9], ">= 0"),
        (v.gt(0), [1e-9], [0], "> 0"),
        (v.le(1), [1], [1.5], "<= 1"),
        (v.lt(1), [0.99], [1], "< 1"),
        (v.optional(v.positive_int), [None, 3], [0, "3"], "a positive int or null"),
        (v.each(v.positive_int), [[], [1, 2], (3,)], ["12", 5], "a list, each item a positive int"),
        (v.and_(v.positive_int, v.odd), [1, 33], [4, 0, -3, True], "an odd positive int"),
        (v.and_(v.sequence, v.non_empty), [[1]], [[], "a"], "a non-empty list"),
        (v.and_(v.number, v.ge(0)), [0, 2.5], [-1, "1"], "a number >= 0"),
        (v.and_(v.number, v.finite), [1.0], [math.inf], "a finite number"),
        (v.satisfies(lambda x: x & (x - 1) == 0, "a power of two"), [1, 8], [6, "8"],
         "a power of two"),
    ])
    def test_accepts_and_refuses(self, validator: v.Validator, good: list[Any], bad: list[Any],
                                 requirement: str) -> None:
        """Each validator accepts the good values and refuses the bad ones, saying what must
        hold; check() returns an accepted value unchanged."""
        for value in good:
            assert validator.accepts(value), value
            assert check("x", value, validator) is value
        for value in bad:
            assert not validator.accepts(value), value
            err = refusal(value, validator)
            assert err.requirement == requirement
            assert str(err).startswith(f"'x' must be {requirement} (got ")

    def test_each_names_the_item(self) -> None:
        """A bad item of a list is reported as name.i, with the item as the value."""
        err = refusal([8000, 8000.5], v.each(v.and_(v.instance_of(int), v.ge(1000))),
                      name="rates")
        assert (err.parameter, err.got) == ("rates.1", 8000.5)
        assert str(err) == "'rates[1]' must be an int >= 1000 (got 8000.5 that is a float)"

    def test_each_inside_and(self) -> None:
        """and_ keeps an item's own error rather than restating the whole list's requirement."""
        err = refusal([1, 0], v.sequence, v.non_empty, v.each(v.positive_int), name="sizes")
        assert err.parameter == "sizes.1"

    def test_check_combines_its_validators(self) -> None:
        """check(name, value, a, b) states the requirement of a and b together."""
        assert str(refusal(4, v.positive_int, v.odd, name="kernel")) == \
            str(refusal(4, v.and_(v.positive_int, v.odd), name="kernel"))

    def test_check_without_validators(self) -> None:
        """check() with no validator returns the value."""
        assert check("x", object) is object

    def test_a_raising_test_fails(self) -> None:
        """A test that raises TypeError counts as a failure, not as a crash."""
        assert not v.satisfies(lambda x: x > 0, "positive").accepts("a")

    def test_form_is_validated(self) -> None:
        """A validator's form is one of noun, adjective, qualifier."""
        with pytest.raises(ValueError, match="form"):
            v.Validator("x", form="verb")


def _doc_block() -> str:
    text = (ROOT / "docs" / "plugins.md").read_text()
    section = re.split(r"^## ", text, flags=re.MULTILINE)
    body = next(s for s in section if s.startswith("Validating parameters"))
    blocks = re.findall(r"^```python\n(.*?)^```", body, flags=re.MULTILINE | re.DOTALL)
    assert blocks, "the section 'Validating parameters' has no ```python example"
    return textwrap.dedent(blocks[0])


class TestDocumentedExample:
    def test_plugins_md_example_runs(self) -> None:
        """The example of docs/plugins.md builds with good parameters and names a bad one."""
        module = types.ModuleType("plugins_md_validators")
        exec(compile(_doc_block(), "docs/plugins.md (Validating parameters)", "exec"),
             module.__dict__)
        modules = [obj for obj in vars(module).values()
                   if isinstance(obj, type) and issubclass(obj, ng.NeuralModule)
                   and obj is not ng.NeuralModule]
        assert modules
        for cls in modules:
            cls()
            with pytest.raises(ParameterError):
                cls(kernel=4)

"""Neural types: NeMo's comparison semantics, minus NeMo's known bugs."""

from __future__ import annotations

import pytest

import neuralgraph as ng
from neuralgraph import AxisKind, AxisType, NeuralType
from neuralgraph import NeuralTypeComparisonResult as R


class TestAxisKind:
    def test_letters_case_insensitive(self) -> None:
        """Axis letters and names parse regardless of case."""
        assert AxisKind.from_str("b") is AxisKind.Batch
        assert AxisKind.from_str("T") is AxisKind.Time
        assert AxisKind.from_str("Channel") is AxisKind.Dimension
        assert AxisKind.from_str("c") is AxisKind.Dimension
        assert AxisKind.from_str("ANY") is AxisKind.Any

    def test_unknown_letter(self) -> None:
        """An unknown axis letter is a ValueError naming it."""
        with pytest.raises(ValueError, match="'Q'"):
            AxisKind.from_str("Q")


class TestConstructors:
    def test_element_class_instead_of_instance(self) -> None:
        """Passing an element-type class is a ValueError that shows the fix."""
        with pytest.raises(ValueError, match=r"LogprobsType\(\)"):
            NeuralType(("B", "T"), ng.LogprobsType)  # type: ignore[arg-type]

    def test_sized_list_axis(self) -> None:
        """A list axis cannot have a size."""
        with pytest.raises(ValueError, match="list axis"):
            AxisType("B", size=3, is_list=True)

    def test_unknown_axis_letter_in_type(self) -> None:
        """Unknown letters in axes are rejected."""
        with pytest.raises(ValueError):
            NeuralType(("B", "X"), ng.ChannelType())

    def test_equality_is_bool(self) -> None:
        """``==`` returns a bool, not an enum."""
        a = NeuralType(("B", "T"), ng.AudioSignal())
        assert (a == NeuralType(("B", "T"), ng.AudioSignal())) is True
        assert (a == NeuralType(("B", "D"), ng.AudioSignal())) is False


class TestElementComparison:
    def test_subclass_less_greater(self) -> None:
        """A subclass compares LESS to its parent; the parent GREATER to it."""
        mel, spec = ng.MelSpectrogramType(), ng.SpectrogramType()
        assert mel.compare(spec) is R.LESS
        assert spec.compare(mel) is R.GREATER

    def test_unrelated(self) -> None:
        """Unrelated element types are INCOMPATIBLE."""
        assert ng.LogprobsType().compare(ng.LogitsType()) is R.INCOMPATIBLE

    def test_parameters_none_is_wildcard(self) -> None:
        """AudioSignal() matches any rate; two different rates do not match."""
        assert ng.AudioSignal().compare(ng.AudioSignal(16000)) is R.SAME
        assert ng.AudioSignal(16000).compare(ng.AudioSignal()) is R.SAME
        assert ng.AudioSignal(16000).compare(ng.AudioSignal(8000)) is \
            R.SAME_TYPE_INCOMPATIBLE_PARAMS

    def test_void(self) -> None:
        """Void accepts anything; nothing else accepts Void."""
        assert ng.VoidType().compare(ng.LogitsType()) is R.SAME
        assert ng.LogitsType().compare(ng.VoidType()) is R.INCOMPATIBLE

    def test_vocab_size(self) -> None:
        """Label vocabularies of different sizes do not match."""
        assert ng.LabelsType(28).compare(ng.LabelsType(29)) is R.SAME_TYPE_INCOMPATIBLE_PARAMS
        assert ng.LabelsType(28).compare(ng.LabelsType()) is R.SAME


class TestNeuralTypeComparison:
    def test_void_without_axes_accepts_anything(self) -> None:
        """A void type with no axes is SAME as any type."""
        assert NeuralType().compare(NeuralType(("B", "T"), ng.AudioSignal())) is R.SAME

    def test_no_axes_vs_axes(self) -> None:
        """A typed port with no axes does not accept a tensor with axes."""
        assert NeuralType(None, ng.LossType()).compare(
            NeuralType(("B",), ng.LossType())) is R.INCOMPATIBLE

    def test_transpose(self) -> None:
        """The same axes in another order are TRANSPOSE_SAME."""
        a = NeuralType(("B", "D", "T"), ng.SpectrogramType())
        b = NeuralType(("B", "T", "D"), ng.SpectrogramType())
        assert a.compare(b) is R.TRANSPOSE_SAME

    def test_dim_incompatible(self) -> None:
        """Same kinds with a differing fixed size are DIM_INCOMPATIBLE."""
        a = NeuralType(("B", AxisType("D", 1024), "T"), ng.AcousticEncodedRepresentation())
        b = NeuralType(("B", AxisType("D", 512), "T"), ng.AcousticEncodedRepresentation())
        assert a.compare(b) is R.DIM_INCOMPATIBLE

    def test_unsized_axis_accepts_any_size(self) -> None:
        """An unsized axis on the declared side accepts any size."""
        a = NeuralType(("B", "D", "T"), ng.AcousticEncodedRepresentation())
        b = NeuralType(("B", AxisType("D", 512), "T"), ng.AcousticEncodedRepresentation())
        assert a.compare(b) is R.SAME

    def test_sized_vs_unsized_is_nemo_dim_incompatible(self) -> None:
        """As in NeMo, a sized declared axis vs an unsized incoming one is DIM_INCOMPATIBLE."""
        a = NeuralType(("B", AxisType("D", 64)), ng.ChannelType())
        b = NeuralType(("B", "D"), ng.ChannelType())
        assert a.compare(b) is R.DIM_INCOMPATIBLE
        assert a.sizes_unknown(b) == [1]
        assert a.without_sizes([1]).compare(b) is R.SAME

    def test_rank_differs(self) -> None:
        """Different ranks are INCOMPATIBLE."""
        assert NeuralType(("B", "T"), ng.AudioSignal()).compare(
            NeuralType(("B", "T", "D"), ng.AudioSignal())) is R.INCOMPATIBLE

    def test_elements_decide_with_same_axes(self) -> None:
        """With equal axes the element comparison is the result."""
        a = NeuralType(("B", "D", "T"), ng.SpectrogramType())
        b = NeuralType(("B", "D", "T"), ng.MelSpectrogramType())
        assert a.compare(b) is R.GREATER
        assert b.compare(a) is R.LESS

    def test_transpose_with_other_elements_is_incompatible(self) -> None:
        """TRANSPOSE_SAME stands only where the elements are SAME."""
        a = NeuralType(("B", "D", "T"), ng.SpectrogramType())
        b = NeuralType(("B", "T", "D"), ng.MelSpectrogramType())
        assert a.compare(b) is R.INCOMPATIBLE

    def test_any_axis_does_not_hide_mismatch(self) -> None:
        """An Any axis matches its own position but not a mismatch elsewhere (NeMo bug)."""
        a = NeuralType(("ANY", "T", AxisType("D", 4)), ng.ChannelType())
        ok = NeuralType(("B", "T", AxisType("D", 4)), ng.ChannelType())
        bad = NeuralType(("B", "T", AxisType("D", 5)), ng.ChannelType())
        assert a.compare(ok) is R.SAME
        assert a.compare(bad) is R.DIM_INCOMPATIBLE

    def test_port_rule(self) -> None:
        """A port accepts SAME and GREATER, nothing else."""
        spec = NeuralType(("B", "D", "T"), ng.SpectrogramType())
        mel = NeuralType(("B", "D", "T"), ng.MelSpectrogramType())
        assert ng.accepts(spec, mel)
        assert not ng.accepts(mel, spec)

    def test_list_axis_vs_tensor_axis(self) -> None:
        """A list axis against a tensor axis of the same kind is TRANSPOSE_SAME."""
        a = NeuralType((AxisType("B", is_list=True), "T"), ng.ChannelType())
        b = NeuralType(("B", "T"), ng.ChannelType())
        assert a.compare(b) is R.TRANSPOSE_SAME

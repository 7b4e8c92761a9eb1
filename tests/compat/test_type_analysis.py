"""Port of TFF's type_analysis tests (counting, sum/average/min-max
compatibility, structures of floats and integers, bounds of secure sums).

Source: google-parfait/federated-language,
federated_language/types/type_analysis_test.py.

Spelling: `computation_types.X` / `placements.X` -> `fedjit.X`;
`type_analysis.X` -> `fedjit.type_analysis.X` (the most used ones are also
`fedjit.is_sum_compatible`, `fedjit.is_structure_of_integers`, ...);
`type_analysis.SumIncompatibleError` -> `fedjit.SumIncompatibleError`
(a TypeError, as in TFF); `assertRaises` -> `pytest.raises`.

Left out: the CheckConcreteInstanceOf class (`type_analysis.check_concrete_instance_of`,
binding abstract types to concrete ones, which fedjit does not do).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import fedjit
from fedjit import CLIENTS, SERVER, FederatedType, FunctionType, SequenceType, StructType, TensorType

type_analysis = fedjit.type_analysis


# ------------------------------------------------------------------ count


@pytest.mark.parametrize("type_signature,predicate,expected_result", [
    (TensorType(np.int32), lambda t: isinstance(t, TensorType), 1),
    (StructType([np.int32] * 3), lambda t: isinstance(t, TensorType), 3),
    (StructType([[np.int32] * 3] * 3), lambda t: isinstance(t, TensorType), 9),
], ids=["one", "three", "nested"])
def test_count_returns_result(type_signature, predicate, expected_result):
  assert type_analysis.count(type_signature, predicate) == expected_result


# --------------------------------------------------------- contains / only


@pytest.mark.parametrize("type_signature,types", [
    (TensorType(np.int32), TensorType),
    (StructType([np.int32]), (StructType, TensorType)),
    (TensorType(np.int32), (StructType, TensorType)),
    (StructType([np.int32]), TensorType),
], ids=["one_type", "two_types", "less_types", "more_types"])
def test_contains_returns_true(type_signature, types):
  assert type_analysis.contains(type_signature, lambda x: isinstance(x, types))


@pytest.mark.parametrize("type_signature,types", [(TensorType(np.int32), StructType)],
                         ids=["one_type"])
def test_contains_returns_false(type_signature, types):
  assert not type_analysis.contains(type_signature, lambda x: isinstance(x, types))


@pytest.mark.parametrize("type_signature,types", [
    (TensorType(np.int32), TensorType),
    (StructType([np.int32]), (StructType, TensorType)),
    (TensorType(np.int32), (StructType, TensorType)),
], ids=["one_type", "two_types", "less_types"])
def test_contains_only_returns_true(type_signature, types):
  assert type_analysis.contains_only(type_signature, lambda x: isinstance(x, types))


@pytest.mark.parametrize("type_signature,types", [
    (TensorType(np.int32), StructType),
    (StructType([np.int32]), TensorType),
], ids=["one_type", "more_types"])
def test_contains_only_returns_false(type_signature, types):
  assert not type_analysis.contains_only(type_signature, lambda x: isinstance(x, types))


# ---------------------------------------------------------- sum-compatible


@pytest.mark.parametrize("type_spec", [
    TensorType(np.int32),
    TensorType(ml_dtypes.bfloat16),
    StructType([np.int32, np.int32]),
    StructType([np.complex128, np.float32, np.float64]),
    FederatedType(np.int32, CLIENTS),
], ids=["tensor_type", "bfloat16_type", "struct_type_int", "struct_type_float",
        "federated_type"])
def test_check_is_sum_compatible_does_not_raise(type_spec):
  type_analysis.check_is_sum_compatible(type_spec)
  assert fedjit.is_sum_compatible(type_spec)


@pytest.mark.parametrize("type_spec", [
    TensorType(np.bool_),
    TensorType(np.str_),
    TensorType(np.int32, shape=[None]),
    StructType([np.int32, np.bool_]),
    SequenceType(np.int32),
    fedjit.PlacementType(),
    FunctionType(np.int32, np.int32),
    fedjit.AbstractType("T"),
], ids=["tensor_type_bool", "tensor_type_string", "partially_defined_shape", "tuple_type",
        "sequence_type", "placement_type", "function_type", "abstract_type"])
def test_check_is_sum_compatible_raises_sum_incompatible_error(type_spec):
  with pytest.raises(fedjit.SumIncompatibleError):
    type_analysis.check_is_sum_compatible(type_spec)
  assert not fedjit.is_sum_compatible(type_spec)


# ------------------------------------------------------ average-compatible


@pytest.mark.parametrize("type_spec", [
    TensorType(np.float32),
    TensorType(np.float64),
    StructType([("x", np.float32), ("y", np.float64)]),
    FederatedType(np.float32, CLIENTS),
], ids=["tensor_type_float32", "tensor_type_float64", "tuple_type", "federated_type"])
def test_is_average_compatible_returns_true(type_spec):
  assert fedjit.is_average_compatible(type_spec)


@pytest.mark.parametrize("type_spec", [
    TensorType(np.int32), TensorType(np.int64), SequenceType(np.float32),
], ids=["tensor_type_int32", "tensor_type_int64", "sequence_type"])
def test_is_average_compatible_returns_false(type_spec):
  assert not fedjit.is_average_compatible(type_spec)


# ------------------------------------------------------ min/max-compatible


@pytest.mark.parametrize("type_spec", [
    TensorType(np.int32), TensorType(np.int64), TensorType(np.float32),
    TensorType(np.float64), StructType([("x", np.float32), ("y", np.int64)]),
    FederatedType(np.float32, CLIENTS),
], ids=["tensor_type_int32", "tensor_type_int64", "tensor_type_float32",
        "tensor_type_float64", "tuple_type", "federated_type"])
def test_is_min_max_compatible_returns_true(type_spec):
  assert fedjit.is_min_max_compatible(type_spec)


@pytest.mark.parametrize("type_spec", [TensorType(np.complex128), SequenceType(np.float32)],
                         ids=["tensor_type_complex", "sequence_type"])
def test_is_min_max_compatible_returns_false(type_spec):
  assert not fedjit.is_min_max_compatible(type_spec)


# ---------------------------------------------------- check_federated_type


def test_check_federated_type_passes_or_raises_type_error():
  type_spec = FederatedType(np.int32, CLIENTS, False)
  type_analysis.check_federated_type(type_spec, TensorType(np.int32), CLIENTS, False)
  type_analysis.check_federated_type(type_spec, TensorType(np.int32), None, None)
  type_analysis.check_federated_type(type_spec, None, CLIENTS, None)
  type_analysis.check_federated_type(type_spec, None, None, False)
  with pytest.raises(TypeError):
    type_analysis.check_federated_type(type_spec, None, SERVER, None)
  with pytest.raises(TypeError):
    type_analysis.check_federated_type(type_spec, None, None, True)


# ------------------------------------------------ structures of floats/ints


@pytest.mark.parametrize("type_spec", [
    StructType([]),
    TensorType(np.float32),
    StructType([np.float32, np.float32]),
    StructType([TensorType(np.float32), StructType([np.float32, np.float32])]),
    FederatedType(np.float32, CLIENTS),
], ids=["empty_struct", "float", "floats", "nested_struct", "federated_float_at_clients"])
def test_is_structure_of_floats_returns_true(type_spec):
  assert fedjit.is_structure_of_floats(type_spec)


@pytest.mark.parametrize("type_spec", [
    TensorType(np.bool_),
    TensorType(np.int32),
    TensorType(np.str_),
    StructType([np.float32, np.bool_]),
    StructType([TensorType(np.float32), StructType([np.bool_, np.bool_])]),
    SequenceType(np.float32),
    fedjit.PlacementType(),
    FunctionType(np.float32, np.float32),
    fedjit.AbstractType("T"),
], ids=["bool", "int", "string", "float_and_bool", "nested_struct", "sequence_of_floats",
        "placement", "function", "abstract"])
def test_is_structure_of_floats_returns_false(type_spec):
  assert not fedjit.is_structure_of_floats(type_spec)


@pytest.mark.parametrize("type_spec", [
    StructType([]),
    TensorType(np.int32),
    StructType([np.int32, np.int32]),
    StructType([TensorType(np.int32), StructType([np.int32, np.int32])]),
    FederatedType(np.int32, CLIENTS),
], ids=["empty_struct", "int", "ints", "nested_struct", "federated_int_at_clients"])
def test_is_structure_of_integers_returns_true(type_spec):
  assert fedjit.is_structure_of_integers(type_spec)


@pytest.mark.parametrize("type_spec", [
    TensorType(np.bool_),
    TensorType(np.float32),
    TensorType(np.str_),
    StructType([np.int32, np.bool_]),
    StructType([TensorType(np.int32), StructType([np.bool_, np.bool_])]),
    SequenceType(np.int32),
    fedjit.PlacementType(),
    FunctionType(np.int32, np.int32),
    fedjit.AbstractType("T"),
], ids=["bool", "float", "string", "int_and_bool", "nested_struct", "sequence_of_ints",
        "placement", "function", "abstract"])
def test_is_structure_of_integers_returns_false(type_spec):
  assert not fedjit.is_structure_of_integers(type_spec)


# ------------------------------- is_single_integer_or_matches_structure


@pytest.mark.parametrize("type_sig,shape_type", [
    (TensorType(np.int32), TensorType(np.int32)),
    (StructType([np.int32, np.int32]), StructType([np.int32, np.int32])),
    (StructType([("x", np.int32)]), StructType([("x", np.int32)])),
    (TensorType(np.int32), TensorType(np.int32, [5, 97, 204])),
    (TensorType(np.int32), TensorType(np.int8)),
    (TensorType(np.int32), StructType([np.int32, np.int32])),
], ids=["single int", "struct", "struct with named fields", "single int for complex tensor",
        "different kinds of ints", "single int_for_struct"])
def test_is_single_integer_or_matches_structure_returns_true(type_sig, shape_type):
  assert type_analysis.is_single_integer_or_matches_structure(type_sig, shape_type)


@pytest.mark.parametrize("type_sig,shape_type", [
    (StructType([np.int32, np.int32, np.int32]), StructType([np.int32, np.int32])),
    (StructType([np.int32, np.int32]), StructType([np.int32, np.int32, np.int32])),
    (StructType([("x", np.int32)]), StructType([("y", np.int32)])),
], ids=["miscounted struct", "miscounted struct 2", "misnamed struct"])
def test_is_single_integer_or_matches_structure_returns_false(type_sig, shape_type):
  assert not type_analysis.is_single_integer_or_matches_structure(type_sig, shape_type)

"""Port of TFF's type tests (`computation_types_test.py`).

Source: google-parfait/federated-language,
federated_language/types/computation_types_test.py

Spelling: `computation_types.X` -> `fedjit.X` (TensorType, StructType,
StructWithPythonType, SequenceType, FunctionType, AbstractType, PlacementType,
FederatedType, to_type, TypesNotEquivalentError); `placements.CLIENTS` /
`placements.SERVER` -> `fedjit.CLIENTS` / `fedjit.SERVER`; `@attrs.define`
classes -> `@dataclasses.dataclass` classes (fedjit also reads attrs classes,
but does not depend on the attrs package); `structure.iter_elements(t)` ->
`t.items()`; absltest / parameterized -> pytest (`assertIs` -> `is`,
`assertRaises` -> `pytest.raises`, named parameters -> parametrize ids). The
expected values are TFF's, verbatim.

Left out:
* `InternTest` (2 tests): they check the private `_Intern` metaclass and
  `_hashable_from_init_args` classmethods of TFF's implementation; fedjit interns
  types too (the `test_interned` cases below check it), by value after
  construction.
* Every `test_from_proto_*` and `test_to_proto_*` case (TensorType, StructType,
  StructWithPythonType, SequenceType, FunctionType, AbstractType,
  PlacementType, FederatedType): they build `computation_pb2` protocol buffers,
  TFF's serialization format. fedjit serializes computations in its own format
  (`fedjit.serialize`), tested in tests/core/test_serialization.py.
* `ToTypeTest.test_struct`: it converts a `structure.Struct`, a TFF class that
  fedjit does not have (fedjit values are plain Python containers and pytrees).
"""

import collections
import dataclasses
from typing import NamedTuple

import numpy as np
import pytest

import fedjit


# spelling: @attrs.define -> @dataclasses.dataclass (the repeated field `a` is TFF's).
@dataclasses.dataclass
class TestAttrs:
  __test__ = False  # (not a pytest test class)
  a: int = 1
  a: bool = True  # noqa: F811


class TestNamedTuple(NamedTuple):
  __test__ = False  # (not a pytest test class)
  a: int = 1
  b: bool = True


def _params(*cases):
  """pytest.param for each (id, *values) case, as TFF's named_parameters."""
  return [pytest.param(*case[1:], id=case[0]) for case in cases]


# ------------------------------------------------------------------- TypeTest

@pytest.mark.parametrize("type_spec, other", _params(
    ("tensor_type_same_dtype_and_shape", fedjit.TensorType(np.int32),
     fedjit.TensorType(np.int32)),
))
def test_type_check_equivalent_to_does_not_raise_types_not_equivalent_error(type_spec, other):
  type_spec.check_equivalent_to(other)


@pytest.mark.parametrize("type_spec, other", _params(
    ("tensor_type_different_dtype", fedjit.TensorType(np.int32), fedjit.TensorType(np.bool)),
    ("tensor_type_different_shape", fedjit.TensorType(np.int32),
     fedjit.TensorType(np.int32, (10,))),
))
def test_type_check_equivalent_to_returns_false(type_spec, other):
  with pytest.raises(fedjit.TypesNotEquivalentError):
    type_spec.check_equivalent_to(other)


# ------------------------------------------------------------- TensorTypeTest

@pytest.mark.parametrize("type_spec_1, type_spec_2", _params(
    ("tensor_type", fedjit.TensorType(np.int32), fedjit.TensorType(np.int32)),
    ("tensor_type_ndims_unknown", fedjit.TensorType(np.int32, (None,)),
     fedjit.TensorType(np.int32, (None,))),
))
def test_tensor_type_interned(type_spec_1, type_spec_2):
  assert type_spec_1 is type_spec_2


def test_tensor_type_init_infers_shape():
  type_spec = fedjit.TensorType(np.int32)
  assert type_spec.shape == ()


@pytest.mark.parametrize("type_spec, expected_str", _params(
    ("rank_unknown", fedjit.TensorType(np.int32), "int32"),
    ("ndims_unknown", fedjit.TensorType(np.int32, (None,)), "int32[?]"),
    ("ndims_10", fedjit.TensorType(np.int32, (10,)), "int32[10]"),
))
def test_tensor_type_str(type_spec, expected_str):
  assert str(type_spec) == expected_str


@pytest.mark.parametrize("type_spec, expected_repr", _params(
    ("rank_unknown", fedjit.TensorType(np.int32), "TensorType(np.int32)"),
    ("ndims_unknown", fedjit.TensorType(np.int32, (None,)), "TensorType(np.int32, (None,))"),
    ("ndims_ten", fedjit.TensorType(np.int32, (10,)), "TensorType(np.int32, (10,))"),
))
def test_tensor_type_repr(type_spec, expected_repr):
  assert repr(type_spec) == expected_repr


@pytest.mark.parametrize("type_spec, other, expected_result", _params(
    ("same_dtype_and_shape", fedjit.TensorType(np.int32), fedjit.TensorType(np.int32), True),
    ("different_dtype", fedjit.TensorType(np.int32), fedjit.TensorType(np.bool), False),
    ("different_shape", fedjit.TensorType(np.int32), fedjit.TensorType(np.int32, (10,)),
     False),
))
def test_tensor_type_eq(type_spec, other, expected_result):
  assert (type_spec == other) == expected_result


@pytest.mark.parametrize("type_spec, other, expected_result", _params(
    ("same_dtype_and_shape", fedjit.TensorType(np.int32), fedjit.TensorType(np.int32), True),
    ("different_dtype", fedjit.TensorType(np.int32), fedjit.TensorType(np.bool), False),
    ("different_shape", fedjit.TensorType(np.int32), fedjit.TensorType(np.int32, (10,)),
     False),
    ("ndims_unknown_from_known", fedjit.TensorType(np.int32, (None,)),
     fedjit.TensorType(np.int32, (10,)), True),
    ("ndims_known_from_unknown", fedjit.TensorType(np.int32, (10,)),
     fedjit.TensorType(np.int32, (None,)), False),
))
def test_tensor_type_is_assignable_from(type_spec, other, expected_result):
  assert type_spec.is_assignable_from(other) == expected_result


# ------------------------------------------------------------- StructTypeTest

def test_struct_type_interned():
  type_spec_1 = fedjit.StructType([np.int32, np.bool])
  type_spec_2 = fedjit.StructType([np.int32, np.bool])
  assert type_spec_1 is type_spec_2


@pytest.mark.parametrize("name", ["__init__", "python_container", "items"])
def test_struct_type_init_raises_value_error_with_reserved_name(name):
  with pytest.raises(ValueError):
    fedjit.StructType([(name, np.int32)])


@pytest.mark.parametrize("type_spec, expected_str", _params(
    ("unnamed", fedjit.StructType([np.int32, np.bool]), "<int32,bool>"),
    ("named", fedjit.StructType([("a", np.int32), ("b", np.bool)]), "<a=int32,b=bool>"),
))
def test_struct_type_str(type_spec, expected_str):
  assert str(type_spec) == expected_str


@pytest.mark.parametrize("type_spec, expected_repr", _params(
    ("unnamed", fedjit.StructType([np.int32, np.bool]),
     "StructType([TensorType(np.int32), TensorType(np.bool)])"),
    ("named", fedjit.StructType([("a", np.int32), ("b", np.bool)]),
     ("StructType(["
      "('a', TensorType(np.int32)), "
      "('b', TensorType(np.bool))"
      "])")),
))
def test_struct_type_repr(type_spec, expected_repr):
  assert repr(type_spec) == expected_repr


@pytest.mark.parametrize("type_spec, other, expected_result", _params(
    ("same_elements_unnamed", fedjit.StructType([np.int32, np.bool]),
     fedjit.StructType([np.int32, np.bool]), True),
    ("same_elements_named", fedjit.StructType([("a", np.int32), ("b", np.bool)]),
     fedjit.StructType([("a", np.int32), ("b", np.bool)]), True),
    ("different_elements_unnamed", fedjit.StructType([np.int32, np.float64]),
     fedjit.StructType([np.int32, np.int32]), False),
    ("different_elements_named", fedjit.StructType([("a", np.int32), ("b", np.float64)]),
     fedjit.StructType([("a", np.int32), ("b", np.int32)]), False),
    ("same_elements_different_names", fedjit.StructType([("a", np.int32), ("b", np.float64)]),
     fedjit.StructType([("a", np.int32), ("c", np.float64)]), False),
))
def test_struct_type_eq(type_spec, other, expected_result):
  assert (type_spec == other) == expected_result


@pytest.mark.parametrize("type_spec, other, expected_result", _params(
    ("same_elements_unnamed", fedjit.StructType([np.int32, np.float64]),
     fedjit.StructType([np.int32, np.float64]), True),
    ("same_elements_named", fedjit.StructType([("a", np.int32), ("b", np.float64)]),
     fedjit.StructType([("a", np.int32), ("b", np.float64)]), True),
    ("different_elements_unnamed", fedjit.StructType([np.int32, np.float64]),
     fedjit.StructType([np.int32, np.int32]), False),
    ("different_elements_named", fedjit.StructType([("a", np.int32), ("b", np.float64)]),
     fedjit.StructType([("a", np.int32), ("b", np.int32)]), False),
    ("same_elements_different_names", fedjit.StructType([("a", np.int32), ("b", np.float64)]),
     fedjit.StructType([("a", np.int32), ("c", np.float64)]), False),
    ("same_elements_unnamed_from_named", fedjit.StructType([np.int32, np.float64]),
     fedjit.StructType([("a", np.int32), ("b", np.float64)]), False),
    ("same_elements_named_from_unnamed", fedjit.StructType([("a", np.int32), ("b", np.float64)]),
     fedjit.StructType([np.int32, np.float64]), True),
))
def test_struct_type_is_assignable_from(type_spec, other, expected_result):
  assert type_spec.is_assignable_from(other) == expected_result


# --------------------------------------------------- StructWithPythonTypeTest

def test_struct_with_python_type_interned():
  type_spec_1 = fedjit.StructWithPythonType([np.int32, np.float64], list)
  type_spec_2 = fedjit.StructWithPythonType([np.int32, np.float64], list)
  assert type_spec_1 is type_spec_2


@pytest.mark.parametrize("name", ["__init__", "python_container", "items"])
def test_struct_with_python_type_init_raises_value_error_with_reserved_name(name):
  with pytest.raises(ValueError):
    fedjit.StructWithPythonType([(name, np.int32)], list)


@pytest.mark.parametrize("type_spec, expected_str", _params(
    ("list_unnamed", fedjit.StructWithPythonType([np.int32, np.float64], list),
     "<int32,float64>"),
    ("list_named", fedjit.StructWithPythonType([("a", np.int32), ("b", np.float64)], list),
     "<a=int32,b=float64>"),
    ("tuple", fedjit.StructWithPythonType([np.int32, np.float64], tuple), "<int32,float64>"),
    ("dict", fedjit.StructWithPythonType([("a", np.int32), ("b", np.float64)], dict),
     "<a=int32,b=float64>"),
    ("ordered_dict", fedjit.StructWithPythonType([("a", np.int32), ("b", np.float64)],
                                                 collections.OrderedDict),
     "<a=int32,b=float64>"),
    ("attrs", fedjit.StructWithPythonType([("a", np.int32), ("b", np.float64)], TestAttrs),
     "<a=int32,b=float64>"),
    ("named_tuple", fedjit.StructWithPythonType([("a", np.int32), ("b", np.float64)],
                                                TestNamedTuple),
     "<a=int32,b=float64>"),
))
def test_struct_with_python_type_str(type_spec, expected_str):
  assert str(type_spec) == expected_str


_NAMED_REPR = ("StructType(["
               "('a', TensorType(np.int32)), "
               "('b', TensorType(np.float64))"
               "])")


@pytest.mark.parametrize("type_spec, expected_repr", _params(
    ("list_unnamed", fedjit.StructWithPythonType([np.int32, np.float64], list),
     "StructType([TensorType(np.int32), TensorType(np.float64)]) as list"),
    ("list_named", fedjit.StructWithPythonType([("a", np.int32), ("b", np.float64)], list),
     _NAMED_REPR + " as list"),
    ("tuple", fedjit.StructWithPythonType([np.int32, np.float64], tuple),
     "StructType([TensorType(np.int32), TensorType(np.float64)]) as tuple"),
    ("dict", fedjit.StructWithPythonType([("a", np.int32), ("b", np.float64)], dict),
     _NAMED_REPR + " as dict"),
    ("ordered_dict", fedjit.StructWithPythonType([("a", np.int32), ("b", np.float64)],
                                                 collections.OrderedDict),
     _NAMED_REPR + " as OrderedDict"),
    ("attrs", fedjit.StructWithPythonType([("a", np.int32), ("b", np.float64)], TestAttrs),
     _NAMED_REPR + " as TestAttrs"),
    ("named_tuple", fedjit.StructWithPythonType([("a", np.int32), ("b", np.float64)],
                                                TestNamedTuple),
     _NAMED_REPR + " as TestNamedTuple"),
))
def test_struct_with_python_type_repr(type_spec, expected_repr):
  assert repr(type_spec) == expected_repr


@pytest.mark.parametrize("type_spec, other, expected_result", _params(
    ("same_elements_and_container_type_unnamed",
     fedjit.StructWithPythonType([np.int32, np.float64], list),
     fedjit.StructWithPythonType([np.int32, np.float64], list), True),
    ("same_elements_and_container_type_named",
     fedjit.StructWithPythonType([("a", np.int32), ("b", np.float64)], list),
     fedjit.StructWithPythonType([("a", np.int32), ("b", np.float64)], list), True),
    ("different_elements", fedjit.StructWithPythonType([np.int32, np.float64], list),
     fedjit.StructWithPythonType([np.int32, np.int32], list), False),
    ("different_container_type", fedjit.StructWithPythonType([np.int32, np.float64], list),
     fedjit.StructWithPythonType([np.int32, np.float64], tuple), False),
    ("same_elements_and_container_type_different_names",
     fedjit.StructWithPythonType([("a", np.int32), ("b", np.float64)], list),
     fedjit.StructWithPythonType([("a", np.int32), ("c", np.float64)], list), False),
))
def test_struct_with_python_type_eq(type_spec, other, expected_result):
  assert (type_spec == other) == expected_result


# ----------------------------------------------------------- SequenceTypeTest

def test_sequence_type_interned():
  type_spec_1 = fedjit.SequenceType(np.int32)
  type_spec_2 = fedjit.SequenceType(np.int32)
  assert type_spec_1 is type_spec_2


def test_sequence_type_init_converts_struct_with_list_to_struct_with_tuple_with_list():
  type_spec = fedjit.SequenceType(fedjit.StructWithPythonType([np.int32, np.float64], list))
  assert type_spec.element.python_container is tuple


def test_sequence_type_init_converts_struct_with_list_to_struct_with_tuple_with_list_nested():
  type_spec = fedjit.SequenceType(
      fedjit.StructWithPythonType(
          [
              fedjit.StructWithPythonType([np.int32, np.float64], list),
              fedjit.StructWithPythonType([np.int32, np.float64], list),
          ],
          list,
      ))
  assert type_spec.element.python_container is tuple
  first_element, second_element = type_spec.element
  assert first_element.python_container is tuple
  assert second_element.python_container is tuple


@pytest.mark.parametrize("element", _params(
    ("abstract_type", fedjit.AbstractType("T")),
    ("struct_type", fedjit.StructType([np.int32] * 3)),
    ("struct_with_python_type", fedjit.StructWithPythonType([np.int32] * 3, list)),
    ("placement_type", fedjit.PlacementType()),
    ("tensor_type", fedjit.TensorType(np.int32)),
))
def test_sequence_type_init_does_not_raise_value_error(element):
  fedjit.SequenceType(element)


@pytest.mark.parametrize("element", _params(
    ("federated_type", fedjit.FederatedType(np.int32, fedjit.CLIENTS)),
    ("function_type", fedjit.FunctionType(np.int32, np.int32)),
    ("function_type_nested", fedjit.StructType([fedjit.FunctionType(np.int32, np.int32)])),
    ("sequence_type", fedjit.SequenceType([np.int32])),
))
def test_sequence_type_init_raises_value_error(element):
  with pytest.raises(ValueError):
    fedjit.SequenceType(element)


@pytest.mark.parametrize("type_spec, expected_str", _params(
    ("tensor_type", fedjit.SequenceType(np.int32), "int32*"),
    ("struct_type", fedjit.SequenceType(fedjit.StructType([np.int32, np.float64])),
     "<int32,float64>*"),
))
def test_sequence_type_str(type_spec, expected_str):
  assert str(type_spec) == expected_str


@pytest.mark.parametrize("type_spec, expected_repr", _params(
    ("tensor_type", fedjit.SequenceType(np.int32), "SequenceType(TensorType(np.int32))"),
    ("struct_type", fedjit.SequenceType(fedjit.StructType([np.int32, np.float64])),
     ("SequenceType(StructType([TensorType(np.int32),"
      " TensorType(np.float64)]))")),
))
def test_sequence_type_repr(type_spec, expected_repr):
  assert repr(type_spec) == expected_repr


@pytest.mark.parametrize("type_spec, other, expected_result", _params(
    ("same_element", fedjit.SequenceType(np.int32), fedjit.SequenceType(np.int32), True),
    ("different_element", fedjit.SequenceType(np.int32), fedjit.SequenceType(np.float64),
     False),
))
def test_sequence_type_eq(type_spec, other, expected_result):
  assert (type_spec == other) == expected_result


@pytest.mark.parametrize("type_spec, other, expected_result", _params(
    ("same_element", fedjit.SequenceType(np.int32), fedjit.SequenceType(np.int32), True),
    ("different_element", fedjit.SequenceType(np.int32), fedjit.SequenceType(np.float64),
     False),
))
def test_sequence_type_is_assignable_from(type_spec, other, expected_result):
  assert type_spec.is_assignable_from(other) == expected_result


# ----------------------------------------------------------- FunctionTypeTest

def test_function_type_interned():
  type_spec_1 = fedjit.FunctionType(np.int32, np.int32)
  type_spec_2 = fedjit.FunctionType(np.int32, np.int32)
  assert type_spec_1 is type_spec_2


@pytest.mark.parametrize("type_spec, expected_str", _params(
    ("with_parameter", fedjit.FunctionType(np.int32, np.float64), "(int32 -> float64)"),
    ("without_parameter", fedjit.FunctionType(None, np.float64), "( -> float64)"),
))
def test_function_type_str(type_spec, expected_str):
  assert str(type_spec) == expected_str


@pytest.mark.parametrize("type_spec, expected_repr", _params(
    ("with_parameter", fedjit.FunctionType(np.int32, np.float64),
     "FunctionType(TensorType(np.int32), TensorType(np.float64))"),
    ("without_parameter", fedjit.FunctionType(None, np.float64),
     "FunctionType(None, TensorType(np.float64))"),
))
def test_function_type_repr(type_spec, expected_repr):
  assert repr(type_spec) == expected_repr


@pytest.mark.parametrize("type_spec, other, expected_result", _params(
    ("same_parameter_and_result", fedjit.FunctionType(np.int32, np.float64),
     fedjit.FunctionType(np.int32, np.float64), True),
    ("different_parameter", fedjit.FunctionType(np.int32, np.float64),
     fedjit.FunctionType(np.float64, np.float64), False),
    ("different_result", fedjit.FunctionType(np.int32, np.float64),
     fedjit.FunctionType(np.int32, np.int32), False),
))
def test_function_type_eq(type_spec, other, expected_result):
  assert (type_spec == other) == expected_result


@pytest.mark.parametrize("type_spec, other, expected_result", _params(
    ("same_parameter_and_result", fedjit.FunctionType(np.int32, np.float64),
     fedjit.FunctionType(np.int32, np.float64), True),
    ("different_parameter", fedjit.FunctionType(np.int32, np.float64),
     fedjit.FunctionType(np.float64, np.float64), False),
    ("different_result", fedjit.FunctionType(np.int32, np.float64),
     fedjit.FunctionType(np.int32, np.int32), False),
))
def test_function_type_is_assignable_from(type_spec, other, expected_result):
  assert type_spec.is_assignable_from(other) == expected_result


# ----------------------------------------------------------- AbstractTypeTest

def test_abstract_type_interned():
  type_spec_1 = fedjit.AbstractType("T")
  type_spec_2 = fedjit.AbstractType("T")
  assert type_spec_1 is type_spec_2


def test_abstract_type_str():
  type_spec = fedjit.AbstractType("T")
  assert str(type_spec) == "T"


def test_abstract_type_repr():
  type_spec = fedjit.AbstractType("T")
  assert repr(type_spec) == "AbstractType('T')"


@pytest.mark.parametrize("type_spec, other, expected_result", _params(
    ("same_label", fedjit.AbstractType("T"), fedjit.AbstractType("T"), True),
    ("different_label", fedjit.AbstractType("T"), fedjit.AbstractType("U"), False),
))
def test_abstract_type_eq(type_spec, other, expected_result):
  assert (type_spec == other) == expected_result


@pytest.mark.parametrize("type_spec, other", _params(
    ("same_label", fedjit.AbstractType("T"), fedjit.AbstractType("T")),
    ("different_label", fedjit.AbstractType("T"), fedjit.AbstractType("U")),
))
def test_abstract_type_is_assignable_from(type_spec, other):
  with pytest.raises(TypeError):
    type_spec.is_assignable_from(other)


# ---------------------------------------------------------- PlacementTypeTest

def test_placement_type_interned():
  type_spec_1 = fedjit.PlacementType()
  type_spec_2 = fedjit.PlacementType()
  assert type_spec_1 is type_spec_2


def test_placement_type_str():
  type_spec = fedjit.PlacementType()
  assert str(type_spec) == "placement"


def test_placement_type_repr():
  type_spec = fedjit.PlacementType()
  assert repr(type_spec) == "PlacementType()"


@pytest.mark.parametrize("type_spec, other, expected_result", _params(
    ("placement_type", fedjit.PlacementType(), fedjit.PlacementType(), True),
))
def test_placement_type_eq(type_spec, other, expected_result):
  assert (type_spec == other) == expected_result


@pytest.mark.parametrize("type_spec, other, expected_result", _params(
    ("placement_type", fedjit.PlacementType(), fedjit.PlacementType(), True),
))
def test_placement_type_is_assignable_from(type_spec, other, expected_result):
  assert type_spec.is_assignable_from(other) == expected_result


# ---------------------------------------------------------- FederatedTypeTest

def test_federated_type_interned():
  type_spec_1 = fedjit.FederatedType(np.int32, fedjit.CLIENTS)
  type_spec_2 = fedjit.FederatedType(np.int32, fedjit.CLIENTS)
  assert type_spec_1 is type_spec_2


@pytest.mark.parametrize("placement, expected_all_equal", _params(
    ("clients", fedjit.CLIENTS, False),
    ("server", fedjit.SERVER, True),
))
def test_federated_type_init_infers_all_equal(placement, expected_all_equal):
  type_spec = fedjit.FederatedType(np.int32, placement)
  assert type_spec.all_equal == expected_all_equal


@pytest.mark.parametrize("member", _params(
    ("abstract_type", fedjit.AbstractType("T")),
    ("placement_type", fedjit.PlacementType()),
    ("sequence_type", fedjit.SequenceType([np.int32])),
    ("struct_type", fedjit.StructType([np.int32] * 3)),
    ("struct_with_python_type", fedjit.StructWithPythonType([np.int32] * 3, list)),
    ("tensor_type", fedjit.TensorType(np.int32)),
))
def test_federated_type_init_does_not_raise_value_error(member):
  fedjit.FederatedType(member, fedjit.CLIENTS)


@pytest.mark.parametrize("member", _params(
    ("federated_type", fedjit.FederatedType(np.int32, fedjit.CLIENTS)),
    ("function_type", fedjit.FunctionType(np.int32, np.int32)),
    ("function_type_nested", fedjit.StructType([fedjit.FunctionType(np.int32, np.int32)])),
))
def test_federated_type_init_raises_value_error(member):
  with pytest.raises(ValueError):
    fedjit.FederatedType(member, fedjit.CLIENTS)


@pytest.mark.parametrize("type_spec, expected_str", _params(
    ("clients_and_all_equal_true", fedjit.FederatedType(np.int32, fedjit.CLIENTS, True),
     "int32@CLIENTS"),
    ("clients_and_all_equal_false", fedjit.FederatedType(np.int32, fedjit.CLIENTS, False),
     "{int32}@CLIENTS"),
    ("server_and_all_equal_true", fedjit.FederatedType(np.int32, fedjit.SERVER, True),
     "int32@SERVER"),
    ("server_and_all_equal_false", fedjit.FederatedType(np.int32, fedjit.SERVER, False),
     "{int32}@SERVER"),
))
def test_federated_type_str(type_spec, expected_str):
  assert str(type_spec) == expected_str


@pytest.mark.parametrize("type_spec, expected_repr", _params(
    ("clients_and_all_equal_true", fedjit.FederatedType(np.int32, fedjit.CLIENTS, True),
     ("FederatedType(TensorType(np.int32), PlacementLiteral('clients'),"
      " True)")),
    ("clients_and_all_equal_false", fedjit.FederatedType(np.int32, fedjit.CLIENTS, False),
     ("FederatedType(TensorType(np.int32), PlacementLiteral('clients'),"
      " False)")),
    ("server_and_all_equal_true", fedjit.FederatedType(np.int32, fedjit.SERVER, True),
     ("FederatedType(TensorType(np.int32), PlacementLiteral('server'),"
      " True)")),
    ("server_and_all_equal_false", fedjit.FederatedType(np.int32, fedjit.SERVER, False),
     ("FederatedType(TensorType(np.int32), PlacementLiteral('server'),"
      " False)")),
))
def test_federated_type_repr(type_spec, expected_repr):
  assert repr(type_spec) == expected_repr


_FEDERATED_CASES = (
    ("same_member_and_placement_and_all_equal", fedjit.FederatedType(np.int32, fedjit.CLIENTS),
     fedjit.FederatedType(np.int32, fedjit.CLIENTS), True),
    ("different_member", fedjit.FederatedType(np.int32, fedjit.CLIENTS),
     fedjit.FederatedType(np.float64, fedjit.CLIENTS), False),
    ("different_placement", fedjit.FederatedType(np.int32, fedjit.CLIENTS),
     fedjit.FederatedType(np.int32, fedjit.SERVER), False),
    ("different_all_equals", fedjit.FederatedType(np.int32, fedjit.CLIENTS, True),
     fedjit.FederatedType(np.int32, fedjit.CLIENTS, False), False),
)


@pytest.mark.parametrize("type_spec, other, expected_result", _params(*_FEDERATED_CASES))
def test_federated_type_eq(type_spec, other, expected_result):
  assert (type_spec == other) == expected_result


@pytest.mark.parametrize("type_spec, other, expected_result", _params(*_FEDERATED_CASES))
def test_federated_type_is_assignable_from(type_spec, other, expected_result):
  assert type_spec.is_assignable_from(other) == expected_result


# ----------------------------------------------------------------- ToTypeTest

def test_to_type_tensor_type():
  s = fedjit.TensorType(np.int32)
  t = fedjit.to_type(s)
  assert isinstance(t, fedjit.TensorType)
  assert str(t) == "int32"


def test_to_type_tf_type():
  s = np.int32
  t = fedjit.to_type(s)
  assert isinstance(t, fedjit.TensorType)
  assert str(t) == "int32"


def test_to_type_tf_type_and_shape():
  s = (np.int32, [10])
  t = fedjit.to_type(s)
  assert isinstance(t, fedjit.TensorType)
  assert str(t) == "int32[10]"


def test_to_type_tf_type_and_shape_with_unknown_dimension():
  s = (np.int32, [None])
  t = fedjit.to_type(s)
  assert isinstance(t, fedjit.TensorType)
  assert str(t) == "int32[?]"


def test_to_type_list_of_tf_types():
  s = [np.int32, np.float64]
  t = fedjit.to_type(s)
  assert isinstance(t, fedjit.StructWithPythonType)
  assert str(t) == "<int32,float64>"


def test_to_type_tuple_of_tf_types():
  s = (np.int32, np.float64)
  t = fedjit.to_type(s)
  assert isinstance(t, fedjit.StructWithPythonType)
  assert t.python_container is tuple
  assert str(t) == "<int32,float64>"


def test_to_type_singleton_named_tf_type():
  s = ("a", np.int32)
  t = fedjit.to_type(s)
  assert isinstance(t, fedjit.StructWithPythonType)
  assert t.python_container is tuple
  assert str(t) == "<a=int32>"


def test_to_type_list_of_named_tf_types():
  s = [("a", np.int32), ("b", np.float64)]
  t = fedjit.to_type(s)
  # NOTE: list of pairs should be interpreted as a plain StructType, and
  # not try to convert into a python list afterwards.
  assert not isinstance(t, fedjit.StructWithPythonType)
  assert str(t) == "<a=int32,b=float64>"


def test_to_type_list_of_partially_named_tf_types():
  s = [np.float64, ("a", np.int32)]
  t = fedjit.to_type(s)
  # NOTE: list of pairs should be interpreted as a plain StructType, and
  # not try to convert into a python list afterwards.
  assert not isinstance(t, fedjit.StructWithPythonType)
  assert str(t) == "<float64,a=int32>"


def test_to_type_ordered_dict_of_tf_types():
  s = collections.OrderedDict([("a", np.int32), ("b", np.float64)])
  t = fedjit.to_type(s)
  assert isinstance(t, fedjit.StructWithPythonType)
  assert t.python_container is collections.OrderedDict
  assert str(t) == "<a=int32,b=float64>"


def test_to_type_nested_tuple_of_tf_types():
  s = (np.int32, (np.float32, np.float64))
  t = fedjit.to_type(s)
  assert isinstance(t, fedjit.StructWithPythonType)
  assert t.python_container is tuple
  assert str(t) == "<int32,<float32,float64>>"


def test_to_type_nested_tuple_of_named_tf_types():
  s = (np.int32, (("x", np.float32), np.float64))
  t = fedjit.to_type(s)
  assert isinstance(t, fedjit.StructWithPythonType)
  assert t.python_container is tuple
  assert not isinstance(t[1], fedjit.StructWithPythonType)
  assert str(t) == "<int32,<x=float32,float64>>"


def test_to_type_nested_tuple_of_named_nonscalar_tf_types():
  s = ((np.int32, [1]), (("x", (np.float32, [2])), (np.float64, [3])))
  t = fedjit.to_type(s)
  assert isinstance(t, fedjit.StructWithPythonType)
  assert t.python_container is tuple
  assert not isinstance(t[1], fedjit.StructWithPythonType)
  assert str(t) == "<int32[1],<x=float32[2],float64[3]>>"


def test_to_type_namedtuple_elements_two_tuples():
  elems = [np.int32 for _ in range(10)]
  t = fedjit.to_type(elems)
  assert isinstance(t, fedjit.StructWithPythonType)
  assert t.python_container is list
  for k in t.items():  # spelling: structure.iter_elements(t) -> t.items()
    assert len(k) == 2


def test_to_type_namedtuples_addressable_by_name():
  elems = [("item" + str(k), np.int32) for k in range(5)]
  t = fedjit.to_type(elems)
  # NOTE: list of pairs should be interpreted as a plain StructType, and
  # not try to convert into a python list afterwards.
  assert not isinstance(t, fedjit.StructWithPythonType)
  assert isinstance(t.item0, fedjit.TensorType)
  assert t.item0 == t[0]


def test_to_type_namedtuple_unpackable():
  elems = [("item" + str(k), np.int32) for k in range(2)]
  t = fedjit.to_type(elems)
  a, b = t
  assert isinstance(a, fedjit.TensorType)
  assert isinstance(b, fedjit.TensorType)


def test_to_type_attrs_instance():

  @dataclasses.dataclass  # spelling: @attrs.define -> @dataclasses.dataclass
  class TestFoo:
    a: object
    b: object

  t = fedjit.to_type(TestFoo(a=np.int32, b=(np.float32, [2])))
  assert isinstance(t, fedjit.StructWithPythonType)
  assert t.python_container is TestFoo
  assert str(t) == "<a=int32,b=float32[2]>"


def test_to_type_nested_attrs_class():

  @dataclasses.dataclass  # spelling: @attrs.define -> @dataclasses.dataclass
  class TestFoo:
    a: object
    b: object

  @dataclasses.dataclass  # spelling: @attrs.define -> @dataclasses.dataclass
  class TestFoo2:
    c: object

  t = fedjit.to_type(TestFoo(a=[np.int32, np.float64], b=TestFoo2(c=(np.float32, [2]))))
  assert isinstance(t, fedjit.StructWithPythonType)
  assert t.python_container is TestFoo
  assert isinstance(t.a, fedjit.StructWithPythonType)
  assert t.a.python_container is list
  assert isinstance(t.b, fedjit.StructWithPythonType)
  assert t.b.python_container is TestFoo2
  assert str(t) == "<a=<int32,float64>,b=<c=float32[2]>>"


def test_to_type_with_np_int32():
  t = fedjit.to_type(np.int32)
  assert isinstance(t, fedjit.TensorType)
  assert t.dtype == np.int32
  assert t.shape == ()


def test_to_type_with_np_int32_in_tensor_spec():
  t = fedjit.to_type((np.int32, [5]))
  assert isinstance(t, fedjit.TensorType)
  assert t.dtype == np.int32
  assert t.shape == (5,)


def test_to_type_with_np_int32_in_dict():
  t = fedjit.to_type(collections.OrderedDict([("foo", np.int32)]))
  assert isinstance(t, fedjit.StructType)
  assert isinstance(t.foo, fedjit.TensorType)
  assert t.foo.dtype == np.int32
  assert t.foo.shape == ()


@pytest.mark.parametrize("obj", _params(
    ("none", None),
    ("object", object()),
))
def test_to_type_raises_type_error(obj):
  with pytest.raises(TypeError):
    fedjit.to_type(obj)


# --------------------------------------------------------- RepresentationTest

def test_returns_string_for_abstract_type():
  type_spec = fedjit.AbstractType("T")

  assert type_spec.compact_representation() == "T"
  assert type_spec.formatted_representation() == "T"


def test_returns_string_for_federated_type_clients():
  type_spec = fedjit.FederatedType(np.int32, fedjit.CLIENTS)

  assert type_spec.compact_representation() == "{int32}@CLIENTS"
  assert type_spec.formatted_representation() == "{int32}@CLIENTS"


def test_returns_string_for_federated_type_server():
  type_spec = fedjit.FederatedType(np.int32, fedjit.SERVER)

  assert type_spec.compact_representation() == "int32@SERVER"
  assert type_spec.formatted_representation() == "int32@SERVER"


def test_returns_string_for_function_type():
  type_spec = fedjit.FunctionType(np.int32, np.float32)

  assert type_spec.compact_representation() == "(int32 -> float32)"
  assert type_spec.formatted_representation() == "(int32 -> float32)"


def test_returns_string_for_function_type_with_named_tuple_type_parameter():
  parameter = fedjit.StructType((np.int32, np.float32))
  type_spec = fedjit.FunctionType(parameter, np.float64)

  assert type_spec.compact_representation() == "(<int32,float32> -> float64)"
  assert type_spec.formatted_representation() == (
      "(<\n"
      "  int32,\n"
      "  float32\n"
      "> -> float64)")


def test_returns_string_for_function_type_with_named_tuple_type_result():
  result = fedjit.StructType((np.int32, np.float32))
  type_spec = fedjit.FunctionType(np.float64, result)

  assert type_spec.compact_representation() == "(float64 -> <int32,float32>)"
  assert type_spec.formatted_representation() == (
      "(float64 -> <\n"
      "  int32,\n"
      "  float32\n"
      ">)")


def test_returns_string_for_function_type_with_named_tuple_type_parameter_and_result():
  parameter = fedjit.StructType((np.int32, np.float32))
  result = fedjit.StructType((np.float64, np.str_))
  type_spec = fedjit.FunctionType(parameter, result)

  assert type_spec.compact_representation() == "(<int32,float32> -> <float64,str>)"
  assert type_spec.formatted_representation() == (
      "(<\n"
      "  int32,\n"
      "  float32\n"
      "> -> <\n"
      "  float64,\n"
      "  str\n"
      ">)")


def test_returns_string_for_named_tuple_type_unnamed():
  type_spec = fedjit.StructType((np.int32, np.float32))

  assert type_spec.compact_representation() == "<int32,float32>"
  assert type_spec.formatted_representation() == (
      "<\n"
      "  int32,\n"
      "  float32\n"
      ">")


def test_returns_string_for_named_tuple_type_named():
  type_spec = fedjit.StructType((("a", np.int32), ("b", np.float32)))

  assert type_spec.compact_representation() == "<a=int32,b=float32>"
  assert type_spec.formatted_representation() == (
      "<\n"
      "  a=int32,\n"
      "  b=float32\n"
      ">")


def test_returns_string_for_named_tuple_type_nested():
  type_spec_1 = fedjit.StructType((np.int32, np.float32))
  type_spec_2 = fedjit.StructType((type_spec_1, np.bool))
  type_spec_3 = fedjit.StructType((type_spec_2, np.str_))
  type_spec = type_spec_3

  assert type_spec.compact_representation() == "<<<int32,float32>,bool>,str>"
  assert type_spec.formatted_representation() == (
      "<\n"
      "  <\n"
      "    <\n"
      "      int32,\n"
      "      float32\n"
      "    >,\n"
      "    bool\n"
      "  >,\n"
      "  str\n"
      ">")


def test_returns_string_for_named_tuple_type_with_one_element():
  type_spec = fedjit.StructType((np.int32,))

  assert type_spec.compact_representation() == "<int32>"
  assert type_spec.formatted_representation() == (
      "<\n"
      "  int32\n"
      ">")


def test_returns_string_for_named_tuple_type_with_no_element():
  type_spec = fedjit.StructType([])

  assert type_spec.compact_representation() == "<>"
  assert type_spec.formatted_representation() == "<>"


def test_returns_string_for_placement_type():
  type_spec = fedjit.PlacementType()

  assert type_spec.compact_representation() == "placement"
  assert type_spec.formatted_representation() == "placement"


def test_returns_string_for_sequence_type_int():
  type_spec = fedjit.SequenceType(np.int32)

  assert type_spec.compact_representation() == "int32*"
  assert type_spec.formatted_representation() == "int32*"


def test_returns_string_for_sequence_type_float():
  type_spec = fedjit.SequenceType(np.float32)

  assert type_spec.compact_representation() == "float32*"
  assert type_spec.formatted_representation() == "float32*"


def test_returns_string_for_sequence_type_named_tuple_type():
  element = fedjit.StructType((np.int32, np.float32))
  type_spec = fedjit.SequenceType(element)

  assert type_spec.compact_representation() == "<int32,float32>*"
  assert type_spec.formatted_representation() == (
      "<\n"
      "  int32,\n"
      "  float32\n"
      ">*")


def test_returns_string_for_tensor_type_int():
  type_spec = fedjit.TensorType(np.int32)

  assert type_spec.compact_representation() == "int32"
  assert type_spec.formatted_representation() == "int32"


def test_returns_string_for_tensor_type_float():
  type_spec = fedjit.TensorType(np.float32)

  assert type_spec.compact_representation() == "float32"
  assert type_spec.formatted_representation() == "float32"

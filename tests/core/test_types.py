"""Types print exactly as TFF prints them, compare by value and convert."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fedjit
from fedjit import (CLIENTS, SERVER, FederatedType, FunctionType, SequenceType,
                    StructType, TensorType)


@pytest.mark.parametrize("t, expected", [
    (TensorType(np.float32), "float32"),
    (TensorType(np.int32, [None, 1]), "int32[?,1]"),
    (TensorType(jnp.float32, (784, 10)), "float32[784,10]"),
    (TensorType("bool", [3]), "bool[3]"),
    (StructType([TensorType(np.float32, [784, 10]), TensorType(np.float32, [10])]),
     "<float32[784,10],float32[10]>"),
    (StructType([("a", np.int32), ("b", np.float32)]), "<a=int32,b=float32>"),
    (SequenceType((TensorType(np.float32, [None, 784]), TensorType(np.int32, [None, 1]))),
     "<float32[?,784],int32[?,1]>*"),
    (FederatedType(np.float32, CLIENTS), "{float32}@CLIENTS"),
    (FederatedType(np.float32, SERVER), "float32@SERVER"),
    (FederatedType(np.float32, CLIENTS, all_equal=True), "float32@CLIENTS"),
    (FederatedType(np.float32, SERVER, all_equal=False), "{float32}@SERVER"),
    (FunctionType(FederatedType(np.float32, CLIENTS), FederatedType(np.float32, SERVER)),
     "({float32}@CLIENTS -> float32@SERVER)"),
    (FunctionType(None, FederatedType(
        StructType([TensorType(np.float32, [784, 10]), TensorType(np.float32, [10])]),
        SERVER)), "( -> <float32[784,10],float32[10]>@SERVER)"),
    (FunctionType(np.float32, np.float32), "(float32 -> float32)"),
])
def test_printing(t, expected):
  assert str(t) == expected


def test_named_parameter_function_type_prints_like_tff():
  weights = StructType([TensorType(np.float32, [784, 10]), TensorType(np.float32, [10])])
  data = SequenceType((TensorType(np.float32, [None, 784]), TensorType(np.int32, [None, 1])))
  t = FunctionType(
      StructType([("server_weights", FederatedType(weights, SERVER)),
                  ("federated_dataset", FederatedType(data, CLIENTS))]),
      FederatedType(weights, SERVER))
  assert str(t) == (
      "(<server_weights=<float32[784,10],float32[10]>@SERVER,"
      "federated_dataset={<float32[?,784],int32[?,1]>*}@CLIENTS> -> "
      "<float32[784,10],float32[10]>@SERVER)")


def test_equality_and_hashing_by_value():
  a = FederatedType(TensorType(np.float32, [None, 2]), CLIENTS)
  b = FederatedType(TensorType(jnp.float32, (None, 2)), CLIENTS)
  assert a == b and hash(a) == hash(b)
  assert a != FederatedType(TensorType(np.float32, [None, 2]), SERVER)
  assert a != FederatedType(TensorType(np.float32, [None, 2]), CLIENTS, all_equal=True)
  assert TensorType(np.float32, [2]) != TensorType(np.float32, [None])
  assert StructType([("a", np.int32)]) != StructType([("b", np.int32)])
  assert len({a, b, TensorType(np.int32)}) == 2
  # As in TFF, the Python container takes part in equality (StructWithPythonType)
  # but not in assignability.
  as_list = StructType([np.int32], container=list)
  as_tuple = StructType([np.int32], container=tuple)
  assert as_list != as_tuple and as_list != StructType([np.int32])
  assert as_list.is_assignable_from(as_tuple) and as_tuple.is_assignable_from(as_list)
  assert isinstance(as_list, fedjit.StructWithPythonType) and as_list.python_container is list


def test_from_numpy_dtypes_shape_dtype_structs_and_pytrees():
  assert fedjit.to_type(np.float32) == TensorType(np.float32)
  assert fedjit.to_type(jnp.int32) == TensorType(np.int32)
  assert fedjit.to_type(np.dtype("float32")) == TensorType(np.float32)
  assert fedjit.to_type((np.float32, [None, 784])) == TensorType(np.float32, [None, 784])
  assert fedjit.to_type(jax.ShapeDtypeStruct((784, 10), jnp.float32)) == TensorType(
      np.float32, [784, 10])
  tree = {"w": jax.ShapeDtypeStruct((3, 2), np.float32), "b": (np.int32, [2])}
  t = fedjit.to_type(tree)
  assert str(t) == "<w=float32[3,2],b=int32[2]>"
  assert t.container is dict
  Point = collections.namedtuple("Point", ["x", "y"])
  assert str(fedjit.to_type(Point(np.float32, np.int32))) == "<x=float32,y=int32>"
  assert str(fedjit.infer_type([np.zeros((2, 3), np.float32), 1.5, 3])) == (
      "<float32[2,3],float32,int32>")


def test_struct_access():
  t = StructType([("a", np.int32), ("b", TensorType(np.float32, [2]))])
  assert t["b"] == TensorType(np.float32, [2])
  assert t[0] == TensorType(np.int32)
  assert t.names() == ("a", "b")
  assert len(t) == 2
  with pytest.raises(KeyError, match="no field 'c'"):
    t.index_of("c")


def test_assignability():
  unknown = TensorType(np.float32, [None, 784])
  assert unknown.is_assignable_from(TensorType(np.float32, [20, 784]))
  assert not TensorType(np.float32, [20, 784]).is_assignable_from(unknown)
  assert not unknown.is_assignable_from(TensorType(np.int32, [20, 784]))
  clients = FederatedType(np.float32, CLIENTS)
  assert clients.is_assignable_from(FederatedType(np.float32, CLIENTS, all_equal=True))
  assert not FederatedType(np.float32, CLIENTS, all_equal=True).is_assignable_from(clients)
  assert not clients.is_assignable_from(FederatedType(np.float32, SERVER))


@pytest.mark.parametrize("bad, message", [
    (object(), "Cannot interpret"),
    ("not-a-dtype", "Cannot interpret"),
])
def test_bad_type_specs_fail_clearly(bad, message):
  with pytest.raises(TypeError, match=message):
    fedjit.to_type(bad)


def test_federated_type_checks_its_arguments():
  with pytest.raises(TypeError, match="expects a placement"):
    FederatedType(np.float32, "clients")
  with pytest.raises(TypeError, match="cannot hold another federated type"):
    FederatedType(FederatedType(np.float32, SERVER), CLIENTS)
  with pytest.raises(TypeError, match="must be tensors or structures"):
    SequenceType(FederatedType(np.float32, SERVER))


def test_an_int_shape_means_a_vector():
  # As in TFF: TensorType(np.float32, 3) is float32[3].
  assert TensorType(np.float32, 3) == TensorType(np.float32, [3])
  assert str(TensorType(np.int32, np.int64(5))) == "int32[5]"
  with pytest.raises(TypeError, match="use \\(\\) for a scalar"):
    TensorType(np.float32, None)


# ------------------------------------------------ TFF compatibility (issue 13)

@pytest.mark.parametrize("spec, expected", [
    ([("a", np.int32), ("b", np.float32)], "<a=int32,b=float32>"),
    ([("x", np.int32), ("item0", (np.float32, [2]))], "<x=int32,item0=float32[2]>"),
    (("a", np.int32), "<a=int32>"),
    ([np.float32, ("a", np.int32)], "<float32,a=int32>"),
    ((np.float32, [None, 784]), "float32[?,784]"),  # (dtype, shape) stays a tensor
    (("float32", [2]), "float32[2]"),  # dtype names are dtypes, not field names
    ([("float32", [2]), ("int32", [3])], "<float32[2],int32[3]>"),
])
def test_named_struct_specs(spec, expected):
  assert str(fedjit.to_type(spec)) == expected


def test_named_struct_spec_declares_computations():
  @fedjit.jax_computation([("x", np.float32), ("y", np.float32)])
  def multiply(x, y):
    return x * y

  assert str(multiply.type_signature) == "(<x=float32,y=float32> -> float32)"
  assert float(multiply(2.0, 3.0)) == 6.0

  @fedjit.federated_computation(fedjit.FederatedType([("x", np.float32), ("item0", np.float32)],
                                                     CLIENTS))
  def mean(v):
    return fedjit.federated_mean(v)

  assert str(mean.type_signature) == (
      "({<x=float32,item0=float32>}@CLIENTS -> <x=float32,item0=float32>@SERVER)")
  out = mean([{"x": 1.0, "item0": 2.0}, {"x": 3.0, "item0": 6.0}])
  assert float(out["x"]) == 2.0 and float(out["item0"]) == 4.0


def test_namedtuple_and_dataclass_classes_as_specs():
  import dataclasses
  from typing import NamedTuple

  class Point(NamedTuple):
    x: np.float32
    n: int  # Python int means int32 (JAX's default), bool bool, float float32

  t = fedjit.to_type(Point)
  assert repr(t) == ("StructType([('x', TensorType(np.float32)), "
                     "('n', TensorType(np.int32))]) as Point")

  @fedjit.jax_computation(Point)
  def step(p):
    return Point(p.x * 2, p.n + 1)

  assert step(Point(1.5, 2)) == Point(3.0, 3)

  @dataclasses.dataclass
  class Pair:
    a: object
    b: object

  pair_type = fedjit.to_type(Pair(a=np.int32, b=(np.float32, [2])))
  assert pair_type.python_container is Pair and str(pair_type) == "<a=int32,b=float32[2]>"
  assert str(fedjit.infer_type(Pair(a=1, b=np.zeros(2, np.float32)))) == "<a=int32,b=float32[2]>"

  class Untyped(NamedTuple):
    x: "NoSuchName"  # noqa: F821

  with pytest.raises(TypeError, match="Cannot interpret"):
    fedjit.to_type(Untyped)


def test_struct_fields_by_attribute_and_reserved_names():
  t = fedjit.to_type([("a", np.int32), ("b", np.float32)])
  assert t.a == TensorType(np.int32) and t.b is t[1]
  with pytest.raises(AttributeError, match="no field 'c'; its fields are \\['a', 'b'\\]"):
    t.c
  with pytest.raises(fedjit.InvalidTypeError, match="'items'.*reserved"):
    StructType([("items", np.int32)])
  with pytest.raises(ValueError, match="unique"):
    StructType([("a", np.int32), ("a", np.int32)])


def test_invalid_types_are_type_and_value_errors():
  with pytest.raises(fedjit.InvalidTypeError, match="cannot hold a function type"):
    FederatedType(StructType([FunctionType(np.int32, np.int32)]), CLIENTS)
  with pytest.raises(ValueError, match="holds the sequence type int32\\*"):
    SequenceType(StructType([SequenceType(np.int32)]))
  assert issubclass(fedjit.InvalidTypeError, TypeError)
  assert issubclass(fedjit.FederatedValueError, fedjit.FederatedTypeError)
  assert issubclass(fedjit.FederatedValueError, ValueError)


def test_sequences_turn_list_containers_into_tuples():
  t = SequenceType(fedjit.to_type([np.float32, {"y": [np.int32]}]))
  assert t.element.python_container is tuple
  assert t.element[1].python_container is dict
  assert t.element[1]["y"].python_container is tuple


def test_check_assignable_from_and_equivalence():
  named = StructType([("a", np.int32)])
  unnamed = StructType([np.int32])
  named.check_assignable_from(unnamed)
  with pytest.raises(fedjit.TypeNotAssignableError, match="Expected <a=int32> to be "
                     "assignable to <int32>") as e:
    unnamed.check_assignable_from(named)
  assert e.value.source_type is named and e.value.target_type is unnamed
  assert not named.is_equivalent_to(unnamed)


def test_abstract_and_placement_types():
  T = fedjit.AbstractType("T")
  assert str(FunctionType(FederatedType(T, CLIENTS), FederatedType(T, SERVER))) == (
      "({T}@CLIENTS -> T@SERVER)")
  with pytest.raises(TypeError, match="Abstract types are not comparable"):
    T.is_assignable_from(TensorType(np.int32))
  assert fedjit.PlacementType().is_assignable_from(fedjit.PlacementType())
  with pytest.raises(fedjit.FederatedTypeError, match="holds the abstract type T"):
    fedjit.federated_computation(FederatedType(T, CLIENTS))(lambda x: x)


def test_placement_literals():
  assert fedjit.PlacementLiteral is fedjit.Placement
  assert (fedjit.SERVER.name, fedjit.SERVER.uri, fedjit.SERVER.default_all_equal) == (
      "SERVER", "server", True)
  assert repr(fedjit.CLIENTS) == "PlacementLiteral('clients')"
  with pytest.raises(ValueError, match="no placement literal with uri 'devices'"):
    fedjit.uri_to_placement_literal("devices")


def test_pickled_types_and_placements_are_the_interned_objects():
  import copy
  import pickle
  t = FederatedType(fedjit.to_type({"w": (np.float32, [2]), "n": [np.int32]}), CLIENTS)
  assert pickle.loads(pickle.dumps(t)) is t
  assert copy.deepcopy(t) is t
  assert pickle.loads(pickle.dumps(CLIENTS)) is CLIENTS


def test_formatted_representation():
  t = FederatedType(StructType([("w", TensorType(np.float32, [2])), ("n", np.int32)]), SERVER)
  assert t.formatted_representation() == "<\n  w=float32[2],\n  n=int32\n>@SERVER"
  assert str(t) == "<w=float32[2],n=int32>@SERVER"


def test_values_of_container_less_structs_are_structs():
  """A struct type without a Python container has `fedjit.structure.Struct`
  values, named or not (TFF); those with a container keep it."""
  Struct = fedjit.structure.Struct

  @fedjit.jax_computation([('a', np.int32), ('b', np.float32)])
  def f(s):
    assert isinstance(s, Struct)
    return s.a + s[0] + s['a'], s.b

  a, b = f(Struct([('a', 1), ('b', 2.0)]))
  assert int(a) == 3 and float(b) == 2.0
  a, _ = f({'a': 2, 'b': 0.5})  # dicts with the same fields are accepted
  assert int(a) == 6

  @fedjit.jax_computation(StructType([np.int32, np.int32]))
  def g(x):
    assert isinstance(x, Struct)
    return x[0] * 10 + x[1]

  assert int(g((1, 2))) == 12

  @fedjit.jax_computation(np.int32)
  def h(x):
    return Struct([('x', x), (None, x + 1)])

  assert str(h.type_signature) == "(int32 -> <x=int32,int32>)"
  out = h(3)
  assert isinstance(out, Struct) and int(out.x) == 3 and int(out[1]) == 4

  @fedjit.jax_computation(collections.OrderedDict(a=np.int32))
  def k(x):
    return x

  assert isinstance(k({'a': 1}), collections.OrderedDict)


def test_infer_and_to_type_of_structs():
  Struct = fedjit.structure.Struct
  t = fedjit.infer_type(Struct([('a', np.float32(1)), (None, 2)]))
  assert str(t) == "<a=float32,int32>" and t.container is None
  assert fedjit.to_type(Struct([('a', np.int32)])) == StructType([('a', np.int32)])

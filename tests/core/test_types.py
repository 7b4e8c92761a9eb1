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

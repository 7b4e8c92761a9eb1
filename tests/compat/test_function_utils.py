"""Port of TFF's function_utils tests (packing call arguments, unpacking parameters).

Source: google-parfait/federated-language,
federated_language/computation/function_utils_test.py.

`is_argument_struct`, `unpack_args_from_struct`, `pack_args_into_struct` and
`pack_args` are fedjit's own helpers of the same names and meaning (in
`fedjit.core._function_utils`, as they are private in TFF too). The
`wrap_as_zero_or_one_arg_callable` cases become what a user writes:
`fedjit.jax_computation(fn, parameter_type)` called with the argument. The
`pack_args` cases are also run as calls of a jax computation, on the
"reference" and "vectorized" backends.

Spelling: `structure.Struct` -> `fedjit.core._structure.Struct`;
`computation_types.X` -> `fedjit.X`; `function_utils._is_argument_struct` ->
`is_argument_struct`; `wrap_as_zero_or_one_arg_callable(fn, T, unpack)(arg)`
-> `fedjit.jax_computation(fn, T)(arg)` (fedjit decides unpacking from the
function's parameters, so `unpack` has no counterpart).

Left out: the six `_is_signature_compatible_with_types` cases (a private TFF
helper with no fedjit counterpart: fedjit refuses parameter defaults when
types are declared, see test_computation_wrapper's optional-arguments case);
the `wrap_as_zero_or_one_arg_callable` cases 'str_tuple' and
'str_tuple_with_named_type' (`lambda *args: str(args)`: a computation over
`*args`, which TFF's own computation wrapper refuses too, returning a Python
string, which a JAX computation cannot).

Deviation (xfail strict): 'add_const_with_type' (`lambda x=1: x + 10` with a
declared int32): fedjit refuses a default on a parameter whose type is
declared (as TFF's computation wrapper does), since it would never apply.
"""

from __future__ import annotations

import collections

import jax
import numpy as np
import pytest

import fedjit
from fedjit.core._function_utils import (is_argument_struct, pack_args,
                                         pack_args_into_struct, unpack_args_from_struct)
from fedjit.core._structure import Struct


@pytest.mark.parametrize("arg, expected_result", [
    (np.int32, False),
    ([np.int32, np.int32], True),
    ([np.int32, ("b", np.int32)], True),
    ([("a", np.int32), ("b", np.int32)], True),
    ([("a", np.int32), np.int32], False),
    (Struct([(None, 1), ("a", 2)]), True),
    (Struct([("a", 1), (None, 2)]), False),
], ids=["int", "tuple_unnamed", "tuple_partially_named", "tuple_named",
        "tuple_partially_named_kwargs_first", "struct", "struct_kwargs_first"])
def test_is_argument_struct(arg, expected_result):
  assert is_argument_struct(arg) == expected_result


@pytest.mark.parametrize("tuple_with_args, expected_args, expected_kwargs", [
    (Struct([(None, 1)]), [1], {}),
    (Struct([(None, 1), ("a", 2)]), [1], {"a": 2}),
], ids=["tuple_unnamed", "tuple_partially_named"])
def test_unpack_args_from_structure(tuple_with_args, expected_args, expected_kwargs):
  assert unpack_args_from_struct(tuple_with_args) == (expected_args, expected_kwargs)


@pytest.mark.parametrize("tuple_with_args, expected_args, expected_kwargs", [
    ([np.int32], [fedjit.TensorType(np.int32)], {}),
    ([("a", np.int32)], [], {"a": fedjit.TensorType(np.int32)}),
    ([np.int32, np.bool_], [fedjit.TensorType(np.int32), fedjit.TensorType(np.bool_)], {}),
    ([np.int32, ("b", np.bool_)], [fedjit.TensorType(np.int32)],
     {"b": fedjit.TensorType(np.bool_)}),
    ([("a", np.int32), ("b", np.bool_)], [],
     {"a": fedjit.TensorType(np.int32), "b": fedjit.TensorType(np.bool_)}),
], ids=["tuple_unnamed_1", "tuple_named_1", "tuple_unnamed_2", "tuple_partially_named",
        "tuple_named_2"])
def test_unpack_args_from_struct_type(tuple_with_args, expected_args, expected_kwargs):
  args, kwargs = unpack_args_from_struct(tuple_with_args)
  assert len(args) == len(expected_args)
  for idx, arg in enumerate(args):
    assert arg.is_equivalent_to(expected_args[idx])
  assert set(kwargs.keys()) == set(expected_kwargs.keys())
  for k, v in kwargs.items():
    assert v.is_equivalent_to(expected_kwargs[k])


def test_pack_args_into_struct_without_type_spec():
  assert pack_args_into_struct([1], {"a": 10}) == Struct([(None, 1), ("a", 10)])
  assert pack_args_into_struct([1, 2], {"a": 10, "b": 20}) in [
      Struct([(None, 1), (None, 2), ("a", 10), ("b", 20)]),
      Struct([(None, 1), (None, 2), ("b", 20), ("a", 10)]),
  ]
  assert pack_args_into_struct([], {"a": 10, "b": 20}) in [
      Struct([("a", 10), ("b", 20)]),
      Struct([("b", 20), ("a", 10)]),
  ]
  assert pack_args_into_struct([1], {}) == Struct([(None, 1)])


@pytest.mark.parametrize("args, kwargs, type_spec, elements", [
    ([1], {}, [np.int32], [(None, 1)]),
    ([1, True], {}, [np.int32, np.bool_], [(None, 1), (None, True)]),
    ([1, True], {}, [("x", np.int32), ("y", np.bool_)], [("x", 1), ("y", True)]),
    ([1], {"y": True}, [("x", np.int32), ("y", np.bool_)], [("x", 1), ("y", True)]),
    ([], {"x": 1, "y": True}, [("x", np.int32), ("y", np.bool_)], [("x", 1), ("y", True)]),
    ([], collections.OrderedDict([("y", True), ("x", 1)]),
     [("x", np.int32), ("y", np.bool_)], [("x", 1), ("y", True)]),
], ids=["int", "tuple_unnamed_with_args", "tuple_named_with_args",
        "tuple_named_with_args_and_kwargs", "tuple_with_kwargs", "tuple_with_args_odict"])
def test_pack_args_into_struct_with_type_spec_expect_success(args, kwargs, type_spec,
                                                             elements):
  assert pack_args_into_struct(args, kwargs, type_spec) == Struct(elements)


def test_pack_args_into_struct_named_to_unnamed_fails():
  with pytest.raises(TypeError):
    pack_args_into_struct([], {"x": 1, "y": True}, [np.int32, np.bool_])


PACK_ARGS_CASES = [
    (None, [], {}, "None"),
    (np.int32, [1], {}, "1"),
    ([np.int32, np.bool_], [1, True], {}, "<1,True>"),
    ([("x", np.int32), ("y", np.bool_)], [1, True], {}, "<x=1,y=True>"),
    ([("x", np.int32), ("y", np.bool_)], [1], {"y": True}, "<x=1,y=True>"),
    ([np.int32, np.bool_], [Struct([(None, 1), (None, True)])], {}, "<1,True>"),
]
PACK_ARGS_IDS = ["none", "int", "tuple_unnamed", "tuple_named_with_args",
                 "tuple_named_with_kwargs", "tuple_with_args_struct"]


@pytest.mark.parametrize("parameter_type, args, kwargs, expected_value_string",
                         PACK_ARGS_CASES, ids=PACK_ARGS_IDS)
def test_pack_args(parameter_type, args, kwargs, expected_value_string):
  assert str(pack_args(parameter_type, args, kwargs)) == expected_value_string


# fedjit-specific: the same cases as calls of a computation that returns its
# argument. Its result comes back in its type's Python container, as in TFF:
# a list for the type [np.int32, np.bool_].
CALL_RESULTS = ["1", "[1, True]", "<x=1,y=True>", "<x=1,y=True>", "[1, True]"]


@pytest.mark.parametrize("case, expected", list(zip(PACK_ARGS_CASES[1:], CALL_RESULTS)),
                         ids=PACK_ARGS_IDS[1:])
def test_pack_args_as_calls(case, expected, backend):
  parameter_type, args, kwargs, _ = case
  identity = fedjit.jax_computation(lambda arg: arg, parameter_type)
  result = identity(*args, **kwargs)
  assert str(jax.tree_util.tree_map(lambda v: v.item(), result)) == expected


@pytest.mark.parametrize("fn, parameter_type, arg, expected_result", [
    (lambda: 10, None, None, 10),
    (lambda x=1: x + 10, None, None, 11),
    pytest.param(lambda x=1: x + 10, fedjit.TensorType(np.int32), 20, 30,
                 marks=pytest.mark.xfail(strict=True, raises=TypeError, reason=(
                     "deviation: a default on a parameter of declared type is "
                     "refused (as TFF's computation wrapper does)"))),
    (lambda x, y: x + y, fedjit.StructType([np.int32, np.int32]),
     Struct([("x", 5), ("y", 6)]), 11),
    # spelling: lambda x: str(x) -> lambda x: x, then str([int(v) for v in result])
    (lambda x: x, fedjit.StructWithPythonType([np.int32], list), Struct([(None, 10)]),
     "[10]"),
], ids=["const", "add_const", "add_const_with_type", "add", "str_ing"])
def test_wrap_as_zero_or_one_arg_callable(fn, parameter_type, arg, expected_result):
  wrapped_fn = (fedjit.jax_computation(fn, parameter_type) if parameter_type
                else fedjit.jax_computation(fn))
  actual_result = wrapped_fn(arg) if parameter_type else wrapped_fn()
  if isinstance(expected_result, str):
    assert isinstance(actual_result, list)
    actual_result = str([int(v) for v in actual_result])
  assert actual_result == expected_result

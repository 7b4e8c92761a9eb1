"""Port of TFF's intrinsics tests (the type signatures and type errors).

Source: google-parfait/federated-language,
federated_language/federated_context/intrinsics_test.py.

TFF builds "fake" values and functions (`building_blocks.Reference`s of a
type) inside a `FederatedComputationContext`. fedjit spells a fake value as
a parameter of a `fedjit.federated_computation` declared with that type, and
a fake function as a parameter of a `fedjit.FunctionType` (TFF allows
function-typed parameters too); `_result_type(intrinsic, *types)` traces
the intrinsic on such parameters and gives the type of its result.

Spelling: `federated_language.X` / `intrinsics.X` / `computation_types.X` /
`placements.X` -> `fedjit.X`; `_create_fake_value(T)` -> a parameter of type
T; `_create_fake_fn(P, R)` -> a parameter of type `fedjit.FunctionType(P, R)`;
`context.ContextError` (no federated context) -> RuntimeError, which
it subclasses in TFF too; `assertRaises` -> `pytest.raises`.

Left out: none of the cases. The expected types are TFF's.
"""

from __future__ import annotations

import numpy as np
import pytest

import fedjit
from fedjit import CLIENTS, SERVER, FederatedType, FunctionType, SequenceType, TensorType

_INT = TensorType(np.int32)
_INT_CLIENTS = FederatedType(_INT, CLIENTS)
_INT_SERVER = FederatedType(_INT, SERVER)
_FLOAT = TensorType(np.float32)
_FLOAT_CLIENTS = FederatedType(_FLOAT, CLIENTS)
_FLOAT_SERVER = FederatedType(_FLOAT, SERVER)
_STR = TensorType(np.str_)
_STR_CLIENTS = FederatedType(_STR, CLIENTS)
_ARRAY_INT = TensorType(np.int32, shape=[3])
_ARRAY_INT_CLIENTS = FederatedType(_ARRAY_INT, CLIENTS)
_ARRAY_INT_SERVER = FederatedType(_ARRAY_INT, SERVER)
_SEQUENCE_INT = SequenceType(np.int32)
_SEQUENCE_INT_CLIENTS = FederatedType(_SEQUENCE_INT, CLIENTS)
_SEQUENCE_INT_SERVER = FederatedType(_SEQUENCE_INT, SERVER)
_SEQUENCE_FLOAT = SequenceType(np.float32)
_SEQUENCE_FLOAT_CLIENTS = FederatedType(_SEQUENCE_FLOAT, CLIENTS)
_SEQUENCE_FLOAT_SERVER = FederatedType(_SEQUENCE_FLOAT, SERVER)
_STRUCT_INT = fedjit.StructWithPythonType([np.int32, np.int32, np.int32], list)
_STRUCT_INT_CLIENTS = FederatedType(_STRUCT_INT, CLIENTS)
_STRUCT_INT_SERVER = FederatedType(_STRUCT_INT, SERVER)
_STRUCT_FLOAT = fedjit.StructWithPythonType([np.float32, np.float32, np.float32], list)
_STRUCT_FLOAT_CLIENTS = FederatedType(_STRUCT_FLOAT, CLIENTS)


def _fake_fn(parameter_type, result_type) -> FunctionType:
  # spelling: _create_fake_fn(P, R) -> a parameter of type FunctionType(P, R)
  return FunctionType(parameter_type, result_type)


_PARAMS = {
    1: lambda body: (lambda a: body(a)),
    2: lambda body: (lambda a, b: body(a, b)),
    3: lambda body: (lambda a, b, c: body(a, b, c)),
    4: lambda body: (lambda a, b, c, d: body(a, b, c, d)),
    5: lambda body: (lambda a, b, c, d, e: body(a, b, c, d, e)),
}


def _result_type(body, *types):
  """The type of `body(*values)`, values being parameters of `types`."""
  comp = fedjit.federated_computation(*types)(_PARAMS[len(types)](body))
  return comp.type_signature.result


# ------------------------------------------------------------ federated_broadcast


@pytest.mark.parametrize("value", [_INT_SERVER, _SEQUENCE_INT_SERVER, _STRUCT_INT_SERVER],
                         ids=["int_server", "sequence_server", "struct_server"])
def test_federated_broadcast_returns_result(value):
  result = _result_type(fedjit.federated_broadcast, value)
  assert result == FederatedType(value.member, CLIENTS, all_equal=True)


@pytest.mark.parametrize("value", [_INT, _INT_CLIENTS], ids=["int_unplaced", "int_clients"])
def test_federated_broadcast_raises_type_error(value):
  with pytest.raises(TypeError):
    _result_type(fedjit.federated_broadcast, value)


def test_federated_broadcast_raises_context_error_with_no_federated_context():
  with pytest.raises(RuntimeError):  # spelling: context.ContextError -> RuntimeError
    fedjit.federated_broadcast(np.int32(1))


# ----------------------------------------------------------------- federated_eval


@pytest.mark.parametrize("fn,placement", [
    (_fake_fn(None, _INT), CLIENTS),
    (_fake_fn(None, _INT), SERVER),
    (_fake_fn(None, _SEQUENCE_INT), CLIENTS),
    (_fake_fn(None, _STRUCT_INT), CLIENTS),
], ids=["int_and_clients", "int_and_server", "sequence_and_clieints", "struct_and_clients"])
def test_federated_eval_returns_result(fn, placement):
  result = _result_type(lambda f: fedjit.federated_eval(f, placement), fn)
  assert result == FederatedType(fn.result, placement)


def test_federated_eval_raises_context_error_with_no_federated_context():
  with pytest.raises(RuntimeError):  # spelling: context.ContextError -> RuntimeError
    fedjit.federated_eval(lambda: np.int32(1), CLIENTS)


# ------------------------------------------------------------------ federated_map


@pytest.mark.parametrize("fn,args,expected", [
    (_fake_fn(_INT, _FLOAT), [_INT_CLIENTS], _FLOAT_CLIENTS),
    (_fake_fn(_INT, _FLOAT), [_INT_SERVER], _FLOAT_SERVER),
    (_fake_fn(_SEQUENCE_INT, _FLOAT), [_SEQUENCE_INT_CLIENTS], _FLOAT_CLIENTS),
    (_fake_fn(_STRUCT_INT, _FLOAT), [_STRUCT_INT_CLIENTS], _FLOAT_CLIENTS),
    (_fake_fn(_STRUCT_INT, _FLOAT), [_INT_CLIENTS] * 3, _FLOAT_CLIENTS),
], ids=["int_clients", "int_server", "sequence_clients", "struct_clients",
        "struct_injected_zip"])
def test_federated_map_returns_result(fn, args, expected):
  if len(args) == 1:
    body = lambda f, a: fedjit.federated_map(f, a)
  else:
    body = lambda f, *a: fedjit.federated_map(f, list(a))
  assert _result_type(body, fn, *args) == expected


@pytest.mark.parametrize("fn,args", [
    (_fake_fn(_INT, _FLOAT), [_INT]),
    (_fake_fn(_STRUCT_INT, _FLOAT), [_INT_CLIENTS, _FLOAT_SERVER]),
], ids=["int_unplaced", "struct_different_placements"])
def test_federated_map_raises_type_error(fn, args):
  if len(args) == 1:
    body = lambda f, a: fedjit.federated_map(f, a)
  else:
    body = lambda f, *a: fedjit.federated_map(f, list(a))
  with pytest.raises(TypeError):
    _result_type(body, fn, *args)


def test_federated_map_raises_context_error_with_no_federated_context():
  with pytest.raises(RuntimeError):  # spelling: context.ContextError -> RuntimeError
    fedjit.federated_map(lambda x: x, np.int32(1))


# ---------------------------------------------- federated_secure_sum(_bitwidth)

_SECURE_SUMS = {
    "federated_secure_sum": fedjit.federated_secure_sum,
    "federated_secure_sum_bitwidth": fedjit.federated_secure_sum_bitwidth,
}
_SECURE_RETURNS = [
    (_INT_CLIENTS, _INT),
    (_STRUCT_INT_CLIENTS, _INT),
    (_STRUCT_INT_CLIENTS, _STRUCT_INT),
]
_SECURE_RETURNS_IDS = ["value_int_clients_and_bound_int",
                       "value_struct_int_clients_and_bound_int",
                       "value_struct_int_clients_and_bound_struct"]
_SECURE_RAISES = [
    (_INT, _INT),
    (_FLOAT_CLIENTS, _INT),
    (_INT_SERVER, _INT),
    (_INT_CLIENTS, _INT_CLIENTS),
    (_INT_CLIENTS, _INT_SERVER),
    (FederatedType([np.int32] * 2, CLIENTS), fedjit.StructType([np.int32] * 3)),
]
_SECURE_RAISES_IDS = ["value_int_unplaced", "value_float_clients", "value_int_server",
                      "bound_int_clients", "bound_int_server", "mismatched_structures"]


@pytest.mark.parametrize("intrinsic", list(_SECURE_SUMS))
@pytest.mark.parametrize("value,bound", _SECURE_RETURNS, ids=_SECURE_RETURNS_IDS)
def test_secure_sum_returns_result(intrinsic, value, bound):
  result = _result_type(_SECURE_SUMS[intrinsic], value, bound)
  assert result == FederatedType(value.member, SERVER)


@pytest.mark.parametrize("intrinsic", list(_SECURE_SUMS))
@pytest.mark.parametrize("value,bound", _SECURE_RAISES, ids=_SECURE_RAISES_IDS)
def test_secure_sum_raises_type_error(intrinsic, value, bound):
  with pytest.raises(TypeError):
    _result_type(_SECURE_SUMS[intrinsic], value, bound)


@pytest.mark.parametrize("intrinsic", list(_SECURE_SUMS))
def test_secure_sum_raises_context_error_with_no_federated_context(intrinsic):
  with pytest.raises(RuntimeError):  # spelling: context.ContextError -> RuntimeError
    _SECURE_SUMS[intrinsic](np.int32(1), np.int32(1))


# --------------------------------------------------------------- federated_select

_SELECT_FN = _fake_fn([_STRUCT_INT, _INT], _FLOAT)


def _select(keys, max_key, server, fn):
  return fedjit.federated_select(keys, max_key, server, fn)


def _select_zipped(keys, max_key, s0, s1, s2, fn):
  return fedjit.federated_select(keys, max_key, [s0, s1, s2], fn)


def test_federated_select_returns_result_struct_int():
  result = _result_type(_select, _ARRAY_INT_CLIENTS, _INT_SERVER, _STRUCT_INT_SERVER,
                        _SELECT_FN)
  assert result == _SEQUENCE_FLOAT_CLIENTS


def test_federated_select_returns_result_struct_injected_zip():
  comp = fedjit.federated_computation(
      _ARRAY_INT_CLIENTS, _INT_SERVER, _INT_SERVER, _INT_SERVER, _INT_SERVER,
      _SELECT_FN)(lambda keys, max_key, s0, s1, s2, fn: _select_zipped(
          keys, max_key, s0, s1, s2, fn))
  assert comp.type_signature.result == _SEQUENCE_FLOAT_CLIENTS


@pytest.mark.parametrize("keys,max_key,server,fn", [
    (_ARRAY_INT, _INT_SERVER, _STRUCT_INT_SERVER, _SELECT_FN),
    (_ARRAY_INT_SERVER, _INT_SERVER, _STRUCT_INT_SERVER, _SELECT_FN),
    (_ARRAY_INT_CLIENTS, _INT, _STRUCT_INT_SERVER, _SELECT_FN),
    (_ARRAY_INT_CLIENTS, _INT_CLIENTS, _STRUCT_INT_SERVER, _SELECT_FN),
    (_ARRAY_INT_CLIENTS, _FLOAT_SERVER, _STRUCT_INT_SERVER, _SELECT_FN),
    (_ARRAY_INT_CLIENTS, _INT_SERVER, _STRUCT_INT, _SELECT_FN),
    (_ARRAY_INT_CLIENTS, _INT_SERVER, _STRUCT_INT_CLIENTS, _SELECT_FN),
    (_ARRAY_INT_CLIENTS, _INT_SERVER, _STRUCT_INT_SERVER,
     _fake_fn([_STRUCT_INT, _FLOAT], _FLOAT)),
], ids=["client_keys_array_unplaced", "client_keys_array_server", "max_key_int_unplaced",
        "max_key_int_clients", "max_key_float_server", "server_value_struct_unplaced",
        "server_value_struct_clients", "select_fn_second_parameter_float"])
def test_federated_select_raises_type_error(keys, max_key, server, fn):
  with pytest.raises(TypeError):
    _result_type(_select, keys, max_key, server, fn)


def test_federated_select_raises_context_error_with_no_federated_context():
  with pytest.raises(RuntimeError):  # spelling: context.ContextError -> RuntimeError
    fedjit.federated_select(np.zeros(3, np.int32), np.int32(3), [1, 2, 3],
                            lambda s, k: s[0])


# ------------------------------------------------------------------ federated_sum


@pytest.mark.parametrize("value", [_INT_CLIENTS, _STRUCT_INT_CLIENTS],
                         ids=["int_clients", "struct_clients"])
def test_federated_sum_returns_result(value):
  assert _result_type(fedjit.federated_sum, value) == FederatedType(value.member, SERVER)


@pytest.mark.parametrize("value", [_INT, _STR_CLIENTS, _INT_SERVER],
                         ids=["int_unplaced", "str_clients", "int_server"])
def test_federated_sum_raises_type_error(value):
  with pytest.raises(TypeError):
    _result_type(fedjit.federated_sum, value)


def test_federated_sum_raises_context_error_with_no_federated_context():
  with pytest.raises(RuntimeError):  # spelling: context.ContextError -> RuntimeError
    fedjit.federated_sum(np.int32(1))


# ------------------------------------------------------------------ federated_zip


def _zip_of(structure_of_types, expected):
  """Traces federated_zip of a structure of parameters of the given types."""
  leaves, rebuild = _flatten(structure_of_types)
  result = _result_type(lambda *vals: fedjit.federated_zip(rebuild(list(vals))), *leaves)
  assert result == expected


def _flatten(structure):
  if isinstance(structure, dict):
    keys = list(structure)
    return [structure[k] for k in keys], lambda vals: dict(zip(keys, vals))
  leaves, spans = [], []
  for s in structure:
    if isinstance(s, list):
      sub, sub_rebuild = _flatten(s)
      spans.append((len(leaves), len(sub), sub_rebuild))
      leaves.extend(sub)
    else:
      spans.append((len(leaves), None, None))
      leaves.append(s)

  def rebuild(vals):
    return [vals[i] if n is None else r(vals[i:i + n]) for i, n, r in spans]
  return leaves, rebuild


@pytest.mark.parametrize("value,expected", [
    ([_INT_CLIENTS] * 3, _STRUCT_INT_CLIENTS),
    ([_INT_SERVER] * 3, _STRUCT_INT_SERVER),
    ([_INT_CLIENTS, _FLOAT_CLIENTS, _STR_CLIENTS],
     FederatedType([np.int32, np.float32, np.str_], CLIENTS)),
    ([_INT_CLIENTS], FederatedType([np.int32], CLIENTS)),
    ([_INT_CLIENTS, [_INT_CLIENTS, _INT_CLIENTS]],
     FederatedType([np.int32, [np.int32, np.int32]], CLIENTS)),
    ({"a": _INT_CLIENTS, "b": _INT_CLIENTS, "c": _INT_CLIENTS},
     FederatedType({"a": np.int32, "b": np.int32, "c": np.int32}, CLIENTS)),
], ids=["struct_clients", "struct_server", "struct_different_dtypes", "struct_one_element",
        "struct_nested", "struct_named"])
def test_federated_zip_returns_result(value, expected):
  _zip_of(value, expected)


@pytest.mark.parametrize("value", [_INT, _INT_CLIENTS, _INT_SERVER],
                         ids=["int_unplaced", "int_clients", "int_server"])
def test_federated_zip_raises_value_error(value):
  with pytest.raises(ValueError):
    _result_type(fedjit.federated_zip, value)


def test_federated_zip_raises_type_error_struct_different_placements():
  with pytest.raises(TypeError):
    _zip_of([_INT_CLIENTS, _INT_SERVER], None)


def test_federated_zip_raises_context_error_with_no_federated_context():
  with pytest.raises(RuntimeError):  # spelling: context.ContextError -> RuntimeError
    fedjit.federated_zip([np.int32(1)] * 3)


# ----------------------------------------------------------------- federated_mean


@pytest.mark.parametrize("value,weight", [
    (_FLOAT_CLIENTS, None),
    (_FLOAT_CLIENTS, _FLOAT_CLIENTS),
    (_STRUCT_FLOAT_CLIENTS, None),
    (_STRUCT_FLOAT_CLIENTS, _FLOAT_CLIENTS),
], ids=["value_float_clients_and_weight_none", "value_float_clients_and_weight_float_clients",
        "value_struct_int_clients_and_weight_none",
        "value_struct_int_clients_and_weight_float_clients"])
def test_federated_mean_returns_result(value, weight):
  if weight is None:
    result = _result_type(lambda v: fedjit.federated_mean(v, None), value)
  else:
    result = _result_type(fedjit.federated_mean, value, weight)
  assert result == FederatedType(value.member, SERVER)


@pytest.mark.parametrize("value,weight", [
    (_INT_CLIENTS, None),
    (_FLOAT_SERVER, None),
    (_FLOAT_CLIENTS, _STR_CLIENTS),
    (_FLOAT_CLIENTS, _FLOAT_SERVER),
], ids=["value_int_clients", "value_float_server", "weight_str_clients",
        "weight_float_server"])
def test_federated_mean_raises_type_error(value, weight):
  with pytest.raises(TypeError):
    if weight is None:
      _result_type(lambda v: fedjit.federated_mean(v, None), value)
    else:
      _result_type(fedjit.federated_mean, value, weight)


def test_federated_mean_raises_context_error_with_no_federated_context():
  with pytest.raises(RuntimeError):  # spelling: context.ContextError -> RuntimeError
    fedjit.federated_mean(np.float32(1), None)


# ------------------------------------------------------------ federated_min / max

_MIN_MAX = {"federated_min": fedjit.federated_min, "federated_max": fedjit.federated_max}


@pytest.mark.parametrize("intrinsic", list(_MIN_MAX))
@pytest.mark.parametrize("value", [_INT_CLIENTS, _STRUCT_INT_CLIENTS],
                         ids=["int_clients", "struct_clients"])
def test_federated_min_max_returns_result(intrinsic, value):
  assert _result_type(_MIN_MAX[intrinsic], value) == FederatedType(value.member, SERVER)


@pytest.mark.parametrize("intrinsic", list(_MIN_MAX))
@pytest.mark.parametrize("value", [_INT, _INT_SERVER], ids=["int_unplaced", "int_server"])
def test_federated_min_max_raises_type_error(intrinsic, value):
  with pytest.raises(TypeError):
    _result_type(_MIN_MAX[intrinsic], value)


@pytest.mark.parametrize("intrinsic", list(_MIN_MAX))
def test_federated_min_max_raises_value_error_str_clients(intrinsic):
  with pytest.raises(ValueError):
    _result_type(_MIN_MAX[intrinsic], _STR_CLIENTS)


@pytest.mark.parametrize("intrinsic", list(_MIN_MAX))
def test_federated_min_max_raises_context_error_with_no_federated_context(intrinsic):
  # (TFF's FederatedMaxTest calls federated_min here; both are checked.)
  with pytest.raises(RuntimeError):  # spelling: context.ContextError -> RuntimeError
    _MIN_MAX[intrinsic](np.int32(1))


# ------------------------------------------------------------ federated_aggregate


def _aggregate(value, zero, accumulate, merge, report):
  return fedjit.federated_aggregate(value, zero, accumulate, merge, report)


def test_federated_aggregate_returns_result():
  report = _fake_fn(_FLOAT, _STR)
  result = _result_type(_aggregate, _INT_CLIENTS, _FLOAT, _fake_fn([_FLOAT, _INT], _FLOAT),
                        _fake_fn([_FLOAT, _FLOAT], _FLOAT), report)
  assert result == FederatedType(report.result, SERVER)


def test_federated_aggregate_raises_type_error_zero_mismatched_type():
  with pytest.raises(TypeError):
    _result_type(_aggregate, _INT_CLIENTS, _INT, _fake_fn([_FLOAT, _INT], _FLOAT),
                 _fake_fn([_FLOAT, _FLOAT], _FLOAT), _fake_fn(_FLOAT, _STR))


def test_federated_aggregate_raises_context_error_with_no_federated_context():
  with pytest.raises(RuntimeError):  # spelling: context.ContextError -> RuntimeError
    fedjit.federated_aggregate(np.int32(1), np.float32(0), lambda a, v: a, lambda a, b: a,
                               lambda a: a)


# ---------------------------------------------------------------- federated_value


@pytest.mark.parametrize("value,placement", [
    (_INT, CLIENTS), (_INT, SERVER), (_SEQUENCE_INT, CLIENTS), (_STRUCT_INT, CLIENTS),
], ids=["int_and_clients", "int_and_server", "sequence_and_clients", "struct_and_clients"])
def test_federated_value_returns_result(value, placement):
  result = _result_type(lambda v: fedjit.federated_value(v, placement), value)
  assert result == FederatedType(value, placement, all_equal=True)


def test_federated_value_raises_context_error_with_no_federated_context():
  with pytest.raises(RuntimeError):  # spelling: context.ContextError -> RuntimeError
    fedjit.federated_value(np.int32(1), CLIENTS)


# -------------------------------------------------------------------- sequences


@pytest.mark.parametrize("fn,arg,expected", [
    (_fake_fn(_INT, _FLOAT), _SEQUENCE_INT, _SEQUENCE_FLOAT),
    (_fake_fn(_INT, _FLOAT), _SEQUENCE_INT_CLIENTS, _SEQUENCE_FLOAT_CLIENTS),
    (_fake_fn(_INT, _FLOAT), _SEQUENCE_INT_SERVER, _SEQUENCE_FLOAT_SERVER),
], ids=["sequence_unplaced", "sequence_clients", "sequence_server"])
def test_sequence_map_returns_result(fn, arg, expected):
  assert _result_type(fedjit.sequence_map, fn, arg) == expected


def test_sequence_map_raises_context_error_with_no_federated_context():
  with pytest.raises(RuntimeError):  # spelling: context.ContextError -> RuntimeError
    fedjit.sequence_map(lambda x: x, [np.int32(1)])


@pytest.mark.parametrize("value,zero,op", [
    (_SEQUENCE_INT, _FLOAT, _fake_fn([_FLOAT, _INT], _FLOAT)),
    (_SEQUENCE_INT_CLIENTS, _FLOAT_CLIENTS, _fake_fn([_FLOAT, _INT], _FLOAT)),
    (_SEQUENCE_INT_SERVER, _FLOAT_SERVER, _fake_fn([_FLOAT, _INT], _FLOAT)),
], ids=["sequence_unplaced", "sequence_clients", "sequence_server"])
def test_sequence_reduce_returns_result(value, zero, op):
  result = _result_type(fedjit.sequence_reduce, value, zero, op)
  assert result == zero


def test_sequence_reduce_raises_context_error_with_no_federated_context():
  with pytest.raises(RuntimeError):  # spelling: context.ContextError -> RuntimeError
    fedjit.sequence_reduce([np.int32(1)], np.float32(0), lambda a, x: a + x)


@pytest.mark.parametrize("value,expected", [
    (_SEQUENCE_INT, _INT), (_SEQUENCE_INT_CLIENTS, _INT_CLIENTS),
    (_SEQUENCE_INT_SERVER, _INT_SERVER),
], ids=["sequence_unplaced", "sequence_clients", "sequence_server"])
def test_sequence_sum_returns_result(value, expected):
  assert _result_type(fedjit.sequence_sum, value) == expected


def test_sequence_sum_raises_context_error_with_no_federated_context():
  with pytest.raises(RuntimeError):  # spelling: context.ContextError -> RuntimeError
    fedjit.sequence_sum([np.int32(1)])

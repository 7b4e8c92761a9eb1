"""Every intrinsic, on every backend, against independent NumPy calculations.

Each test runs under the reference backend, the vectorized backend with its
default client map, with `client_map="vmap"`, with `client_map="map",
chunk_size=2`, and the "logging" backend of tests/core/test_third_backend.py
(written only against the public Backend protocol). The clients hold unequal data: different numbers of batches,
a smaller last batch, and one client without any batch. Expected values are
computed here with NumPy (in float64 where it matters), never copied from
fedjit's output.
"""

from __future__ import annotations

import collections

import jax.numpy as jnp
import numpy as np
import pytest

import fedjit
from conftest import use_third_backend

use_third_backend()  # registers "logging", a backend written only against the protocol

CLIENTS = fedjit.CLIENTS
SERVER = fedjit.SERVER

BACKENDS = {
    "reference": ("reference", {}),
    "vectorized": ("vectorized", {}),
    "vectorized-vmap": ("vectorized", {"client_map": "vmap"}),
    "vectorized-map-chunk2": ("vectorized", {"client_map": "map", "chunk_size": 2}),
    "logging": ("logging", {}),  # tests/core/test_third_backend.py
}
VECTORIZED = [k for k in BACKENDS if k.startswith("vectorized")]

NUM_CLIENTS = 5
DIM = 3
# Batches per client (rows of each batch): unequal numbers of batches, a
# smaller last batch, and client 2 without any data.
BATCH_ROWS = [[4, 4, 2], [4], [], [4, 1], [3]]
FULL_BATCH_ROWS = [[4, 4], [4], [], [4, 4, 4], [4]]

Point = collections.namedtuple("Point", ["x", "y"])


def _rng(seed=0):
  return np.random.default_rng(seed)


def _batches(rows, seed=0, dim=DIM):
  """One list of float32 batches `[r, dim]` per client."""
  rng = _rng(seed)
  return [[rng.normal(size=(r, dim)).astype(np.float32) for r in client]
          for client in rows]


def _regression_batches(rows, seed=0):
  """One list of `(x [r, DIM], y [r])` float32 batches per client."""
  rng = _rng(seed)
  out = []
  for client in rows:
    out.append([(rng.normal(size=(r, DIM)).astype(np.float32),
                 rng.normal(size=(r,)).astype(np.float32)) for r in client])
  return out


def _close(actual, expected, rtol=1e-5, atol=1e-5):
  np.testing.assert_allclose(np.asarray(actual, np.float64),
                             np.asarray(expected, np.float64), rtol=rtol, atol=atol)


def _close_lists(actual, expected, rtol=1e-5, atol=1e-5):
  assert isinstance(actual, list), type(actual)
  assert len(actual) == len(expected)
  for a, e in zip(actual, expected):
    _close(a, e, rtol, atol)


@pytest.fixture(params=list(BACKENDS))
def backend(request):
  """Runs the test under one backend configuration."""
  name, options = BACKENDS[request.param]
  with fedjit.backend(name, **options) as b:
    assert fedjit.get_backend() is b
    yield b


# ---------------------------------------------------------------- types

F32 = fedjit.TensorType(np.float32)
I32 = fedjit.TensorType(np.int32)
VEC = fedjit.TensorType(np.float32, [DIM])
BATCH = fedjit.TensorType(np.float32, [None, DIM])
SEQ = fedjit.SequenceType(BATCH)
XY_SEQ = fedjit.SequenceType((BATCH, fedjit.TensorType(np.float32, [None])))
INT_PAIR_SEQ = fedjit.SequenceType(fedjit.TensorType(np.int32, [2]))
STRUCT_SEQ = fedjit.SequenceType((fedjit.TensorType(np.float32, [2]), I32))


def _at_clients(t):
  return fedjit.FederatedType(t, CLIENTS)


def _at_server(t):
  return fedjit.FederatedType(t, SERVER)


# --------------------------------------------------------- federated_value

@fedjit.federated_computation
def _value_at_server():
  return fedjit.federated_value((np.float32(2.5), np.arange(3, dtype=np.int32)), SERVER)


@fedjit.federated_computation(_at_clients(F32))
def _value_at_clients(x):
  c = fedjit.federated_value(np.float32(1.5), CLIENTS)
  shifted = fedjit.federated_map(fedjit.jax_computation(F32, F32)(lambda a, b: a + b),
                                 (x, c))
  return c, fedjit.federated_sum(c), shifted


def test_federated_value_at_server(backend):
  assert str(_value_at_server.type_signature) == "( -> <float32,int32[3]>@SERVER)"
  a, b = _value_at_server()
  _close(a, 2.5)
  np.testing.assert_array_equal(b, np.arange(3))


def test_federated_value_at_clients(backend):
  assert str(_value_at_clients.type_signature) == (
      "({float32}@CLIENTS -> <float32@CLIENTS,float32@SERVER,{float32}@CLIENTS>)")
  x = _rng(1).normal(size=NUM_CLIENTS).astype(np.float32)
  c, total, shifted = _value_at_clients(list(x))
  _close(c, 1.5)  # all-equal at CLIENTS: the one member value
  _close(total, 1.5 * NUM_CLIENTS)
  _close_lists(shifted, list(x.astype(np.float64) + 1.5))


@fedjit.federated_computation
def _value_at_clients_without_client_arguments():
  c = fedjit.federated_value(np.float32(1.5), CLIENTS)
  doubled = fedjit.federated_map(fedjit.jax_computation(F32)(lambda v: 2.0 * v), c)
  return c, fedjit.federated_mean(doubled)


@fedjit.federated_computation
def _sum_without_client_arguments():
  return fedjit.federated_sum(fedjit.federated_value(np.float32(1.5), CLIENTS))


def test_federated_value_at_clients_without_client_arguments(backend):
  # Like TFF, an all-equal value at CLIENTS; its mean is that value.
  assert str(_value_at_clients_without_client_arguments.type_signature) == (
      "( -> <float32@CLIENTS,float32@SERVER>)")
  c, mean = _value_at_clients_without_client_arguments()
  _close(c, 1.5)
  _close(mean, 3.0)
  # A sum needs the number of clients, which no argument gives.
  with pytest.raises(fedjit.FederatedTypeError, match="needs the number of clients"):
    _sum_without_client_arguments()


_SHARED = fedjit.FederatedType(F32, CLIENTS, all_equal=True)


@fedjit.federated_computation(_SHARED, _at_clients(F32))
def _scale_by_shared(a, x):
  products = fedjit.federated_map(fedjit.jax_computation(F32, F32)(lambda s, v: s * v),
                                  (a, x))
  return products, fedjit.federated_sum(products), fedjit.federated_sum(a), a


def test_all_equal_client_parameter(backend):
  assert str(_scale_by_shared.type_signature) == (
      "(<a=float32@CLIENTS,x={float32}@CLIENTS> -> "
      "<{float32}@CLIENTS,float32@SERVER,float32@SERVER,float32@CLIENTS>)")
  products, total, shared_total, shared = _scale_by_shared(2.5, [1.0, 2.0, 4.0])
  _close_lists(products, [2.5, 5.0, 10.0])
  _close(total, 17.5)
  _close(shared_total, 7.5)  # 2.5 on each of the 3 clients
  _close(shared, 2.5)


# ----------------------------------------------------- federated_broadcast

@fedjit.jax_computation(VEC, VEC)
def _scaled_difference(x, s):
  return 2.0 * x - s


@fedjit.federated_computation(_at_server(VEC), _at_clients(VEC))
def _broadcast_and_use(s, x):
  at_clients = fedjit.federated_broadcast(s)
  return at_clients, fedjit.federated_map(_scaled_difference, (x, at_clients))


def test_federated_broadcast(backend):
  assert str(_broadcast_and_use.type_signature) == (
      "(<s=float32[3]@SERVER,x={float32[3]}@CLIENTS> -> "
      "<float32[3]@CLIENTS,{float32[3]}@CLIENTS>)")
  rng = _rng(2)
  s = rng.normal(size=DIM).astype(np.float32)
  x = rng.normal(size=(NUM_CLIENTS, DIM)).astype(np.float32)
  broadcast, out = _broadcast_and_use(s, x)
  _close(broadcast, s)
  _close_lists(out, [2.0 * xi.astype(np.float64) - s for xi in x])


# ---------------------------------------------------------- federated_map

@fedjit.jax_computation(VEC)
def _squash(x):
  return jnp.tanh(x) * 2.0 + 1.0


@fedjit.federated_computation(_at_clients(VEC))
def _map_at_clients(x):
  return fedjit.federated_map(_squash, x)


@fedjit.federated_computation(_at_server(VEC))
def _map_at_server(x):
  return fedjit.federated_map(_squash, x)


@fedjit.jax_computation(VEC, F32)
def _axpy(x, a):
  return a * x + 1.0


@fedjit.federated_computation(_at_clients(VEC), _at_clients(F32))
def _map_zipped_clients(x, a):
  two_params = fedjit.federated_map(_axpy, (x, a))
  # A plain Python function of one parameter gets the zipped tuple.
  one_param = fedjit.federated_map(lambda pair: pair[0] * pair[1], (x, a))
  return two_params, one_param


@fedjit.federated_computation(_at_server(VEC), _at_server(F32))
def _map_zipped_server(x, a):
  return fedjit.federated_map(_axpy, (x, a))


def test_federated_map_at_clients(backend):
  assert str(_map_at_clients.type_signature) == (
      "({float32[3]}@CLIENTS -> {float32[3]}@CLIENTS)")
  x = _rng(3).normal(size=(NUM_CLIENTS, DIM)).astype(np.float32)
  out = _map_at_clients(list(x))
  _close_lists(out, [np.tanh(xi.astype(np.float64)) * 2.0 + 1.0 for xi in x])


def test_federated_map_at_server(backend):
  assert str(_map_at_server.type_signature) == "(float32[3]@SERVER -> float32[3]@SERVER)"
  x = _rng(4).normal(size=DIM).astype(np.float32)
  _close(_map_at_server(x), np.tanh(x.astype(np.float64)) * 2.0 + 1.0)


def test_federated_map_zips_a_tuple_of_client_values(backend):
  rng = _rng(5)
  x = rng.normal(size=(NUM_CLIENTS, DIM)).astype(np.float32)
  a = rng.normal(size=NUM_CLIENTS).astype(np.float32)
  two_params, one_param = _map_zipped_clients(list(x), list(a))
  x64, a64 = x.astype(np.float64), a.astype(np.float64)
  _close_lists(two_params, [ai * xi + 1.0 for xi, ai in zip(x64, a64)])
  _close_lists(one_param, [ai * xi for xi, ai in zip(x64, a64)])


def test_federated_map_zips_a_tuple_of_server_values(backend):
  assert str(_map_zipped_server.type_signature) == (
      "(<x=float32[3]@SERVER,a=float32@SERVER> -> float32[3]@SERVER)")
  x = np.array([1.0, -2.0, 0.5], np.float32)
  _close(_map_zipped_server(x, np.float32(3.0)), 3.0 * x.astype(np.float64) + 1.0)


# -------------------------------------------------- federated_mean and sum

@fedjit.federated_computation(_at_clients(VEC), _at_clients(F32))
def _means(x, w):
  return fedjit.federated_mean(x), fedjit.federated_mean(x, w)


@fedjit.federated_computation(_at_clients(VEC), _at_clients(I32))
def _sums(x, n):
  return fedjit.federated_sum(x), fedjit.federated_sum(n)


def test_federated_mean_unweighted_and_weighted(backend):
  assert str(_means.type_signature) == (
      "(<x={float32[3]}@CLIENTS,w={float32}@CLIENTS> -> "
      "<float32[3]@SERVER,float32[3]@SERVER>)")
  rng = _rng(6)
  x = rng.normal(size=(NUM_CLIENTS, DIM)).astype(np.float32)
  # Unequal weights, e.g. numbers of examples, one of them zero.
  w = np.array([10.0, 4.0, 0.0, 5.0, 3.0], np.float32)
  mean, weighted = _means(list(x), list(w))
  x64, w64 = x.astype(np.float64), w.astype(np.float64)
  _close(mean, x64.sum(axis=0) / NUM_CLIENTS)
  _close(weighted, (w64[:, None] * x64).sum(axis=0) / w64.sum())
  assert not np.allclose(mean, weighted, atol=1e-3)  # the weights matter


def test_federated_sum(backend):
  rng = _rng(7)
  x = rng.normal(size=(NUM_CLIENTS, DIM)).astype(np.float32)
  n = rng.integers(-1000, 1000, size=NUM_CLIENTS).astype(np.int32)
  total, count = _sums(list(x), list(n))
  _close(total, x.astype(np.float64).sum(axis=0))
  assert np.asarray(count).dtype == np.int32
  assert int(count) == int(n.astype(np.int64).sum())


# ---------------------------------------------------------- federated_zip

@fedjit.federated_computation(_at_clients(VEC), _at_clients(I32))
def _zip_clients(x, n):
  return fedjit.federated_zip({"x": x, "n": n})


@fedjit.federated_computation(_at_server(VEC), _at_server(I32))
def _zip_server(x, n):
  return fedjit.federated_zip((x, n))


def test_federated_zip_at_clients(backend):
  assert str(_zip_clients.type_signature) == (
      "(<x={float32[3]}@CLIENTS,n={int32}@CLIENTS> -> {<x=float32[3],n=int32>}@CLIENTS)")
  rng = _rng(8)
  x = rng.normal(size=(NUM_CLIENTS, DIM)).astype(np.float32)
  n = np.arange(NUM_CLIENTS, dtype=np.int32) * 7
  out = _zip_clients(list(x), list(n))
  assert isinstance(out, list) and len(out) == NUM_CLIENTS
  for member, xi, ni in zip(out, x, n):
    assert type(member) is dict and list(member) == ["x", "n"]
    _close(member["x"], xi)
    assert int(member["n"]) == int(ni)


def test_federated_zip_at_server(backend):
  assert str(_zip_server.type_signature) == (
      "(<x=float32[3]@SERVER,n=int32@SERVER> -> <float32[3],int32>@SERVER)")
  x = np.array([0.5, 1.5, -2.0], np.float32)
  out = _zip_server(x, np.int32(9))
  assert type(out) is tuple and len(out) == 2
  _close(out[0], x)
  assert int(out[1]) == 9


# ---------------------------------------------------- federated_aggregate

def _accumulate(acc, x):
  count, total, max_abs = acc
  return count + 1, total + x, jnp.maximum(max_abs, jnp.max(jnp.abs(x)))


def _merge(a, b):
  return a[0] + b[0], a[1] + b[1], jnp.maximum(a[2], b[2])


def _report(acc):
  count, total, max_abs = acc
  return total / count.astype(jnp.float32), max_abs


@fedjit.federated_computation(_at_clients(VEC))
def _aggregate(x):
  zero = (np.int32(0), np.zeros(DIM, np.float32), np.float32(0.0))
  return fedjit.federated_aggregate(x, zero, _accumulate, _merge, _report)


def test_federated_aggregate(backend):
  assert str(_aggregate.type_signature) == (
      "({float32[3]}@CLIENTS -> <float32[3],float32>@SERVER)")
  x = _rng(9).normal(size=(NUM_CLIENTS, DIM)).astype(np.float32) * 3.0
  mean, max_abs = _aggregate(list(x))
  x64 = x.astype(np.float64)
  _close(mean, x64.mean(axis=0))
  _close(max_abs, np.abs(x64).max())


# Accumulator: (sum of the values, number of clients, number of merges).
def _counting_accumulate(acc, x):
  total, clients, merges = acc
  return total + x, clients + 1, merges


def _counting_merge(a, b):
  return a[0] + b[0], a[1] + b[1], a[2] + b[2] + 1


def _merge_keeping_first(a, b):
  return a  # a wrong merge: drops the second group


_COUNT_ZERO = (np.float32(0.0), np.int32(0), np.int32(0))


@fedjit.federated_computation(_at_clients(F32))
def _aggregate_counting_merges(x):
  return fedjit.federated_aggregate(x, _COUNT_ZERO, _counting_accumulate,
                                    _counting_merge, lambda acc: acc)


@fedjit.federated_computation(_at_clients(F32))
def _aggregate_with_wrong_merge(x):
  return fedjit.federated_aggregate(x, _COUNT_ZERO, _counting_accumulate,
                                    _merge_keeping_first, lambda acc: acc)


@pytest.mark.parametrize("num_clients, merges", [(1, 0), (2, 1), (5, 1)])
def test_federated_aggregate_merges_separately_accumulated_groups(backend, num_clients,
                                                                  merges):
  # As in TFF: groups of clients are accumulated from `zero` separately,
  # then merged; here the first ceil(n/2) clients and the rest.
  x = [2.0 ** i for i in range(num_clients)]
  total, clients, merged = _aggregate_counting_merges(x)
  _close(total, 2.0 ** num_clients - 1.0)
  assert int(clients) == num_clients
  assert int(merged) == merges


def test_federated_aggregate_result_depends_on_merge(backend):
  # Clients 0-2 (1 + 2 + 4) form the first group, 3-4 (8 + 16) the second;
  # a merge that drops the second group loses them.
  total, clients, _ = _aggregate_with_wrong_merge([1.0, 2.0, 4.0, 8.0, 16.0])
  _close(total, 7.0)
  assert int(clients) == 3


# --------------------------------------------------- federated_secure_sum

@fedjit.federated_computation(_at_clients(I32), _at_clients(fedjit.TensorType(np.int32, [2])))
def _secure_sums(n, v):
  return (fedjit.federated_secure_sum(n, 200), fedjit.federated_secure_sum_bitwidth(n, 8),
          fedjit.federated_secure_modular_sum(n, 2 ** 8),
          fedjit.federated_secure_modular_sum(v, np.int32(2 ** 8)),
          fedjit.federated_secure_sum((n, v), (255, 300)))


def test_federated_secure_sums_bounded_plain_and_modular(backend):
  n = np.array([200, 100, 5, 0, 77], np.int32)            # sum 382 >= 2**8
  v = np.array([[255, 1], [255, 2], [3, 4], [0, 0], [10, 20]], np.int32)
  bounded, bits, modular, vec, pair = _secure_sums(list(n), list(v))
  plain = int(n.astype(np.int64).sum())
  assert plain >= 2 ** 8
  # Inputs within [0, max_input] (or [0, 2**bitwidth - 1]): the plain sum.
  assert int(bounded) == plain and int(bits) == plain
  # The modular sum wraps.
  assert int(modular) == plain % 2 ** 8
  np.testing.assert_array_equal(np.asarray(vec), v.astype(np.int64).sum(axis=0) % 2 ** 8)
  assert int(pair[0]) == plain
  np.testing.assert_array_equal(np.asarray(pair[1]), v.sum(axis=0))
  for r in (bounded, bits, modular, vec):
    assert np.asarray(r).dtype == np.int32


def test_federated_secure_sum_refuses_inputs_out_of_range(backend):
  # max_input is 200: client 0's 256 is above it.
  with pytest.raises(ValueError, match="client 0 holds the value 256"):
    _secure_sums([256, 100, 5, 0, 77], [[0, 0]] * 5)
  with pytest.raises(ValueError, match="client 3 holds the value -1"):
    _secure_sums([1, 2, 3, -1, 4], [[0, 0]] * 5)


@fedjit.federated_computation(_at_clients(I32), I32)
def _secure_sum_with_bound_argument(n, bound):
  return fedjit.federated_secure_sum(n, bound)


def test_federated_secure_sum_bound_computed_in_the_computation(backend):
  assert int(_secure_sum_with_bound_argument([3, 4, 5], 5)) == 12
  with pytest.raises(ValueError, match="client 2 holds the value 5"):
    _secure_sum_with_bound_argument([3, 4, 5], 4)


@fedjit.federated_computation(_at_clients(I32), _at_clients(I32))
def _wide_modular_sums(a, b):
  return (fedjit.federated_secure_modular_sum(a, np.int32(2 ** 31 - 1)),
          fedjit.federated_secure_modular_sum(b, 7))


def test_federated_secure_modular_sum_exact_near_int32_limits(backend):
  a = [2 ** 31 - 2, 2 ** 31 - 3, 5, 2 ** 30]
  b = [-1, -8, 20, 3]                      # negative values count as v mod 7
  wide, small = _wide_modular_sums(a, b)
  assert int(wide) == sum(a) % (2 ** 31 - 1)   # Python integers: no overflow
  assert int(small) == sum(x % 7 for x in b) % 7


def test_secure_sum_bounds_checked_while_tracing():
  with pytest.raises(fedjit.FederatedValueError, match="bitwidth in \\[0, 62\\]"):
    fedjit.federated_computation(_at_clients(I32))(
        lambda x: fedjit.federated_secure_sum_bitwidth(x, 63))
  with pytest.raises(fedjit.FederatedValueError, match="positive modulus"):
    fedjit.federated_computation(_at_clients(I32))(
        lambda x: fedjit.federated_secure_modular_sum(x, 0))
  with pytest.raises(fedjit.SumIncompatibleError, match="not fully known"):
    fedjit.federated_computation(_at_clients(fedjit.TensorType(np.int32, [None])))(
        fedjit.federated_sum)
  with pytest.raises(fedjit.SumIncompatibleError, match="bool is not numeric"):
    fedjit.federated_computation(_at_clients(np.bool_))(fedjit.federated_sum)


# ------------------------------------------------ federated_min / max / eval

_MINMAX_T = (fedjit.TensorType(np.float32, [2]), I32)


@fedjit.federated_computation(_at_clients(_MINMAX_T))
def _min_max(x):
  return fedjit.federated_min(x), fedjit.federated_max(x)


def test_federated_min_and_max_of_structures(backend):
  rng = _rng(3)
  vs = rng.normal(size=(NUM_CLIENTS, 2)).astype(np.float32)
  ns = rng.integers(-50, 50, size=NUM_CLIENTS).astype(np.int32)
  lo, hi = _min_max([(v, n) for v, n in zip(vs, ns)])
  np.testing.assert_array_equal(np.asarray(lo[0]), vs.min(axis=0))
  np.testing.assert_array_equal(np.asarray(hi[0]), vs.max(axis=0))
  assert int(lo[1]) == ns.min() and int(hi[1]) == ns.max()


# ------------------------------------------------ federated_collect


@fedjit.jax_computation(fedjit.TensorType(np.float32, [None, 2]), fedjit.TensorType(np.int32, [None]))
def _median_and_count(xs, ns):
  return jnp.median(xs, axis=0), ns.shape[0]


@fedjit.federated_computation(_at_clients(_MINMAX_T))
def _collected(x):
  everyone = fedjit.federated_collect(x)
  return everyone, fedjit.federated_map(_median_and_count, everyone)


def test_federated_collect_stacks_every_clients_value_in_order(backend):
  assert str(_collected.type_signature.result) == (
      "<<float32[?,2],int32[?]>@SERVER,<float32[2],int32>@SERVER>")
  rng = _rng(4)
  vs = rng.normal(size=(NUM_CLIENTS, 2)).astype(np.float32)
  ns = rng.integers(-50, 50, size=NUM_CLIENTS).astype(np.int32)
  (stacked_v, stacked_n), (median, count) = _collected([(v, n) for v, n in zip(vs, ns)])
  np.testing.assert_array_equal(np.asarray(stacked_v), vs)
  np.testing.assert_array_equal(np.asarray(stacked_n), ns)
  np.testing.assert_allclose(np.asarray(median), np.median(vs, axis=0), rtol=1e-6)
  assert int(count) == NUM_CLIENTS


def test_federated_collect_of_a_broadcast_repeats_it_per_client(backend):
  @fedjit.federated_computation(fedjit.FederatedType(F32, SERVER), _at_clients(F32))
  def both(s, c):
    return fedjit.federated_collect(fedjit.federated_broadcast(s)), fedjit.federated_collect(c)
  repeated, given = both(np.float32(7.0), [1.0, 2.0, 3.0])
  np.testing.assert_array_equal(np.asarray(repeated), [7.0, 7.0, 7.0])
  np.testing.assert_array_equal(np.asarray(given), [1.0, 2.0, 3.0])


def test_federated_collect_survives_serialization(backend):
  restored = fedjit.deserialize(fedjit.serialize(_collected))
  assert restored.type_signature == _collected.type_signature
  (v, n), _ = restored([(np.array([1.0, 2.0], np.float32), np.int32(3)),
                        (np.array([3.0, 4.0], np.float32), np.int32(5))])
  np.testing.assert_array_equal(np.asarray(v), [[1.0, 2.0], [3.0, 4.0]])
  np.testing.assert_array_equal(np.asarray(n), [3, 5])


def test_federated_collect_errors():
  with pytest.raises(fedjit.PlacementError, match="CLIENTS"):
    fedjit.federated_computation(fedjit.FederatedType(F32, SERVER))(fedjit.federated_collect)
  seq = fedjit.SequenceType(F32)
  with pytest.raises(TypeError, match="collects tensors or structures"):
    fedjit.federated_computation(_at_clients(seq))(fedjit.federated_collect)


@fedjit.jax_computation
def _ones_and_two():
  return jnp.ones(2, jnp.float32), jnp.int32(2)


@fedjit.federated_computation(_at_clients(F32))
def _evals(x):
  at_clients = fedjit.federated_eval(_ones_and_two, CLIENTS)
  total = fedjit.federated_sum(fedjit.federated_map(lambda v: v[1], at_clients))
  return at_clients, fedjit.federated_eval(_ones_and_two, SERVER), total


def test_federated_eval_at_clients_and_server(backend):
  at_clients, at_server, total = _evals([0.0] * NUM_CLIENTS)
  assert str(_evals.type_signature.result) == (
      "<{<float32[2],int32>}@CLIENTS,<float32[2],int32>@SERVER,int32@SERVER>")
  assert len(at_clients) == NUM_CLIENTS
  for member in at_clients + [at_server]:
    np.testing.assert_array_equal(np.asarray(member[0]), np.ones(2, np.float32))
    assert int(member[1]) == 2
  assert int(total) == 2 * NUM_CLIENTS


# ------------------------------------------------------------ federated_select

_TABLE_T = (fedjit.TensorType(np.float32, [5, 2]), fedjit.TensorType(np.int32, [5]))


@fedjit.jax_computation(_TABLE_T, np.int32)
def _table_row(table, key):
  return table[0][key], table[1][key]


@fedjit.federated_computation(_at_clients(fedjit.TensorType(np.int32, [3])), _at_server(_TABLE_T))
def _select_rows(keys, table):
  max_key = fedjit.federated_value(np.int32(4), SERVER)
  selected = fedjit.federated_select(keys, max_key, table, _table_row)

  @fedjit.jax_computation(fedjit.SequenceType((fedjit.TensorType(np.float32, [2]), I32)))
  def total(rows):
    return rows.reduce((jnp.zeros(2, jnp.float32), jnp.int32(0)),
                       lambda acc, r: (acc[0] + r[0], acc[1] + r[1]))
  return selected, fedjit.federated_map(total, selected)


def test_federated_select_sends_each_client_its_rows(backend):
  rng = _rng(4)
  rows = rng.normal(size=(5, 2)).astype(np.float32)
  ids = np.array([10, 11, 12, 13, 14], np.int32)
  keys = rng.integers(0, 5, size=(NUM_CLIENTS, 3)).astype(np.int32)
  selected, totals = _select_rows(list(keys), (rows, ids))
  assert str(_select_rows.type_signature.result[0]) == "{<float32[2],int32>*}@CLIENTS"
  for client_keys, seq, (row_sum, id_sum) in zip(keys, selected, totals):
    assert len(seq) == 3
    for k, element in zip(client_keys, seq):
      np.testing.assert_array_equal(np.asarray(element[0]), rows[k])
      assert int(element[1]) == ids[k]
    _close(row_sum, rows[client_keys].astype(np.float64).sum(axis=0))
    assert int(id_sum) == ids[client_keys].sum()
  bad = keys.copy()
  bad[1, 2] = 5
  with pytest.raises(ValueError, match="client 1 holds the key 5"):
    _select_rows(list(bad), (rows, ids))


# -------------------------------------------------------------- sequences

def _sum_squares_and_count(acc, batch):
  return acc[0] + jnp.sum(batch * batch, axis=0), acc[1] + 1


_REDUCE_ZERO = (np.zeros(DIM, np.float32), np.int32(0))


@fedjit.federated_computation(_at_clients(SEQ))
def _reduce_at_clients(data):
  return fedjit.sequence_reduce(data, _REDUCE_ZERO, _sum_squares_and_count)


@fedjit.federated_computation(_at_server(SEQ))
def _reduce_at_server(data):
  return fedjit.sequence_reduce(data, _REDUCE_ZERO, _sum_squares_and_count)


def _expected_reduce(batches):
  total = np.zeros(DIM)
  for b in batches:
    total += (b.astype(np.float64) ** 2).sum(axis=0)
  return total, len(batches)


def test_sequence_reduce_at_clients(backend):
  assert str(_reduce_at_clients.type_signature) == (
      "({float32[?,3]*}@CLIENTS -> {<float32[3],int32>}@CLIENTS)")
  data = _batches(BATCH_ROWS, seed=10)
  out = _reduce_at_clients(data)
  assert len(out) == len(BATCH_ROWS)
  for (total, count), batches in zip(out, data):
    expected_total, expected_count = _expected_reduce(batches)
    _close(total, expected_total)
    assert int(count) == expected_count


def test_sequence_reduce_at_server(backend):
  data = _batches([[4, 4, 2]], seed=11)[0]
  total, count = _reduce_at_server(data)
  expected_total, expected_count = _expected_reduce(data)
  _close(total, expected_total)
  assert int(count) == expected_count


@fedjit.federated_computation(_at_clients(SEQ))
def _map_at_clients_seq(data):
  return fedjit.sequence_map(lambda b: b * 2.0 + 1.0, data)


@fedjit.federated_computation(_at_clients(SEQ))
def _map_then_reduce_at_clients(data):
  # Row-wise maps keep padded rows at zero, so reduce sees only real data.
  absolute = fedjit.sequence_map(lambda b: jnp.abs(b) * 3.0, data)
  return fedjit.sequence_reduce(absolute, np.float32(0.0),
                                lambda acc, b: acc + jnp.sum(b))


@fedjit.federated_computation(_at_server(INT_PAIR_SEQ))
def _map_at_server_seq(data):
  return fedjit.sequence_map(lambda e: e * e, data)


def test_sequence_map_at_clients(backend):
  assert str(_map_at_clients_seq.type_signature) == (
      "({float32[?,3]*}@CLIENTS -> {float32[?,3]*}@CLIENTS)")
  data = _batches(BATCH_ROWS, seed=12)
  out = _map_at_clients_seq(data)
  assert len(out) == len(BATCH_ROWS)
  for got, batches in zip(out, data):
    assert len(got) == len(batches)
    for g, b in zip(got, batches):
      assert np.shape(g) == b.shape  # the smaller last batch keeps its size
      _close(g, b.astype(np.float64) * 2.0 + 1.0)


def test_sequence_map_then_reduce_at_clients(backend):
  data = _batches(BATCH_ROWS, seed=13)
  out = _map_then_reduce_at_clients(data)
  _close_lists(out, [sum(float(np.abs(b.astype(np.float64)).sum()) * 3.0 for b in c)
                     for c in data])


def test_sequence_map_at_server(backend):
  data = [np.array([1, -2], np.int32), np.array([3, 4], np.int32),
          np.array([-5, 0], np.int32)]
  out = _map_at_server_seq(data)
  assert len(out) == len(data)
  for g, e in zip(out, data):
    np.testing.assert_array_equal(g, e.astype(np.int64) ** 2)


@fedjit.federated_computation(_at_clients(INT_PAIR_SEQ))
def _sum_at_clients(data):
  return fedjit.sequence_sum(data)


@fedjit.federated_computation(_at_server(STRUCT_SEQ))
def _sum_at_server(data):
  return fedjit.sequence_sum(data)


def _int_pairs(counts, seed):
  rng = _rng(seed)
  return [[rng.integers(-50, 50, size=2).astype(np.int32) for _ in range(c)]
          for c in counts]


def test_sequence_sum_at_clients(backend):
  assert str(_sum_at_clients.type_signature) == (
      "({int32[2]*}@CLIENTS -> {int32[2]}@CLIENTS)")
  data = _int_pairs([3, 1, 0, 5, 2], seed=14)
  out = _sum_at_clients(data)
  assert len(out) == len(data)
  for got, elements in zip(out, data):
    expected = np.zeros(2, np.int64)
    for e in elements:
      expected += e
    np.testing.assert_array_equal(got, expected)


def test_sequence_sum_at_server_of_structures(backend):
  rng = _rng(15)
  data = [(rng.normal(size=2).astype(np.float32), np.int32(i * 3 - 4)) for i in range(4)]
  total, count = _sum_at_server(data)
  _close(total, np.sum([e[0].astype(np.float64) for e in data], axis=0))
  assert int(count) == sum(int(e[1]) for e in data)


@fedjit.jax_computation(SEQ)
def _unplaced_sequence_ops(ds):
  """The sequence intrinsics also apply to a Sequence inside a jax computation."""
  doubled = fedjit.sequence_map(lambda b: b * 2.0, ds)
  return fedjit.sequence_reduce(doubled, np.float32(0.0), lambda acc, b: acc + jnp.sum(b))


def test_sequence_intrinsics_on_an_unplaced_sequence(backend):
  batches = _batches([[4, 2]], seed=16)[0]
  expected = sum(float(b.astype(np.float64).sum()) for b in batches) * 2.0
  _close(_unplaced_sequence_ops(batches), expected)
  _close(_unplaced_sequence_ops([]), 0.0)


@fedjit.federated_computation(_at_clients(SEQ))
def _batch_sums(data):
  per_batch = fedjit.sequence_map(lambda b, m: jnp.sum((b * 2.0 + 1.0) * m[:, None]), data,
                                  with_mask=True)
  return fedjit.sequence_reduce(per_batch, np.float32(0.0), lambda acc, s: acc + s)


def test_sequence_map_dropping_the_batch_axis_without_mask_is_rejected():
  # Padding rows would leak into a per-batch reduction, so it must use the mask.
  with pytest.raises(TypeError, match="with_mask=True"):
    @fedjit.federated_computation(_at_clients(SEQ))
    def unmasked(data):
      return fedjit.sequence_map(lambda b: jnp.sum(b * 2.0 + 1.0), data)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_sequence_map_reducing_each_batch_ignores_padding(name):
  data = _batches(BATCH_ROWS, seed=17)
  expected = [sum(float((b.astype(np.float64) * 2.0 + 1.0).sum()) for b in c)
              for c in data]
  backend_name, options = BACKENDS[name]
  with fedjit.backend(backend_name, **options):
    _close_lists(_batch_sums(data), expected)


@fedjit.federated_computation(_at_clients(SEQ))
def _batch_sums_summed(data):
  per_batch = fedjit.sequence_map(lambda b, m: jnp.sum(b * m[:, None]), data, with_mask=True)
  return fedjit.sequence_sum(per_batch)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_sequence_sum_of_a_mapped_sequence_with_an_empty_client(name):
  assert str(_batch_sums_summed.type_signature) == (
      "({float32[?,3]*}@CLIENTS -> {float32}@CLIENTS)")
  data = _batches(BATCH_ROWS, seed=18)
  backend_name, options = BACKENDS[name]
  with fedjit.backend(backend_name, **options):
    out = _batch_sums_summed(data)
  _close_lists(out, [sum(float(b.astype(np.float64).sum()) for b in c) for c in data])


# ------------------------------------------------ Sequence.reduce and masks

LEARNING_RATE = 0.1


def _masked_sgd_step(w, batch, mask):
  x, y = batch
  err = (x @ w - y) * mask
  grad = 2.0 * (x.T @ err) / jnp.maximum(jnp.sum(mask), 1.0)
  return w - LEARNING_RATE * grad


def _unmasked_sgd_step(w, batch):
  x, y = batch
  err = x @ w - y
  grad = 2.0 * (x.T @ err) / x.shape[0]
  return w - LEARNING_RATE * grad


@fedjit.jax_computation(XY_SEQ, VEC)
def _train_masked(ds, w):
  return ds.reduce(w, _masked_sgd_step, with_mask=True)


@fedjit.jax_computation(XY_SEQ, VEC)
def _train_unmasked(ds, w):
  return ds.reduce(w, _unmasked_sgd_step)


@fedjit.federated_computation(_at_server(VEC), _at_clients(XY_SEQ))
def _train_clients_masked(w, data):
  return fedjit.federated_map(_train_masked, (data, fedjit.federated_broadcast(w)))


@fedjit.federated_computation(_at_server(VEC), _at_clients(XY_SEQ))
def _train_clients_unmasked(w, data):
  return fedjit.federated_map(_train_unmasked, (data, fedjit.federated_broadcast(w)))


def _numpy_sgd(batches, w):
  w = np.asarray(w, np.float64).copy()
  for x, y in batches:
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    grad = 2.0 * x64.T @ (x64 @ w - y64) / len(y64)
    w = w - LEARNING_RATE * grad
  return w


W0 = np.array([0.3, -0.2, 0.1], np.float32)


def test_reduce_with_mask_is_exact_on_every_backend(backend):
  data = _regression_batches(BATCH_ROWS, seed=19)
  out = _train_clients_masked(W0, data)
  _close_lists(out, [_numpy_sgd(c, W0) for c in data])


@pytest.mark.parametrize("name", VECTORIZED)
def test_reduce_with_mask_vectorized_matches_reference(name):
  data = _regression_batches(BATCH_ROWS, seed=20)
  with fedjit.backend("reference"):
    expected = _train_clients_masked(W0, data)
  backend_name, options = BACKENDS[name]
  with fedjit.backend(backend_name, **options):
    got = _train_clients_masked(W0, data)
  assert len(got) == len(expected) == len(BATCH_ROWS)
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(got[2], W0)  # no data: unchanged weights


@pytest.mark.parametrize("name", VECTORIZED)
def test_reduce_without_mask_matches_reference_when_batches_are_full(name):
  data = _regression_batches(FULL_BATCH_ROWS, seed=21)
  with fedjit.backend("reference"):
    expected = _train_clients_unmasked(W0, data)
  backend_name, options = BACKENDS[name]
  with fedjit.backend(backend_name, **options):
    got = _train_clients_unmasked(W0, data)
  # Equal up to float32 rounding: XLA fuses the step under jit (e.g. into
  # fused multiply-adds), so the last bit may differ from op-by-op execution.
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)
  _close_lists(expected, [_numpy_sgd(c, W0) for c in data])


def test_reduce_without_mask_sees_padding_of_partial_batches():
  """Contrast: ignoring the mask, a partial last batch's padding counts."""
  data = _regression_batches(BATCH_ROWS, seed=22)
  with fedjit.backend("reference"):
    expected = _train_clients_unmasked(W0, data)
  with fedjit.backend("vectorized"):
    got = _train_clients_unmasked(W0, data)
  # Client 1 has only full batches; client 0 ends with a batch of 2 (padded to 4).
  np.testing.assert_allclose(got[1], expected[1], rtol=1e-6, atol=1e-6)
  assert not np.allclose(got[0], expected[0], rtol=1e-4, atol=1e-4)


def _rows_plus_one(acc, batch):
  return acc + jnp.sum(batch + 1.0)


def _rows_plus_one_masked(acc, batch, mask):
  return acc + jnp.sum(jnp.sum(batch + 1.0, axis=1) * mask)


@fedjit.federated_computation(_at_clients(SEQ))
def _reduce_with_and_without_mask(data):
  return (fedjit.sequence_reduce(data, np.float32(0), _rows_plus_one_masked, with_mask=True),
          fedjit.sequence_reduce(data, np.float32(0), _rows_plus_one))


def test_sequence_reduce_with_mask_is_exact_on_every_backend(backend):
  data = _batches(BATCH_ROWS, seed=25)
  masked, _ = _reduce_with_and_without_mask(data)
  # Σ over real rows of (Σ row + DIM), in float64.
  expected = [sum(b.astype(np.float64).sum() + DIM * len(b) for b in c) for c in data]
  _close_lists(masked, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", VECTORIZED)
def test_sequence_reduce_with_mask_vectorized_matches_reference(name):
  data = _batches(BATCH_ROWS, seed=26)
  with fedjit.backend("reference"):
    expected_masked, expected_unmasked = _reduce_with_and_without_mask(data)
  backend_name, options = BACKENDS[name]
  with fedjit.backend(backend_name, **options):
    masked, unmasked = _reduce_with_and_without_mask(data)
  _close_lists(masked, expected_masked)
  # Contrast: without the mask, the 2 padded rows of client 0's last batch
  # (2 rows, padded to 4) each add DIM.
  _close(unmasked[0] - expected_unmasked[0], 2 * DIM)


def test_sequence_reduce_with_mask_on_a_sequence_in_a_jax_computation(backend):
  @fedjit.jax_computation(SEQ)
  def count_rows(ds):
    return fedjit.sequence_reduce(ds, np.float32(0), lambda n, b, m: n + jnp.sum(m),
                                  with_mask=True)
  data = _batches([[4, 4, 2]], seed=27)[0]
  _close(count_rows(data), 10.0)


# ------------------------------------------------------------- structures

@fedjit.jax_computation(VEC, F32)
def _describe(x, a):
  return {"scaled": a * x, "stats": Point(jnp.sum(x), jnp.max(x)), "pair": (a, a + 1.0),
          "list": [x - 1.0]}


@fedjit.federated_computation(_at_clients(VEC), _at_clients(F32))
def _structured(x, a):
  described = fedjit.federated_map(_describe, (x, a))
  return described, fedjit.federated_mean(described)


PointType = fedjit.StructType([("x", VEC), ("y", F32)], container=Point)


@fedjit.federated_computation(_at_clients(PointType))
def _mean_of_points(p):
  return fedjit.federated_mean(p)


def _check_described(d, x, a):
  # Key order follows JAX's pytrees (sorted); the container type is kept.
  assert type(d) is dict and set(d) == {"scaled", "stats", "pair", "list"}
  assert type(d["stats"]) is Point
  assert type(d["pair"]) is tuple
  assert type(d["list"]) is list
  _close(d["scaled"], a * x)
  _close(d["stats"].x, x.sum())
  _close(d["stats"].y, x.max())
  _close(d["pair"][0], a)
  _close(d["pair"][1], a + 1.0)
  _close(d["list"][0], x - 1.0)


def test_structures_pass_through_map_and_mean(backend):
  rng = _rng(23)
  x = rng.normal(size=(NUM_CLIENTS, DIM)).astype(np.float32)
  a = rng.normal(size=NUM_CLIENTS).astype(np.float32)
  per_client, mean = _structured(list(x), list(a))
  x64, a64 = x.astype(np.float64), a.astype(np.float64)
  assert isinstance(per_client, list) and len(per_client) == NUM_CLIENTS
  for d, xi, ai in zip(per_client, x64, a64):
    _check_described(d, xi, ai)
  assert type(mean) is dict and type(mean["stats"]) is Point
  assert type(mean["pair"]) is tuple and type(mean["list"]) is list
  _close(mean["scaled"], (a64[:, None] * x64).mean(axis=0))
  _close(mean["stats"].x, x64.sum(axis=1).mean())
  _close(mean["stats"].y, x64.max(axis=1).mean())
  _close(mean["pair"][0], a64.mean())
  _close(mean["pair"][1], (a64 + 1.0).mean())
  _close(mean["list"][0], (x64 - 1.0).mean(axis=0))


def test_client_values_as_a_list_or_with_a_leading_client_axis(backend):
  rng = _rng(24)
  x = rng.normal(size=(NUM_CLIENTS, DIM)).astype(np.float32)
  a = rng.normal(size=NUM_CLIENTS).astype(np.float32)
  from_lists = _structured(list(x), list(a))
  from_arrays = _structured(x, a)
  for d_list, d_array, xi, ai in zip(from_lists[0], from_arrays[0], x, a):
    _check_described(d_list, xi.astype(np.float64), float(ai))
    _check_described(d_array, xi.astype(np.float64), float(ai))
  _close(from_arrays[1]["scaled"], from_lists[1]["scaled"])
  # A structure of arrays with a leading client axis, or a list of structures.
  y = rng.normal(size=NUM_CLIENTS).astype(np.float32)
  expected = Point(x.astype(np.float64).mean(axis=0), y.astype(np.float64).mean())
  for points in (Point(x, y), [Point(xi, yi) for xi, yi in zip(x, y)],
                 [{"x": xi, "y": yi} for xi, yi in zip(x, y)]):
    mean = _mean_of_points(points)
    assert type(mean) is Point
    _close(mean.x, expected.x)
    _close(mean.y, expected.y)


# ------------------------------------------------------------ client errors

@fedjit.jax_computation(fedjit.TensorType(np.float32, [None]))
def _picky_norm(x):
  # A Python-level check: symbolic `?` sizes and the other clients' sizes pass.
  if x.shape[0] == 5:
    raise ValueError("vectors of length 5 are not supported")
  return jnp.sqrt(jnp.sum(x * x))


@fedjit.federated_computation(_at_clients(fedjit.TensorType(np.float32, [None])))
def _norms(x):
  return fedjit.federated_map(_picky_norm, x)


def test_client_error_names_the_computation_and_the_client():
  data = [np.ones(n, np.float32) for n in (2, 3, 5, 1)]
  with fedjit.backend("reference"):
    ok = _norms(data[:2] + data[3:])
    _close_lists(ok, [np.sqrt(2.0), np.sqrt(3.0), 1.0])
    with pytest.raises(fedjit.ClientComputationError) as info:
      _norms(data)
  error = info.value
  message = str(error)
  assert "_picky_norm" in message
  assert "client 2" in message
  assert "vectors of length 5 are not supported" in message
  assert error.computation == "_picky_norm"
  assert error.client_index == 2
  assert isinstance(error.__cause__, ValueError)


# ---------------------------------------------- federated_map_all_equal, secure_select

@fedjit.jax_computation(F32)
def _double(x):
  return 2.0 * x


@fedjit.federated_computation(_at_server(F32), _at_clients(F32))
def _all_equal_map(s, c):
  at_clients = fedjit.federated_map_all_equal(_double, fedjit.federated_broadcast(s))
  return at_clients, fedjit.federated_sum(fedjit.federated_map(_double, at_clients)), c


def test_federated_map_all_equal_keeps_the_value_all_equal(backend):
  assert str(_all_equal_map.type_signature.result) == (
      "<float32@CLIENTS,float32@SERVER,{float32}@CLIENTS>")
  at_clients, total, _ = _all_equal_map(1.5, [0.0] * NUM_CLIENTS)
  _close(at_clients, 3.0)
  _close(total, 6.0 * NUM_CLIENTS)
  with pytest.raises(fedjit.PlacementError, match="all-equal value at CLIENTS"):
    fedjit.federated_computation(_at_clients(F32))(
        lambda c: fedjit.federated_map_all_equal(_double, c))


@fedjit.federated_computation(_at_clients(fedjit.TensorType(np.int32, [3])), _at_server(_TABLE_T))
def _secure_select_rows(keys, table):
  max_key = fedjit.federated_value(np.int32(4), SERVER)
  return fedjit.federated_secure_select(keys, max_key, table, _table_row)


def test_federated_secure_select_selects_as_federated_select(backend):
  rows = np.arange(10, dtype=np.float32).reshape(5, 2)
  ids = np.array([10, 11, 12, 13, 14], np.int32)
  keys = np.array([[4, 0, 0]] * NUM_CLIENTS, np.int32)
  for seq in _secure_select_rows(list(keys), (rows, ids)):
    assert [int(e[1]) for e in seq] == [14, 10, 10]

"""A third backend written only against the public Backend protocol.

`LoggingBackend` uses nothing but `fedjit`'s public names (`fedjit.Backend`,
`fedjit.core.Ops`, `fedjit.core.evaluate`, `fedjit.core.register_backend`, `fedjit.core.executing`,
`fedjit.core.param_types`, `fedjit.core.to_reference`/`from_reference` at its edge,
`fedjit.core.struct_fields`/`build_container` for structures). Its intrinsics are
written here in NumPy: a `{T}@CLIENTS` value is a Python list with one NumPy
pytree per client. Every intrinsic call is recorded in `backend.log` as
`(name, result type)`.

It is registered as "logging"; tests/core/test_intrinsics.py and
tests/compat/test_execution.py run their intrinsic tests on it too (through
`conftest.use_third_backend()`), and the tests below run a FedAvg round on
it against the reference backend.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

import fedjit

CLIENTS = fedjit.CLIENTS
SERVER = fedjit.SERVER


def _np(tree):
  """jax arrays -> NumPy arrays, keeping containers and sequences."""
  return jax.tree_util.tree_map(
      lambda x: x if isinstance(x, fedjit.Sequence) else np.asarray(x), tree,
      is_leaf=lambda x: isinstance(x, fedjit.Sequence))


def _need_clients(n, what):
  if n is None:
    raise fedjit.FederatedTypeError(
        f"{what} needs the number of clients, but no argument is placed at CLIENTS. "
        f"Pass at least one {{T}}@CLIENTS argument to the computation.")


def _leaves(t, value):
  """The tensors of `value` (of type `t`) in the type's order."""
  if isinstance(t, fedjit.TensorType):
    return [value]
  return [l for ft, v in zip(t.types(), fedjit.core.struct_fields(t, value))
          for l in _leaves(ft, v)]


def _tensor_types(t):
  if isinstance(t, fedjit.TensorType):
    return [t]
  return [l for e in t.types() for l in _tensor_types(e)]


def _rebuild(t, leaves):
  it = iter(leaves)

  def build(t):
    if isinstance(t, fedjit.TensorType):
      return next(it)
    return fedjit.core.build_container(t, [build(e) for e in t.types()])
  return build(t)


def _logged(method):
  @functools.wraps(method)
  def wrapper(self, node, *args):
    self.log.append((method.__name__, str(node.type)))
    return method(self, node, *args)
  return wrapper


class LoggingOps(fedjit.core.Ops):
  """Every intrinsic in NumPy over lists of client values; each call logged."""

  def __init__(self, num_clients, log):
    self.n = num_clients
    self.log = log

  def _everywhere(self, v):
    return [v] * (self.n if self.n is not None else 1)

  def call(self, node, arg):
    return _np(node.attrs["fn"].invoke(arg))

  def select(self, node, source_type, value):
    i = node.attrs["index"]
    if isinstance(source_type, fedjit.FederatedType):
      if source_type.placement == CLIENTS:
        return [fedjit.core.struct_fields(source_type.member, m)[i] for m in value]
      return fedjit.core.struct_fields(source_type.member, value)[i]
    return fedjit.core.struct_fields(source_type, value)[i]

  @_logged
  def federated_value(self, node, v):
    return v if node.type.placement == SERVER else self._everywhere(v)

  @_logged
  def federated_broadcast(self, node, v):
    return self._everywhere(v)

  @_logged
  def federated_zip(self, node, v):
    if node.type.placement == SERVER:
      return v
    st = node.type.member
    return [fedjit.core.build_container(st, list(ms)) for ms in zip(*fedjit.core.struct_fields(st, v))]

  @_logged
  def federated_map(self, node, v):
    fn = node.attrs["fn"]
    if node.type.placement == SERVER:
      return _np(fn.invoke(v))
    return [_np(fn.invoke(m)) for m in v]

  @_logged
  def federated_eval(self, node):
    fn = node.attrs["fn"]
    if node.type.placement == SERVER:
      return _np(fn.invoke(None))
    return [_np(fn.invoke(None)) for _ in range(self.n if self.n is not None else 1)]

  @_logged
  def federated_mean(self, node, v, w=None):
    # Σ wᵢvᵢ / Σ wᵢ (unweighted: Σ vᵢ / n) in the values' own dtype.
    if w is not None:
      _need_clients(self.n, "federated_mean with weights")

    def mean(*xs):
      dtype = np.asarray(xs[0]).dtype
      if w is None:
        return (sum(np.asarray(x) for x in xs) / dtype.type(len(xs))).astype(dtype)
      ws = [np.asarray(wi, dtype) for wi in w]
      total = sum(wi * np.asarray(x) for wi, x in zip(ws, xs))
      return (total / sum(ws)).astype(dtype)
    return jax.tree_util.tree_map(mean, *v)

  @_logged
  def federated_sum(self, node, v):
    _need_clients(self.n, "federated_sum")
    return jax.tree_util.tree_map(lambda *xs: functools.reduce(np.add, xs), *v)

  @_logged
  def federated_min(self, node, v):
    return jax.tree_util.tree_map(lambda *xs: functools.reduce(np.minimum, xs), *v)

  @_logged
  def federated_max(self, node, v):
    return jax.tree_util.tree_map(lambda *xs: functools.reduce(np.maximum, xs), *v)

  @_logged
  def federated_collect(self, node, v):
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *v)

  @_logged
  def federated_select(self, node, keys, max_key, server):
    fn, top = node.attrs["fn"], int(max_key)
    out = []
    for i, k in enumerate(keys):
      k = np.asarray(k)
      bad = np.flatnonzero((k < 0) | (k > top))
      if bad.size:
        raise ValueError(f"fedjit.federated_select: client {i} holds the key "
                         f"{int(k[bad[0]])}, outside [0, max_key] = [0, {top}].")
      elements = [_np(fn.invoke((server, key))) for key in k]
      out.append(fedjit.core.to_reference(node.type.member, elements))  # a fedjit.Sequence
    return out

  def _secure(self, node, v, bound):
    name = node.attrs["name"]
    self.log.append((name, str(node.type)))
    _need_clients(self.n, name)
    member = node.type.member
    columns = [_leaves(member, m) for m in v]  # [client][tensor]
    out = []
    for j, (b, leaf_type) in enumerate(zip(list(bound), _tensor_types(member))):
      b = int(np.asarray(b).reshape(()))
      xs = [np.asarray(c[j]).astype(np.int64) for c in columns]
      if name == "federated_secure_modular_sum":
        if b < 1:
          raise ValueError(f"fedjit.{name} expects modulus to be a positive integer, got {b}.")
        out.append((sum(np.mod(x, b) for x in xs) % b).astype(leaf_type.dtype))
        continue
      if name == "federated_secure_sum_bitwidth":
        if not 0 <= b <= 62:
          raise ValueError(f"fedjit.{name} expects bitwidth to be an integer in [0, 62], "
                           f"got {b}.")
        limit = 2 ** b - 1
      else:
        limit = b
      for i, x in enumerate(xs):
        bad = ((x < 0) | (x > limit)).reshape(-1)
        if bad.any():
          raise ValueError(f"fedjit.{name}: client {i} holds the value "
                           f"{int(x.reshape(-1)[np.argmax(bad)])}, outside the range "
                           f"[0, {limit}] that the secure sum allows.")
      out.append(sum(xs).astype(leaf_type.dtype))
    return _rebuild(member, out)

  federated_secure_sum = _secure
  federated_secure_sum_bitwidth = _secure
  federated_secure_modular_sum = _secure

  @_logged
  def federated_aggregate(self, node, v, zero):
    # Two groups (the first ceil(n/2) clients and the rest), each accumulated
    # from `zero`, then merged and reported: what the other backends do.
    _need_clients(self.n, "federated_aggregate")
    accumulate = node.attrs["accumulate"]

    def fold(members):
      acc = zero
      for m in members:
        acc = _np(accumulate.invoke((acc, m)))
      return acc
    half = (len(v) + 1) // 2
    acc = fold(v[:half])
    if half < len(v):
      acc = _np(node.attrs["merge"].invoke((acc, fold(v[half:]))))
    return _np(node.attrs["report"].invoke(acc))


class LoggingBackend(fedjit.Backend):
  """Runs computations with `LoggingOps`; `log` lists every intrinsic call."""

  name = "logging"

  def __init__(self):
    self.log: list[tuple[str, str]] = []

  def __repr__(self):
    return "LoggingBackend()"

  def run(self, comp, args):
    types = fedjit.core.param_types(comp)
    reps = [_np(fedjit.core.to_reference(t, a, f"argument {i} of '{comp.name}'"))
            for i, (t, a) in enumerate(zip(types, args))]
    with fedjit.core.executing():
      if isinstance(comp, fedjit.FederatedComputation):
        sizes = set()
        for t, r in zip(types, reps):
          _count_clients(t, r, sizes)
        if len(sizes) > 1:
          raise fedjit.FederatedTypeError(
              f"All {{T}}@CLIENTS arguments must hold one value per client, got "
              f"{sorted(sizes)} clients.")
        n = sizes.pop() if sizes else None
        reps = [_replicate(t, r, n) for t, r in zip(types, reps)]
        result = comp.type_signature.result
        if n is None and _has_client_lists(result):
          _need_clients(n, f"returning a value of type {result}")
        out = fedjit.core.evaluate(comp.graph, reps, LoggingOps(n, self.log))
      else:
        out = comp.fn(*reps)
    return fedjit.core.from_reference(comp.type_signature.result, out)


def _client_list(t):
  return (isinstance(t, fedjit.FederatedType) and t.placement == CLIENTS
          and not t.all_equal)


def _count_clients(t, rep, sizes):
  """Adds the number of clients of each `{T}@CLIENTS` value in `rep` to `sizes`."""
  if _client_list(t):
    sizes.add(len(rep))
  elif isinstance(t, fedjit.StructType):
    for ft, r in zip(t.types(), fedjit.core.struct_fields(t, rep)):
      _count_clients(ft, r, sizes)


def _has_client_lists(t):
  if _client_list(t):
    return True
  return isinstance(t, fedjit.StructType) and any(_has_client_lists(e) for e in t.types())


def _replicate(t, rep, n):
  """An all-equal `T@CLIENTS` argument (given once) as one member per client."""
  if isinstance(t, fedjit.FederatedType):
    if t.placement == CLIENTS and t.all_equal:
      return [rep] * (n if n is not None else 1)
    return rep
  if isinstance(t, fedjit.StructType):
    return fedjit.core.build_container(
        t, [_replicate(ft, r, n) for ft, r in zip(t.types(), fedjit.core.struct_fields(t, rep))])
  return rep


def _create(**options):
  if options:
    raise TypeError(f"The logging backend takes no options, got {sorted(options)}.")
  return LoggingBackend()


fedjit.core.register_backend("logging", _create)


# ------------------------------------------------------------------ tests

def _fed_avg_round(backend_name, clients):
  import optax
  from conftest import softmax3_model
  from fedjit import learning
  process = learning.algorithms.build_weighted_fed_avg(
      softmax3_model, client_optimizer_fn=optax.sgd(0.1),
      server_optimizer_fn=optax.sgd(1.0))
  with fedjit.backend(backend_name) as b:
    state = process.initialize()
    out = process.next(state, clients)
  return out, b


def test_logging_backend_is_selected_by_name():
  with fedjit.backend("logging") as b:
    assert isinstance(b, LoggingBackend)
    assert fedjit.get_backend() is b
    x = fedjit.FederatedType(np.float32, CLIENTS)
    mean = fedjit.federated_computation(x)(lambda v: fedjit.federated_mean(v))
    np.testing.assert_allclose(mean([1.0, 2.0, 6.0]), 3.0)
  assert b.log == [("federated_mean", "float32@SERVER")]


def test_fed_avg_round_matches_the_reference_backend():
  from conftest import batched_clients
  clients = batched_clients([4, 6, 2, 8], seed=3)
  ref, _ = _fed_avg_round("reference", clients)
  got, b = _fed_avg_round("logging", clients)
  ref_leaves = jax.tree_util.tree_leaves((ref.state, ref.metrics))
  got_leaves = jax.tree_util.tree_leaves((got.state, got.metrics))
  assert len(got_leaves) == len(ref_leaves) > 0
  for g, r in zip(got_leaves, ref_leaves):
    np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-5, atol=1e-6)
  names = {name for name, _ in b.log}
  # The round's stages: broadcast the model, train on each client, average
  # the updates weighted by examples, and sum the clients' metrics.
  assert {"federated_broadcast", "federated_map", "federated_mean",
          "federated_sum"} <= names, b.log
  assert any(n == "federated_mean" and t.endswith("@SERVER") for n, t in b.log)
  assert all(name.startswith("federated_") for name in names)

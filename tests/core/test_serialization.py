"""`fedjit.serialize` and `fedjit.deserialize`.

A serialized computation is the magic bytes, a JSON header and binary blobs
(StableHLO and raw constants), never pickle. Round trips keep the type
signature exactly and give the original's results on every backend; the
examples' FedAvg computations run, read back, in a fresh Python process that
never imported the code that defined them.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import pathlib
import pickle
import struct
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

import fedjit

CLIENTS = fedjit.CLIENTS
SERVER = fedjit.SERVER

BACKENDS = {
    "reference": ("reference", {}),
    "vectorized": ("vectorized", {}),
    "vectorized-vmap": ("vectorized", {"client_map": "vmap"}),
    "vectorized-map-chunk2": ("vectorized", {"client_map": "map", "chunk_size": 2}),
}

MAGIC = b"FEDJIT\x00\x01"
EXAMPLE_PATH = pathlib.Path(__file__).resolve().parents[2] / "examples" / "custom_fedavg.py"
EXAMPLE_MODULE = "custom_fedavg"

DIM = 3
VEC = fedjit.TensorType(np.float32, [DIM])
ROWS = fedjit.TensorType(np.float32, [None, DIM])
XY_SEQ = fedjit.SequenceType((ROWS, fedjit.TensorType(np.float32, [None])))
# Batches per client: unequal numbers, a smaller last batch, one client empty.
BATCH_ROWS = [[4, 4, 2], [4], [], [4, 1]]

Stats = collections.namedtuple("Stats", ["mean", "count"])


@pytest.fixture(params=list(BACKENDS))
def backend(request):
  """Runs the test under one backend configuration."""
  name, options = BACKENDS[request.param]
  with fedjit.backend(name, **options) as b:
    yield b


def _regression_batches(rows, seed=0):
  rng = np.random.default_rng(seed)
  return [[(rng.normal(size=(r, DIM)).astype(np.float32),
            rng.normal(size=(r,)).astype(np.float32)) for r in client]
          for client in rows]


def _header(data: bytes) -> tuple[dict, int]:
  """The parsed JSON header of serialized bytes, and where the blobs start."""
  assert data[:len(MAGIC)] == MAGIC
  (n,) = struct.unpack("<Q", data[len(MAGIC):len(MAGIC) + 8])
  start = len(MAGIC) + 8
  header = json.loads(data[start:start + n].decode("utf-8"))
  return header, start + n


def _assert_same(actual, expected, rtol=1e-6, atol=1e-6):
  """Same structure (containers by type name and fields) and close values."""
  if isinstance(expected, dict):
    assert type(actual) is type(expected)
    assert list(actual) == list(expected)
    for k in expected:
      _assert_same(actual[k], expected[k], rtol, atol)
  elif isinstance(expected, tuple) and hasattr(expected, "_fields"):
    # A namedtuple comes back as a namedtuple of the same name and fields.
    assert type(actual).__name__ == type(expected).__name__
    assert actual._fields == expected._fields
    for a, e in zip(actual, expected):
      _assert_same(a, e, rtol, atol)
  elif isinstance(expected, (list, tuple)):
    assert type(actual) is type(expected)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
      _assert_same(a, e, rtol, atol)
  else:
    assert np.asarray(actual).dtype == np.asarray(expected).dtype
    assert np.shape(actual) == np.shape(expected)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def _round_trip(comp):
  data = fedjit.serialize(comp)
  assert isinstance(data, bytes)
  restored = fedjit.deserialize(data)
  assert isinstance(restored, type(comp))
  assert restored.name == comp.name
  assert str(restored.type_signature) == str(comp.type_signature)
  return restored


# ----------------------------------------------------- jax computations

@fedjit.jax_computation(ROWS, VEC)
def _affine(x, w):
  return {"y": jnp.tanh(x @ w) + 1.0, "total": jnp.sum(x), "shape": (jnp.sum(w), w * 2.0)}


def _masked_sgd_step(w, batch, mask):
  x, y = batch
  err = (x @ w - y) * mask
  return w - 0.1 * 2.0 * (x.T @ err) / jnp.maximum(jnp.sum(mask), 1.0)


@fedjit.jax_computation(XY_SEQ, VEC)
def _train(ds, w):
  return ds.reduce(w, _masked_sgd_step, with_mask=True)


def test_jax_computation_round_trip(backend):
  restored = _round_trip(_affine)
  assert str(restored.type_signature) == (
      "(<x=float32[?,3],w=float32[3]> -> "
      "<shape=<float32,float32[3]>,total=float32,y=float32[?]>)")
  rng = np.random.default_rng(1)
  w = rng.normal(size=DIM).astype(np.float32)
  for rows in (5, 2, 1):  # the `?` size is symbolic in the StableHLO
    x = rng.normal(size=(rows, DIM)).astype(np.float32)
    _assert_same(restored(x, w), _affine(x, w))
    # And against NumPy, independently of fedjit.
    np.testing.assert_allclose(restored(x, w)["y"],
                               np.tanh(x.astype(np.float64) @ w) + 1.0, rtol=1e-5)


def test_jax_computation_with_sequences_round_trip(backend):
  restored = _round_trip(_train)
  w = np.array([0.2, -0.1, 0.4], np.float32)
  for batches in _regression_batches(BATCH_ROWS, seed=2):
    _assert_same(restored(batches, w), _train(batches, w), rtol=1e-5, atol=1e-6)


def test_restored_jax_computation_inside_a_federated_computation(backend):
  restored = _round_trip(_affine)

  @fedjit.federated_computation(fedjit.FederatedType(VEC, CLIENTS))
  def apply_restored(w):
    x = fedjit.federated_value(np.ones((2, DIM), np.float32), CLIENTS)
    return fedjit.federated_map(restored, (x, w))

  ws = np.arange(6, dtype=np.float32).reshape(2, DIM) / 10.0
  out = apply_restored(list(ws))
  assert len(out) == 2
  for got, w in zip(out, ws):
    _assert_same(got, _affine(np.ones((2, DIM), np.float32), w), rtol=1e-5)


def test_serializing_a_restored_computation_again():
  twice = _round_trip(_round_trip(_affine))
  x = np.ones((3, DIM), np.float32)
  w = np.array([1.0, 2.0, 3.0], np.float32)
  _assert_same(twice(x, w), _affine(x, w))


def test_polymorphic_jax_computation_cannot_be_serialized():
  polymorphic = fedjit.jax_computation(lambda x: x + 1.0)
  with pytest.raises(TypeError, match="declare them"):
    fedjit.serialize(polymorphic)


# ----------------------------------------------- federated computations

@fedjit.federated_computation(fedjit.FederatedType(VEC, SERVER),
                              fedjit.FederatedType(XY_SEQ, CLIENTS))
def _train_round(w, data):
  client_w = fedjit.federated_map(_train, (data, fedjit.federated_broadcast(w)))
  counts = fedjit.sequence_reduce(data, np.int32(0), lambda n, batch: n + 1)
  return fedjit.federated_mean(client_w), client_w, counts


def test_federated_computation_with_sequences_round_trip(backend):
  restored = _round_trip(_train_round)
  assert str(restored.type_signature) == (
      "(<w=float32[3]@SERVER,data={<float32[?,3],float32[?]>*}@CLIENTS> -> "
      "<float32[3]@SERVER,{float32[3]}@CLIENTS,{int32}@CLIENTS>)")
  data = _regression_batches(BATCH_ROWS, seed=3)
  w = np.array([0.3, 0.0, -0.2], np.float32)
  got = restored(w, data)
  _assert_same(got, _train_round(w, data), rtol=1e-5, atol=1e-6)
  assert [int(n) for n in got[2]] == [len(c) for c in BATCH_ROWS]
  np.testing.assert_array_equal(got[1][2], w)  # the client without data
  # And against plain NumPy SGD on each client's real examples.
  expected = []
  for batches in data:
    wi = w.astype(np.float64)
    for x, y in batches:
      x64, y64 = x.astype(np.float64), y.astype(np.float64)
      wi = wi - 0.1 * 2.0 * x64.T @ (x64 @ wi - y64) / len(y64)
    expected.append(wi)
  for g, e in zip(got[1], expected):
    np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got[0], np.mean(expected, axis=0), rtol=1e-5, atol=1e-5)


@fedjit.federated_computation(fedjit.FederatedType(VEC, CLIENTS))
def _aggregate_with_constant(x):
  offset = fedjit.federated_value(np.array([1.0, -1.0, 0.5], np.float32), CLIENTS)
  shifted = fedjit.federated_map(lambda a, b: a + b, (x, offset))
  zero = (np.zeros(DIM, np.float32), np.int32(0))
  return fedjit.federated_aggregate(
      shifted, zero,
      lambda acc, v: (acc[0] + v, acc[1] + 1),
      lambda a, b: (a[0] + b[0], a[1] + b[1]),
      lambda acc: (acc[0] / acc[1].astype(jnp.float32), acc[1]))


def test_federated_aggregate_with_a_constant_round_trip(backend):
  restored = _round_trip(_aggregate_with_constant)
  assert str(restored.type_signature) == (
      "({float32[3]}@CLIENTS -> <float32[3],int32>@SERVER)")
  header, _ = _header(fedjit.serialize(_aggregate_with_constant))
  ops = [node["op"] for node in header["graph"]["nodes"]]
  assert "constant" in ops
  x = np.random.default_rng(4).normal(size=(5, DIM)).astype(np.float32)
  got = restored(list(x))
  _assert_same(got, _aggregate_with_constant(list(x)))
  expected_mean = (x.astype(np.float64) + np.array([1.0, -1.0, 0.5])).mean(axis=0)
  np.testing.assert_allclose(got[0], expected_mean, rtol=1e-5)
  assert int(got[1]) == 5


@fedjit.federated_computation(fedjit.FederatedType(VEC, CLIENTS))
def _aggregate_namedtuple(x):
  zero = Stats(np.zeros(DIM, np.float32), np.int32(0))
  return fedjit.federated_aggregate(
      x, zero,
      lambda acc, v: Stats(acc.mean + v, acc.count + 1),
      lambda a, b: Stats(a.mean + b.mean, a.count + b.count),
      lambda acc: Stats(acc.mean / acc.count.astype(jnp.float32), acc.count))


@pytest.mark.parametrize("name", list(BACKENDS))
def test_federated_aggregate_with_a_namedtuple_accumulator_round_trip(name):
  restored = _round_trip(_aggregate_namedtuple)
  assert str(restored.type_signature) == (
      "({float32[3]}@CLIENTS -> <mean=float32[3],count=int32>@SERVER)")
  x = np.random.default_rng(5).normal(size=(4, DIM)).astype(np.float32)
  backend_name, options = BACKENDS[name]
  with fedjit.backend(backend_name, **options):
    got = restored(list(x))
  assert type(got).__name__ == "Stats" and got._fields == ("mean", "count")
  np.testing.assert_allclose(got.mean, x.astype(np.float64).mean(axis=0), rtol=1e-5)
  assert int(got.count) == 4


@fedjit.federated_computation
def _no_arguments():
  return fedjit.federated_value(Stats(np.float32(2.5), np.int32(7)), SERVER)


def test_federated_computation_without_arguments_round_trip(backend):
  restored = _round_trip(_no_arguments)
  assert str(restored.type_signature) == "( -> <mean=float32,count=int32>@SERVER)"
  _assert_same(restored(), Stats(np.float32(2.5), np.int32(7)))


# ------------------------------------------------------------ the format

def test_format_is_a_json_header_and_blobs_without_pickle(monkeypatch):
  data = fedjit.serialize(_train_round)
  header, base = _header(data)
  assert header["kind"] == "federated"
  assert header["name"] == "_train_round"
  assert isinstance(header["format"], int)
  # Every jax computation is a blob; the blobs tile the rest of the data.
  assert {c["name"] for c in header["computations"]} >= {"_train"}
  end = base
  for offset, length in header["blobs"]:
    assert base + offset == end
    blob = data[base + offset:base + offset + length]
    assert not (blob[:1] == b"\x80" and blob[1:2] in [bytes([p]) for p in range(2, 6)])
    end += length
  assert end == len(data)
  # (No search for b"pickle" in the bytes: StableHLO keeps source locations,
  # e.g. this test's name.) Reading the data back must not unpickle anything.

  def no_pickle(*args, **kwargs):
    raise AssertionError("deserialize used pickle")
  for name in ("load", "loads", "Unpickler"):
    monkeypatch.setattr(pickle, name, no_pickle)
  restored = fedjit.deserialize(data)
  assert str(restored.type_signature) == str(_train_round.type_signature)


@pytest.mark.parametrize("garbage", [
    b"", b"not a fedjit computation", b"FEDJIT", b"\x80\x04\x95" + b"\x00" * 40,
    MAGIC[::-1] + b"\x00" * 16,
])
def test_deserialize_garbage_raises_value_error(garbage):
  with pytest.raises(ValueError, match="Not a serialized fedjit computation"):
    fedjit.deserialize(garbage)


def test_deserialize_unknown_format_version_raises_value_error():
  data = fedjit.serialize(_affine)
  header, base = _header(data)
  header["format"] = 999
  head = json.dumps(header).encode("utf-8")
  with pytest.raises(ValueError, match="format 999"):
    fedjit.deserialize(MAGIC + struct.pack("<Q", len(head)) + head + data[base:])


def _corrupted(kind: str) -> bytes:
  data = fedjit.serialize(_affine)
  header, base = _header(data)
  if kind == "magic only":
    return data[:len(MAGIC)]
  if kind == "short length":
    return data[:len(MAGIC) + 3]
  if kind == "truncated header":
    return data[:(len(MAGIC) + 8 + base) // 2]
  if kind == "truncated blobs":
    return data[:base + 10]
  if kind == "header not an object":
    return MAGIC + struct.pack("<Q", 2) + b"[]"
  if kind == "header without kind":
    del header["kind"]
    head = json.dumps(header).encode("utf-8")
    return MAGIC + struct.pack("<Q", len(head)) + head + data[base:]
  raise AssertionError(kind)


@pytest.mark.parametrize("kind", [
    "magic only", "short length", "truncated header", "truncated blobs",
    "header not an object", "header without kind"])
def test_deserialize_corrupted_data_raises_value_error(kind):
  with pytest.raises(ValueError, match="(?i)serialized"):
    fedjit.deserialize(_corrupted(kind))


# ---------------------------------- the examples' FedAvg in a fresh process

@pytest.fixture(scope="module")
def fedavg_example():
  """examples/custom_fedavg.py, imported from its path."""
  spec = importlib.util.spec_from_file_location(EXAMPLE_MODULE, EXAMPLE_PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _emnist_like_clients(seed=5):
  """Clients with 45, 20, 0 and 7 examples, in batches of up to 20."""
  rng = np.random.default_rng(seed)
  clients = []
  for n in (45, 20, 0, 7):
    x = rng.random((n, 784)).astype(np.float32)
    y = rng.integers(0, 10, (n, 1)).astype(np.int32)
    clients.append([(x[i:i + 20], y[i:i + 20]) for i in range(0, n, 20)])
  return clients


_SUBPROCESS_SCRIPT = textwrap.dedent("""
    import pickle
    import sys

    import numpy as np

    import fedjit

    assert not any("custom_fedavg" in m for m in sys.modules), sorted(sys.modules)
    assert "optax" not in sys.modules

    def no_pickle(*args, **kwargs):
      raise AssertionError("pickle was used")
    pickle.load = pickle.loads = pickle.Unpickler = no_pickle

    directory = {directory!r}
    with open(directory + "/initialize.fedjit", "rb") as f:
      initialize = fedjit.deserialize(f.read())
    with open(directory + "/next.fedjit", "rb") as f:
      next_fn = fedjit.deserialize(f.read())
    saved = np.load(directory + "/data.npz")
    data = [[(saved[f"x_{{i}}_{{j}}"], saved[f"y_{{i}}_{{j}}"]) for j in range(int(n))]
            for i, n in enumerate(saved["num_batches"])]
    state = initialize()
    for _ in range(2):
      state = next_fn(state, data)
    np.savez(directory + "/weights.npz", *[np.asarray(w) for w in state])
    assert not any("custom_fedavg" in m for m in sys.modules)
    assert "optax" not in sys.modules
    print(initialize.type_signature)
    print(next_fn.type_signature)
""")


def test_fedavg_runs_deserialized_in_a_fresh_process(fedavg_example, tmp_path):
  initialize_fn = fedavg_example.initialize_fn
  next_fn = fedavg_example.next_fn
  (tmp_path / "initialize.fedjit").write_bytes(fedjit.serialize(initialize_fn))
  (tmp_path / "next.fedjit").write_bytes(fedjit.serialize(next_fn))
  clients = _emnist_like_clients()
  arrays = {"num_batches": np.array([len(c) for c in clients], np.int32)}
  for i, batches in enumerate(clients):
    for j, (x, y) in enumerate(batches):
      arrays[f"x_{i}_{j}"] = x
      arrays[f"y_{i}_{j}"] = y
  np.savez(tmp_path / "data.npz", **arrays)

  script = _SUBPROCESS_SCRIPT.format(directory=str(tmp_path))
  result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-4000:]
  assert result.stdout.splitlines() == [str(initialize_fn.type_signature),
                                        str(next_fn.type_signature)]

  state = initialize_fn()
  for _ in range(2):
    state = next_fn(state, clients)
  saved = np.load(tmp_path / "weights.npz")
  restored = [saved[f"arr_{k}"] for k in range(len(saved.files))]
  assert len(restored) == len(state)
  for got, expected in zip(restored, state):
    assert got.shape == np.shape(expected) and got.dtype == np.asarray(expected).dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  # Training moved the weights away from the initial ones.
  initial = initialize_fn()
  assert not np.allclose(restored[0], initial[0], atol=1e-6)


def test_an_old_bitwidth_secure_sum_is_refused_with_what_to_rebuild():
  @fedjit.federated_computation(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
  def count(v):
    return fedjit.federated_secure_modular_sum(v, 256)

  data = fedjit.serialize(count)
  header, base = _header(data)
  (node,) = [n for n in header["graph"]["nodes"]
             if n["op"] == "intrinsic" and n["attrs"].get("name") == "federated_secure_modular_sum"]
  # As fedjit before TFF's semantics wrote it: one argument and a bitwidth.
  node["attrs"] = {"name": "federated_secure_sum", "bitwidth": 8}
  node["args"] = node["args"][:1]
  head = json.dumps(header).encode("utf-8")
  with pytest.raises(ValueError, match=r"earlier fedjit.*modulo 2\*\*bitwidth.*"
                     r"federated_secure_modular_sum\(value, 2\*\*8\)"):
    fedjit.deserialize(MAGIC + struct.pack("<Q", len(head)) + head + data[base:])

"""Values on the wire: chunked, checked against their type before use."""

import collections

import numpy as np
import pytest

import fedjit
from fedjit.deploy import _wire as wire

UPDATE = fedjit.to_type(collections.OrderedDict(
    w=fedjit.TensorType(np.float32, [300, 7]), b=fedjit.TensorType(np.float32, [7]),
    n=fedjit.TensorType(np.int32), empty=fedjit.TensorType(np.float32, [0])))


def _update(seed=0):
  rng = np.random.default_rng(seed)
  return collections.OrderedDict(w=rng.normal(size=(300, 7)).astype(np.float32),
                                 b=rng.normal(size=7).astype(np.float32), n=np.int32(5),
                                 empty=np.zeros(0, np.float32))


def _parts(value=None, chunk=1000):
  # Round trip through bytes, as gRPC does.
  return [wire.ValuePart.FromString(p.SerializeToString())
          for p in wire.encode_value(_update() if value is None else value, UPDATE,
                                     max_chunk_bytes=chunk)]


def test_a_value_round_trips_in_chunks():
  parts = _parts()
  chunks = [p.chunk for p in parts[1:]]
  assert parts[0].header.num_tensors == 4
  assert [c.tensor for c in chunks].count(0) == 9   # 8,400 bytes in chunks of 1,000
  assert all(len(c.data) <= 1000 for c in chunks)
  out = wire.decode_value(parts, UPDATE, max_chunk_bytes=1000)
  for k, v in _update().items():
    np.testing.assert_array_equal(out[k], v)
    assert out[k].dtype == np.asarray(v).dtype
  assert list(out) == ["w", "b", "n", "empty"]


def _reject(parts, reason, **kwargs):
  with pytest.raises(wire.UpdateRejected) as e:
    wire.decode_value(parts, UPDATE, **kwargs)
  assert e.value.reason == reason, str(e.value)
  return str(e.value)


def _edit(parts, index, **fields):
  parts = [wire.ValuePart.FromString(p.SerializeToString()) for p in parts]
  target = parts[index].chunk if parts[index].WhichOneof("part") == "chunk" else parts[index].header
  for k, v in fields.items():
    if k == "shape":
      del target.shape[:]
      target.shape.extend(v)
    else:
      setattr(target, k, v)
  return parts


def test_hostile_streams_are_refused():
  parts = _parts()
  assert "must be <w=float32[300,7]" in _reject(_edit(parts, 0, type_signature="float32[9]"),
                                                 "type")
  _reject(_edit(parts, 0, num_tensors=3), "type")
  _reject(parts[1:], "order")                       # no header
  _reject(parts[:1] + parts, "order")               # two headers
  _reject(_edit(parts, 1, dtype="float64"), "dtype")
  _reject(_edit(parts, 1, shape=[7, 300]), "shape")
  _reject(_edit(parts, 1, total_bytes=10 ** 12), "size")
  _reject(_edit(parts, 2, offset=0), "order")       # a chunk sent twice
  _reject(parts[:2] + parts[3:], "order")           # a chunk missing
  _reject(_edit(parts, 1, tensor=1), "order")       # tensors out of order
  _reject(_edit(parts, 1, tensor=-1), "order")
  _reject(parts[:-3], "incomplete")
  _reject(parts + parts[-1:], "order")              # an extra chunk
  _reject(_edit(parts, 1, data=b"x" * 2000), "size", max_chunk_bytes=1000)
  _reject([wire.ValuePart()], "type")
  _reject(["not a message"], "type")


def test_non_finite_updates_are_refused_unless_allowed():
  bad = _update()
  bad["w"][3, 4] = np.nan
  assert "value.w holds NaN" in _reject(_parts(bad), "non_finite")
  bad["w"][3, 4] = np.inf
  _reject(_parts(bad), "non_finite")
  assert np.isinf(wire.decode_value(_parts(bad), UPDATE, require_finite=False)["w"][3, 4])


def test_encoding_checks_the_value_and_the_type():
  bad = _update()
  bad["b"] = bad["b"].astype(np.float64)
  with pytest.raises(ValueError, match="value.b should be float32\\[7\\], got float64\\[7\\]"):
    list(wire.encode_value(bad, UPDATE))
  with pytest.raises(TypeError, match="fully defined shapes"):
    list(wire.encode_value(np.zeros(3, np.float32), fedjit.TensorType(np.float32, [None])))
  with pytest.raises(TypeError, match="only tensors and structures"):
    wire.ValueDecoder(fedjit.SequenceType(fedjit.TensorType(np.float32, [2])))

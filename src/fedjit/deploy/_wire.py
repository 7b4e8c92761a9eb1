"""Values on the wire: a fedjit value of a known type, streamed as protobuf
messages in bounded chunks, and rebuilt on the other side only after every
field of every message has been checked against the type.

A value travels as a stream of `ValuePart`s: one `ValueHeader` (the type
signature and the number of tensors), then `TensorChunk`s, tensor after
tensor in the type's order, each carrying its tensor's index, dtype, shape,
byte offset, total size and at most `max_chunk_bytes` of little-endian,
C-order bytes. So a model larger than gRPC's message limit travels in
pieces, and the receiver never holds more than the type allows.

`ValueDecoder` is what a server runs on a client's update before the update
may touch an aggregate: it refuses (`UpdateRejected`, with a `reason`) a
wrong type signature, tensor order, dtype or shape, a chunk that is too big,
out of place or past the tensor's end, a missing or extra chunk, and a
non-finite float.

The messages are built at import from a descriptor written here (no
generated code, so any protobuf runtime >= 4.21 reads them); their package
is `fedjit.deploy.v1`.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from fedjit.core import StructType, TensorType, build_container, struct_fields, to_type

__all__ = ["ValueHeader", "TensorChunk", "ValuePart", "UpdateRejected", "encode_value",
           "ValueDecoder", "decode_value", "MAX_CHUNK_BYTES"]

MAX_CHUNK_BYTES = 1 << 20  # 1 MiB of tensor bytes per message


_POOL = None


def build_messages(file_name: str, spec: dict, oneofs: dict | None = None,
                   dependencies: tuple = ()) -> dict:
  """Message classes of package `fedjit.deploy.v1` from a compact spec:
  `{message: [(field, kind, number, repeated, message_type or None)]}`, kind
  being a `FieldDescriptorProto` type name such as "TYPE_STRING";
  `oneofs`: `{message: oneof_name}` puts all of that message's fields in one
  oneof. All files share one descriptor pool, so messages may refer to those
  of files built before (name them in `dependencies`)."""
  global _POOL
  try:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
  except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("fedjit.deploy needs protobuf, grpcio and cryptography: "
                      "pip install 'fedjit[deploy]'") from e
  F = descriptor_pb2.FieldDescriptorProto
  if _POOL is None:
    _POOL = descriptor_pool.DescriptorPool()
  proto = descriptor_pb2.FileDescriptorProto(name=file_name, package="fedjit.deploy.v1",
                                             syntax="proto3", dependency=list(dependencies))
  for name, fields in spec.items():
    message = proto.message_type.add(name=name)
    oneof = (oneofs or {}).get(name)
    if oneof:
      message.oneof_decl.add(name=oneof)
    for field, kind, number, repeated, type_name in fields:
      f = message.field.add(name=field, number=number, type=getattr(F, kind),
                            label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
      if type_name:
        f.type_name = f".fedjit.deploy.v1.{type_name}"
      if oneof:
        f.oneof_index = 0
  _POOL.Add(proto)
  # GetMessageClass is protobuf >= 4.22's name; older runtimes have the factory.
  make = getattr(message_factory, "GetMessageClass", None) or (
      message_factory.MessageFactory(_POOL).GetPrototype)
  return {n: make(_POOL.FindMessageTypeByName(f"fedjit.deploy.v1.{n}")) for n in spec}


def _messages():
  m = build_messages("fedjit/deploy/v1/wire.proto", {
      "ValueHeader": [("type_signature", "TYPE_STRING", 1, False, None),
                      ("num_tensors", "TYPE_INT32", 2, False, None)],
      "TensorChunk": [("tensor", "TYPE_INT32", 1, False, None),
                      ("dtype", "TYPE_STRING", 2, False, None),
                      ("shape", "TYPE_INT64", 3, True, None),
                      ("offset", "TYPE_INT64", 4, False, None),
                      ("total_bytes", "TYPE_INT64", 5, False, None),
                      ("data", "TYPE_BYTES", 6, False, None)],
      "ValuePart": [("header", "TYPE_MESSAGE", 1, False, "ValueHeader"),
                    ("chunk", "TYPE_MESSAGE", 2, False, "TensorChunk")],
  }, oneofs={"ValuePart": "part"})
  return m["ValueHeader"], m["TensorChunk"], m["ValuePart"]


ValueHeader, TensorChunk, ValuePart = _messages()


class UpdateRejected(ValueError):
  """A value from the wire that does not fit its type. `reason`: "type",
  "order", "dtype", "shape", "size", "incomplete" or "non_finite".

  Example:
    >>> try:
    ...   update = decode_value(parts, update_type)
    ... except UpdateRejected as e:
    ...   strikes[client] += 1; print(e.reason)
  """

  def __init__(self, reason: str, message: str):
    super().__init__(message)
    self.reason = reason


def _leaves(t: Any, where: str = "value") -> list[tuple[str, TensorType]]:
  if isinstance(t, TensorType):
    if t.shape is None or any(d is None for d in t.shape):
      raise TypeError(f"{where} has type {t}; values on the wire need fully defined shapes.")
    return [(where, t)]
  if isinstance(t, StructType):
    out = []
    for i, (name, e) in enumerate(zip(t.names(), t.types())):
      out += _leaves(e, f"{where}.{name if name else i}")
    return out
  raise TypeError(f"{where} has type {t}; only tensors and structures of them travel as "
                  f"values (not sequences, functions or placed values).")


def _values(t: Any, value: Any) -> list[Any]:
  if isinstance(t, TensorType):
    return [value]
  out = []
  for e, v in zip(t.types(), struct_fields(t, value)):
    out += _values(e, v)
  return out


def _rebuild(t: Any, arrays: Iterator[np.ndarray]) -> Any:
  if isinstance(t, TensorType):
    return next(arrays)
  return build_container(t, [_rebuild(e, arrays) for e in t.types()])


def encode_value(value: Any, value_type: Any, *,
                 max_chunk_bytes: int = MAX_CHUNK_BYTES) -> Iterator[Any]:
  """The `ValuePart` messages that carry `value` (of `value_type`).

  Raises:
    TypeError: the type cannot travel (sequences, unknown dimensions).
    ValueError: a tensor does not have its type's dtype or shape.

  Example:
    >>> parts = list(encode_value(update, update_type))
    >>> decode_value(parts, update_type)         # the same update
  """
  t = to_type(value_type)
  leaves = _leaves(t)
  values = _values(t, value)
  yield ValuePart(header=ValueHeader(type_signature=str(t), num_tensors=len(leaves)))
  for i, ((where, leaf), v) in enumerate(zip(leaves, values)):
    array = np.asarray(v)
    dtype = np.dtype(leaf.dtype)
    if array.dtype != dtype or tuple(array.shape) != tuple(leaf.shape):
      raise ValueError(f"{where} should be {leaf}, got {array.dtype.name}{list(array.shape)}.")
    data = np.ascontiguousarray(array, dtype=dtype.newbyteorder("<")).tobytes()
    for offset in range(0, max(len(data), 1), max_chunk_bytes):
      yield ValuePart(chunk=TensorChunk(
          tensor=i, dtype=dtype.name, shape=list(leaf.shape), offset=offset,
          total_bytes=len(data), data=data[offset:offset + max_chunk_bytes]))


class ValueDecoder:
  """Rebuilds a value of `value_type` from `ValuePart`s, checking each part
  before it is kept (see the module docstring).

  Args:
    value_type: the type the value must have.
    max_chunk_bytes: the largest chunk accepted.
    require_finite: refuse NaN and infinities in floating tensors.

  Example:
    >>> decoder = ValueDecoder(update_type)
    >>> for part in stream:
    ...   decoder.add(part)
    >>> update = decoder.result()
  """

  def __init__(self, value_type: Any, *, max_chunk_bytes: int = MAX_CHUNK_BYTES,
               require_finite: bool = True):
    self._type = to_type(value_type)
    self._leaves = _leaves(self._type)
    self._max_chunk = int(max_chunk_bytes)
    self._finite = require_finite
    self._header = False
    self._current = 0
    self._buffers: list[bytearray] = []
    self._sizes = [int(np.prod(l.shape, dtype=np.int64)) * np.dtype(l.dtype).itemsize
                   for _, l in self._leaves]

  def add(self, part: Any) -> None:
    """Checks and keeps one `ValuePart`.

    Raises:
      UpdateRejected: the part does not fit.
    """
    if not isinstance(part, ValuePart):
      raise UpdateRejected("type", f"Expected a ValuePart message, got "
                                   f"{type(part).__name__}.")
    kind = part.WhichOneof("part")
    if kind == "header":
      if self._header:
        raise UpdateRejected("order", "A value has one header; a second one was sent.")
      if part.header.type_signature != str(self._type):
        raise UpdateRejected("type", f"The value's type must be {self._type}, got "
                                     f"{part.header.type_signature[:200]!r}.")
      if part.header.num_tensors != len(self._leaves):
        raise UpdateRejected("type", f"The value has {len(self._leaves)} tensors, the header "
                                     f"says {part.header.num_tensors}.")
      self._header = True
      return
    if kind != "chunk":
      raise UpdateRejected("type", "A ValuePart must hold a header or a chunk.")
    if not self._header:
      raise UpdateRejected("order", "The value's header must come before its tensors.")
    chunk = part.chunk
    i = chunk.tensor
    if i != self._current or i >= len(self._leaves):
      raise UpdateRejected("order", f"Expected a chunk of tensor {self._current}, got one of "
                                    f"tensor {i}.")
    where, leaf = self._leaves[i]
    if chunk.dtype != np.dtype(leaf.dtype).name:
      raise UpdateRejected("dtype", f"{where} must be {np.dtype(leaf.dtype).name}, got "
                                    f"{chunk.dtype[:40]!r}.")
    if tuple(chunk.shape) != tuple(leaf.shape):
      raise UpdateRejected("shape", f"{where} must have shape {list(leaf.shape)}, got "
                                    f"{list(chunk.shape)[:10]}.")
    size = self._sizes[i]
    if chunk.total_bytes != size:
      raise UpdateRejected("size", f"{where} is {size} bytes, the chunk says "
                                   f"{chunk.total_bytes}.")
    if len(self._buffers) == i:
      self._buffers.append(bytearray())
    received = len(self._buffers[i])
    if chunk.offset != received:
      raise UpdateRejected("order", f"{where}: expected bytes from offset {received}, got "
                                    f"{chunk.offset}.")
    if len(chunk.data) > self._max_chunk or received + len(chunk.data) > size:
      raise UpdateRejected("size", f"{where}: a chunk of {len(chunk.data)} bytes at offset "
                                   f"{received} does not fit ({size} bytes, chunks of at most "
                                   f"{self._max_chunk}).")
    if not chunk.data and size:
      raise UpdateRejected("size", f"{where}: an empty chunk.")
    self._buffers[i] += chunk.data
    if len(self._buffers[i]) == size:
      self._current += 1

  @property
  def complete(self) -> bool:
    """Whether the header and every tensor have arrived."""
    return self._header and self._current == len(self._leaves)

  def result(self) -> Any:
    """The value, once every tensor is complete.

    Raises:
      UpdateRejected: tensors are missing, or a float is not finite.
    """
    if not self._header or self._current != len(self._leaves):
      raise UpdateRejected("incomplete", f"The value is incomplete: {self._current} of "
                                         f"{len(self._leaves)} tensors arrived.")
    arrays = []
    for (where, leaf), buffer in zip(self._leaves, self._buffers):
      dtype = np.dtype(leaf.dtype)
      array = np.frombuffer(bytes(buffer), dtype=dtype.newbyteorder("<")).astype(dtype)
      array = array.reshape(tuple(leaf.shape))
      if self._finite and np.issubdtype(dtype, np.floating) and not np.all(np.isfinite(array)):
        raise UpdateRejected("non_finite", f"{where} holds NaN or infinite values.")
      arrays.append(array)
    return _rebuild(self._type, iter(arrays))


def decode_value(parts: Any, value_type: Any, **kwargs) -> Any:
  """The value of `value_type` carried by the `ValuePart`s `parts` (see
  `ValueDecoder`).

  Example:
    >>> decode_value(encode_value(update, update_type), update_type)
  """
  decoder = ValueDecoder(value_type, **kwargs)
  for part in parts:
    decoder.add(part)
  return decoder.result()

"""Serialization of computations to bytes: the IR as JSON, JAX code as StableHLO.

Layout: the magic `b"FEDJIT\\x00\\x01"`, an 8-byte little-endian length, a
UTF-8 JSON header (types, graph, computation table, blob table), then the
binary blobs: each jax computation exported with `jax.export` (symbolic
sizes for `?` dimensions and sequence lengths) and each constant as raw
array bytes. No pickle: a computation read back runs in a process that never
imported the code that defined it.
"""

from __future__ import annotations

import collections
import json
import struct
from typing import Any

import jax
from jax import export as jax_export
import numpy as np

from fedjit.core._computations import (Computation, FederatedComputation,
                                       JaxComputation, _symbolic_abstract,
                                       executing)
from fedjit.core._ir import Graph, Node
from fedjit.core._placements import _placement_by_uri
from fedjit.core._padding import pad_sequences
from fedjit.core._sequence import ListSequence, PaddedSequence, abstract_value
from fedjit.core._types import (FederatedType, FunctionType, SequenceType,
                                StructType, TensorType, Type, build_container, struct_fields)

__all__ = ["serialize", "deserialize"]

MAGIC = b"FEDJIT\x00\x01"
FORMAT_VERSION = 1


# ---------------------------------------------------------------------- types

def _container_json(c):
  if c is None:
    return None
  if hasattr(c, "_fields"):
    return {"namedtuple": c.__name__}
  for name, cls in (("tuple", tuple), ("list", list), ("dict", dict),
                    ("OrderedDict", collections.OrderedDict)):
    if c is cls:
      return name
  if issubclass(c, dict):
    return "dict"
  return None


def type_to_json(t: Type | None) -> Any:
  if t is None:
    return None
  if isinstance(t, TensorType):
    return {"kind": "tensor", "dtype": t.dtype.name, "shape": list(t.shape)}
  if isinstance(t, StructType):
    return {"kind": "struct", "fields": [[n, type_to_json(e)] for n, e in t.items()],
            "container": _container_json(t.container)}
  if isinstance(t, SequenceType):
    return {"kind": "sequence", "element": type_to_json(t.element)}
  if isinstance(t, FederatedType):
    return {"kind": "federated", "member": type_to_json(t.member),
            "placement": t.placement.uri, "all_equal": t.all_equal}
  if isinstance(t, FunctionType):
    return {"kind": "function", "parameter": type_to_json(t.parameter),
            "result": type_to_json(t.result)}
  raise TypeError(f"Cannot serialize type {t!r}.")


_NAMEDTUPLES: dict[tuple, type] = {}


def _namedtuple(name: str, fields: tuple) -> type:
  """One class per (name, fields), so equal structures are equal pytrees."""
  key = (name, fields)
  if key not in _NAMEDTUPLES:
    _NAMEDTUPLES[key] = collections.namedtuple(name, fields)
  return _NAMEDTUPLES[key]


def type_from_json(d: Any) -> Type | None:
  if d is None:
    return None
  kind = d["kind"]
  if kind == "tensor":
    return TensorType(np.dtype(d["dtype"]), d["shape"])
  if kind == "struct":
    fields = [(n, type_from_json(e)) for n, e in d["fields"]]
    c = d.get("container")
    if isinstance(c, dict):
      container = _namedtuple(c["namedtuple"], tuple(n for n, _ in fields))
    else:
      container = {"tuple": tuple, "list": list, "dict": dict,
                   "OrderedDict": collections.OrderedDict, None: None}[c]
    return StructType(fields, container=container)
  if kind == "sequence":
    return SequenceType(type_from_json(d["element"]))
  if kind == "federated":
    return FederatedType(type_from_json(d["member"]), _placement_by_uri(d["placement"]),
                         d["all_equal"])
  if kind == "function":
    return FunctionType(type_from_json(d["parameter"]), type_from_json(d["result"]))
  raise ValueError(f"Unknown type kind {kind!r} in serialized computation.")


# ---------------------------------------------------------- jax computations

def _param_types(comp: JaxComputation) -> list[Type]:
  p = comp.type_signature.parameter
  if p is None:
    return []
  return list(p.types()) if comp.num_params > 1 else [p]


def _export(comp: JaxComputation) -> bytes:
  types = _param_types(comp)
  abstract = _symbolic_abstract(types)
  flat, in_tree = jax.tree_util.tree_flatten(abstract)

  def flat_fn(*leaves):
    with executing():
      out = comp.fn(*jax.tree_util.tree_unflatten(in_tree, list(leaves)))
    return jax.tree_util.tree_leaves(out)

  exported = _without_locations(jax_export.export(jax.jit(flat_fn))(*flat))
  try:
    return bytes(exported.serialize(vjp_order=1))
  except ImportError:
    raise
  except Exception:  # functions JAX cannot differentiate still serialize
    return bytes(exported.serialize())


def _without_locations(exported):
  """`exported` with the Python source locations stripped from its StableHLO,
  so that its bytes (and their hash, the name under which a deployment's
  client program is approved) depend on what it computes, not on the files
  and line numbers of the code that traced it. This uses JAX's MLIR bindings
  (`jax._src`); where they differ, the locations are kept."""
  try:
    import dataclasses
    from jax._src import xla_bridge
    from jax._src.interpreters import mlir
    from jax._src.lib import _jax
    from jax._src.lib.mlir import ir, passmanager
    from jax._src.lib.mlir.dialects import hlo
    context = mlir.make_ir_context()
    with context, ir.Location.unknown(context):
      module = _jax.mlir.deserialize_portable_artifact(exported.mlir_module_serialized)
      passmanager.PassManager.parse("builtin.module(strip-debuginfo)").run(module.operation)
      target = hlo.get_version_from_compatibility_requirement(
          hlo.StablehloCompatibilityRequirement.WEEK_4)
      stripped = _jax.mlir.serialize_portable_artifact(
          module, target, xla_bridge.get_backend().serialize_with_sdy)
    get_vjp = exported._get_vjp
    return dataclasses.replace(
        exported, mlir_module_serialized=stripped,
        _get_vjp=None if get_vjp is None else (lambda e: _without_locations(get_vjp(e))))
  except Exception:  # noqa: BLE001 -- JAX internals moved: keep the locations
    return exported


class _ExportedFunction:
  """Calls a deserialized StableHLO function with fedjit's pytree arguments."""

  def __init__(self, exported, param_types: list[Type], result_type: Type):
    self.exported = exported
    self.param_types = param_types
    self.out_tree = jax.tree_util.tree_structure(
        abstract_value(result_type, lambda k: 1))

  def __call__(self, *args):
    args = [_padded(t, a) for t, a in zip(self.param_types, args)]
    leaves = jax.tree_util.tree_leaves(args)
    out = self.exported.call(*leaves)
    return jax.tree_util.tree_unflatten(self.out_tree, list(out))


def _padded(t: Type, arg):
  """Reference-backend sequences (lists) become padded arrays for StableHLO."""
  if isinstance(arg, PaddedSequence):
    return arg.rows()  # a client's row of a cohort, as the exported function takes it
  if isinstance(arg, ListSequence):
    p = pad_sequences(arg.element_type, [arg.elements])
    return jax.tree_util.tree_map(lambda x: x[0], p)
  if isinstance(t, StructType) and isinstance(arg, (list, tuple, dict)):
    return build_container(t, [_padded(ft, a) for ft, a in zip(t.types(), struct_fields(t, arg))])
  return arg


def _restore_jax(entry: dict, blob: bytes) -> JaxComputation:
  exported = jax_export.deserialize(bytearray(blob))
  param_types = [type_from_json(t) for t in entry["param_types"]]
  result_type = type_from_json(entry["result_type"])
  fn = _ExportedFunction(exported, param_types, result_type)
  comp = JaxComputation.__new__(JaxComputation)
  comp.fn = fn
  comp.name = entry["name"]
  comp.param_names = entry["param_names"]
  comp._param_types = param_types
  comp._concrete = {}
  comp.batchable = False  # StableHLO calls have no batching rule: map, not vmap
  names = comp.param_names
  if not param_types:
    ptype = None
  elif len(param_types) == 1:
    ptype = param_types[0]
  else:
    ptype = StructType(list(zip(names, param_types)))
  comp._type_signature = FunctionType(ptype, result_type)
  return comp


# --------------------------------------------------------------------- public

class _Writer:
  def __init__(self):
    self.blobs: list[bytes] = []
    self.computations: list[dict] = []
    self._ids: dict[int, int] = {}

  def blob(self, data: bytes) -> int:
    self.blobs.append(data)
    return len(self.blobs) - 1

  def computation(self, comp: JaxComputation) -> int:
    if id(comp) not in self._ids:
      self.computations.append({
          "name": comp.name,
          "param_names": list(comp.param_names),
          "param_types": [type_to_json(t) for t in _param_types(comp)],
          "result_type": type_to_json(comp.type_signature.result),
          "blob": self.blob(_export(comp)),
      })
      self._ids[id(comp)] = len(self.computations) - 1
    return self._ids[id(comp)]

  def node(self, node: Node) -> dict:
    attrs = {}
    for k, v in node.attrs.items():
      if isinstance(v, JaxComputation):
        attrs[k] = {"computation": self.computation(v)}
      elif k == "value":
        attrs[k] = {"constant": [
            {"dtype": a.dtype.name, "shape": list(a.shape),
             "blob": self.blob(np.ascontiguousarray(a).tobytes())} for a in v]}
      elif isinstance(v, (int, str, float, bool)) or v is None:
        attrs[k] = v
      else:
        raise TypeError(f"Cannot serialize attribute {k}={v!r} of a {node.op} node.")
    return {"op": node.op, "args": list(node.args), "type": type_to_json(node.type),
            "attrs": attrs}


def serialize(computation: Computation) -> bytes:
  """Serializes a computation to bytes (the IR plus StableHLO; no pickle).

  Example:
    >>> data = fedjit.serialize(get_average_temperature)
    >>> restored = fedjit.deserialize(data)
    >>> restored([68.5, 70.3, 69.8])
    np.float32(69.53334)
  """
  w = _Writer()
  if isinstance(computation, FederatedComputation):
    g = computation.graph
    header = {"kind": "federated", "name": computation.name, "graph": {
        "nodes": [w.node(n) for n in g.nodes], "params": g.params,
        "result": g.result, "param_names": g.param_names}}
  elif isinstance(computation, JaxComputation):
    if computation.polymorphic:
      raise TypeError(f"jax_computation '{computation.name}' has no declared types; "
                      f"declare them before serializing it.")
    header = {"kind": "jax", "name": computation.name,
              "computation": w.computation(computation)}
  else:
    raise TypeError(f"fedjit.serialize expects a computation, got {computation!r}.")
  header["format"] = FORMAT_VERSION
  header["jax_version"] = jax.__version__
  header["computations"] = w.computations
  offsets, pos = [], 0
  for b in w.blobs:
    offsets.append([pos, len(b)])
    pos += len(b)
  header["blobs"] = offsets
  head = json.dumps(header, separators=(",", ":")).encode("utf-8")
  return MAGIC + struct.pack("<Q", len(head)) + head + b"".join(w.blobs)


def deserialize(data: bytes) -> Computation:
  """Reads a computation written by `fedjit.serialize`.

  Raises:
    ValueError: if `data` is not a serialized fedjit computation or was
      written by an unsupported format version.

  Example:
    >>> restored = fedjit.deserialize(open("next.fedjit", "rb").read())
    >>> str(restored.type_signature)
  """
  data = bytes(data)
  if not data.startswith(MAGIC):
    raise ValueError("Not a serialized fedjit computation: the data does not start "
                     "with fedjit's magic bytes. Was it written by fedjit.serialize?")
  try:
    return _read(data)
  except _FormatError:
    raise
  except Exception as e:  # any damage: truncation, bad JSON, bad StableHLO
    raise ValueError(
        f"The serialized fedjit computation is corrupt or truncated ({len(data)} "
        f"bytes): {type(e).__name__}: {e}. Serialize the computation again.") from e


class _FormatError(ValueError):
  pass


def _read(data: bytes) -> Computation:
  (n,) = struct.unpack("<Q", data[len(MAGIC):len(MAGIC) + 8])
  start = len(MAGIC) + 8
  header = json.loads(data[start:start + n].decode("utf-8"))
  if not isinstance(header, dict):
    raise TypeError(f"the header is a JSON {type(header).__name__}, not an object")
  if header.get("format") != FORMAT_VERSION:
    raise _FormatError(f"Serialized computation has format {header.get('format')}; "
                       f"this fedjit reads format {FORMAT_VERSION}.")
  base = start + n

  def blob(i):
    off, length = header["blobs"][i]
    if base + off + length > len(data):
      raise ValueError(f"blob {i} ends past the end of the data")
    return data[base + off: base + off + length]

  comps = [_restore_jax(e, blob(e["blob"])) for e in header["computations"]]
  if header["kind"] == "jax":
    return comps[header["computation"]]
  g = header["graph"]
  nodes = []
  for nd in g["nodes"]:
    attrs = {}
    for k, v in nd["attrs"].items():
      if isinstance(v, dict) and "computation" in v:
        attrs[k] = comps[v["computation"]]
      elif isinstance(v, dict) and "constant" in v:
        attrs[k] = [np.frombuffer(blob(c["blob"]), dtype=np.dtype(c["dtype"])).reshape(
            c["shape"]).copy() for c in v["constant"]]
      else:
        attrs[k] = v
    if (nd["op"] == "intrinsic" and attrs.get("name") == "federated_secure_sum"
        and "bitwidth" in attrs):
      raise _FormatError(
          f"This computation was serialized by an earlier fedjit, whose "
          f"federated_secure_sum(value, bitwidth) meant the sum modulo 2**bitwidth "
          f"(bitwidth={attrs['bitwidth']}); federated_secure_sum(value, max_input) now "
          f"has TFF's meaning. Rebuild the computation with "
          f"federated_secure_modular_sum(value, 2**{attrs['bitwidth']}) for the old "
          f"results (or federated_secure_sum_bitwidth for TFF's), and serialize it again.")
    nodes.append(Node(nd["op"], tuple(nd["args"]), type_from_json(nd["type"]), attrs))
  graph = Graph(nodes, g["params"], g["result"], g["param_names"])
  return FederatedComputation(graph, header["name"])

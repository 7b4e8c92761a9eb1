"""What the reference and vectorized backends share: counting clients, constants,
the tensor leaves of a value, and the messages of intrinsics' run-time checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fedjit.core._errors import FederatedTypeError
from fedjit.core._ir import Node
from fedjit.core._padding import example_tree
from fedjit.core._placements import CLIENTS
from fedjit.core._types import (FederatedType, StructType, TensorType, Type, build_container,
                                struct_fields)


def constant_value(node: Node, xp=jnp):
  leaves = [xp.asarray(l) for l in node.attrs["value"]]
  return unflatten_like(node.type, leaves)


def unflatten_like(t: Type, leaves: list):
  example = example_tree(t)
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(example), leaves)


def num_clients_of(types: list[Type], reps: list, leading) -> int | None:
  sizes = set()

  def visit(t, rep):
    if isinstance(t, FederatedType):
      if t.placement == CLIENTS and not t.all_equal:
        sizes.add(leading(rep))
    elif isinstance(t, StructType):
      for ft, v in zip(t.types(), struct_fields(t, rep)):
        visit(ft, v)
  for t, r in zip(types, reps):
    visit(t, r)
  if len(sizes) > 1:
    raise FederatedTypeError(
        f"All {{T}}@CLIENTS arguments must hold one value per client, but they "
        f"have different numbers of clients: {sorted(sizes)}.")
  return sizes.pop() if sizes else None


def need_clients(n: int | None, what: str) -> int:
  if n is None:
    raise FederatedTypeError(
        f"{what} needs the number of clients, but no argument is placed at "
        f"CLIENTS. Pass at least one {{T}}@CLIENTS argument to the computation.")
  return n


def tensor_leaves_of(t: Type, value) -> list:
  """The tensors of a value of type `t`, in the order of `tensor_types`."""
  if isinstance(t, TensorType):
    return [value]
  return [l for ft, fv in zip(t.types(), struct_fields(t, value))
          for l in tensor_leaves_of(ft, fv)]


def rebuild(t: Type, leaves: list):
  it = iter(leaves)

  def build(t):
    if isinstance(t, TensorType):
      return next(it)
    return build_container(t, [build(e) for e in t.types()])
  return build(t)


def range_message(name: str, client, value, what: str) -> str:
  return (f"fedjit.{name}: client {client} holds the value {value}, outside the "
          f"range [0, {what}] that the secure sum allows. Clip or quantize the "
          f"client values into the range in the client's computation, or raise the "
          f"bound.")


def bound_message(name: str, what: str, value) -> str:
  allowed = {"bitwidth": "an integer in [0, 62]", "modulus": "a positive integer"}[what]
  return f"fedjit.{name} expects {what} to be {allowed}, got {value}."


def bound_check_message(name: str, what: str):
  return lambda client, value, bound: bound_message(name, what, value)


def max_of_bitwidth(bits, dtype):
  """2**bits - 1 in `dtype` (the dtype's largest value where that is more)."""
  info = jnp.iinfo(dtype)
  value_bits = info.bits - (1 if info.min < 0 else 0)
  one = jnp.ones((), dtype)
  small = (one << jnp.clip(bits, 0, value_bits - 1).astype(dtype)) - one
  return jnp.where(bits >= value_bits, jnp.asarray(info.max, dtype), small)


def select_key_message(client, key, max_key) -> str:
  return (f"fedjit.federated_select: client {client} holds the key {key}, outside "
          f"[0, max_key] = [0, {max_key}]. Keys must lie between 0 and max_key.")


def first_group(n: int) -> int:
  """federated_aggregate's first group of clients: the first ceil(n/2)."""
  return (n + 1) // 2

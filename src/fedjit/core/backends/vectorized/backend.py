"""The vectorized backend: compiles a whole federated computation into one `jax.jit`
program (`VectorizedBackend`), and `to_jax`.

A `{T}@CLIENTS` value is a `cohorts.Cohort`: arrays with a leading client
axis, in size buckets; values equal on all clients (broadcasts) are kept
once. A call goes `VectorizedBackend.run` -> `conversions.to_vectorized`
(arguments to Cohorts) -> the jitted program, which interprets the fused
graph with `intrinsics.VectorizedOps`, whose client-side intrinsics all run
through `loops.client_loop`; or, for large cohorts passed as lists,
`streaming.run_streamed` (one program per chunk of clients).

The backend owns what it compiles and remembers (`_BackendState`): the
jitted programs of each computation, their run-time check messages, the
streaming plans and programs, and the `ShapePolicy` of sticky bucket
layouts. Backends of equal configuration (`client_map`, `chunk_size`,
devices) share one state, since `with fedjit.backend("vectorized", ...)`
makes a new backend object each time and rounds must reuse their compiled
programs; `compilations(comp)` counts what it compiled and `reset()` forgets
it all. Nothing is written into the computations, and state is keyed by them
weakly, so computations are still collected.
"""

from __future__ import annotations

import weakref

import jax
import jax.numpy as jnp

from fedjit.core import _buffers
from fedjit.core._computations import (Computation, FederatedComputation, argument_what,
                                       executing, param_types)
from fedjit.core._context import Backend, Prepared, get_backend, register_backend
from fedjit.core._types import to_type
from fedjit.core.backends.common import num_clients_of
from fedjit.core.backends.interpreter import evaluate
from fedjit.core.backends.vectorized import streaming
from fedjit.core.backends.vectorized.conversions import from_vectorized, to_vectorized
from fedjit.core.backends.vectorized.intrinsics import (VectorizedOps, leading, unwrap, wrap,
                                                        raise_failed_checks)
from fedjit.core.backends.vectorized.layouts import ShapePolicy
from fedjit.core.backends.vectorized.loops import LoopPlan
from fedjit.core.compiler import fuse_map_reduce

__all__ = ["VectorizedBackend", "to_jax"]

CLIENT_MAPS = ("auto", "map", "vmap")


class CompiledEntry:
  """What one backend configuration compiled and remembered for one computation."""

  __slots__ = ("fused_graph", "program", "traces", "check_messages", "stream_plan",
               "stream_program", "stream_traces", "stream_chunk_sizes", "stream_leaf_sizes")

  def __init__(self):
    self.fused_graph = None     # the graph with client maps fused into aggregations
    self.program = None         # the jitted one-program round
    self.traces = 0             # how many times `program` was traced (compiled)
    self.check_messages: list = []  # messages of the program's run-time checks
    self.stream_plan = ...      # streaming.stream_plan's answer (... : not asked yet)
    self.stream_program = None  # streaming's (jitted chunk/final program, zeros, messages)
    self.stream_traces: list = []  # the stage of each trace of `stream_program`
    self.stream_chunk_sizes: dict = {}  # clients per chunk, per cohort size
    self.stream_leaf_sizes: dict = {}   # largest padded leaf shapes, per element type

  def fused(self, comp: FederatedComputation):
    """`comp`'s graph with client maps fused into their aggregations (made once)."""
    if self.fused_graph is None:
      self.fused_graph = fuse_map_reduce(comp.graph)
    return self.fused_graph


class _BackendState:
  """The compile cache and shape policy of one backend configuration."""

  def __init__(self):
    self.entries: "weakref.WeakKeyDictionary[Computation, CompiledEntry]" = (
        weakref.WeakKeyDictionary())
    self.shape_policy = ShapePolicy()

  def entry(self, comp: Computation) -> CompiledEntry:
    entry = self.entries.get(comp)
    if entry is None:
      entry = self.entries[comp] = CompiledEntry()
    return entry


# One state per configuration (`VectorizedBackend._key()`), shared by the
# backend objects of that configuration (see the module docstring).
_STATES: "dict[tuple, _BackendState]" = {}


class VectorizedBackend(Backend):
  """Compiles a whole federated computation into one `jax.jit` program.

  Args:
    client_map: how `federated_map` maps over clients inside the program:
      "map" (a sequential `lax.map`: one model copy, best for small models
      on a CPU), "vmap" (all clients at once: best on accelerators), or
      "auto" (the default: "map" on CPU, "vmap" elsewhere).
    chunk_size: with "map", process this many clients at a time with vmap
      (a chunked map); None processes one at a time.
    devices: the devices to split each round's clients across ("auto": all
      local devices, e.g. several GPUs, or CPU devices made with
      `XLA_FLAGS=--xla_force_host_platform_device_count=4`; None: one).
      Each device loops over its share and the partial aggregates are added.
    stream_chunk_mb: a cohort passed as Python lists (not a Population) of
      more than 4 MB of client data and at least 32 clients is padded and
      run in chunks of clients, each at most this many megabytes and an
      eighth of the cohort (but at least 16 clients): the program of one
      chunk adds its clients to the running sums of the round's
      aggregations while the host pads the next chunk, and a final program
      finishes the round. Padding then overlaps the computation, and the
      padded copy of the cohort takes about two chunks of memory instead of
      all of it. Used when the client data reach the rest of the round only
      through client maps and their aggregations (FedAvg and its relatives,
      federated evaluation); results equal the one-program round up to
      float rounding. None: never.

  Example:
    >>> with fedjit.backend("vectorized", client_map="vmap"):
    ...   state = process.next(state, data)
  """

  name = "vectorized"

  def __init__(self, client_map: str = "auto", chunk_size: int | None = None,
               devices: "list | str | None" = "auto", stream_chunk_mb: float | None = 32.0):
    if client_map not in CLIENT_MAPS:
      raise ValueError(f"client_map must be one of {CLIENT_MAPS}, got {client_map!r}.")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
      raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}.")
    self.client_map = client_map
    self.chunk_size = chunk_size
    if devices != "auto" and devices is not None and not isinstance(devices, (list, tuple)):
      raise ValueError(f"devices must be 'auto', None or a list of JAX devices, got {devices!r}.")
    self.devices = devices
    if stream_chunk_mb is not None and (isinstance(stream_chunk_mb, bool) or not isinstance(
        stream_chunk_mb, (int, float)) or not stream_chunk_mb > 0):
      raise ValueError(f"stream_chunk_mb must be a positive number or None, got "
                       f"{stream_chunk_mb!r}.")
    self.stream_chunk_mb = stream_chunk_mb

  def __repr__(self):
    return f"VectorizedBackend(client_map={self.client_map!r}, chunk_size={self.chunk_size})"

  def resolved_devices(self) -> list | None:
    """The devices clients are split across: all local devices with "auto"."""
    if self.devices == "auto":
      return jax.local_devices()
    return list(self.devices) if self.devices else None

  def loop_plan(self) -> LoopPlan:
    """How this backend's client loops run (`loops.LoopPlan`)."""
    return LoopPlan(self.client_map, self.chunk_size, self.resolved_devices())

  def _key(self):
    devices = self.resolved_devices()
    return ("vectorized", self.client_map, self.chunk_size,
            tuple(d.id for d in devices) if devices else None)

  def _state(self) -> _BackendState:
    key = self._key()
    state = _STATES.get(key)
    if state is None:
      state = _STATES.setdefault(key, _BackendState())
    return state

  @property
  def shape_policy(self) -> ShapePolicy:
    """The sticky bucket layouts with which this configuration pads cohorts
    passed as lists (see `layouts.pad_clients`); `reset()` forgets them."""
    return self._state().shape_policy

  def reset(self) -> None:
    """Forgets what this backend's configuration has compiled and remembered:
    the compiled programs (the next call compiles again), streaming plans and
    chunk sizes, and the sticky bucket layouts of past cohorts. Other
    configurations keep theirs.

    Example:
      >>> backend = fedjit.get_backend()
      >>> state = trainer.next(state, data).state
      >>> backend.compilations(trainer.next)
      1
      >>> backend.reset()
      >>> backend.compilations(trainer.next)
      0
    """
    state = self._state()
    state.entries.clear()
    state.shape_policy.clear()

  def prepare(self, type_spec, value, what: str = "", client_ids=None) -> Prepared:
    """`value` padded and stacked ahead of the call that takes it (a Cohort
    for `{T}@CLIENTS`), with this configuration's sticky layouts; the padded
    buffers are reused after `release()`. Thread-safe: `run_training` pads
    the next round's cohort in a background thread.

    Example:
      >>> prepared = fedjit.get_backend().prepare(data_type, cohort, "client data")
      >>> with prepared:
      ...   state = trainer.next(state, prepared.value).state
    """
    lease = _buffers.BufferLease()
    with lease:
      rep = to_vectorized(to_type(type_spec), value, what, policy=self.shape_policy,
                          client_ids=client_ids)
    return Prepared(rep, lease.release)

  def trace(self, comp: Computation, reps: list):
    """Runs `comp` on vectorized representations (inside or outside jit).

    Conditions checked at run time (a secure sum's inputs in range) are
    checked here when their values are concrete, and left out under a trace.
    """
    out, checks = self.trace_checked(comp, reps)
    if all(not isinstance(a, jax.core.Tracer) for _, arrays in checks for a in arrays):
      raise_failed_checks([m for m, _ in checks], [a for _, a in checks])
    return out

  def trace_checked(self, comp: Computation, reps: list):
    """`trace`, and the run-time checks: [(message, (ok, client, value, bound))]."""
    types = param_types(comp)
    with executing():
      if isinstance(comp, FederatedComputation):
        n = num_clients_of(types, reps, leading)
        ops = VectorizedOps(n, self.loop_plan())
        graph = self._state().entry(comp).fused(comp)
        out = evaluate(graph, [wrap(t, r, n) for t, r in zip(types, reps)], ops)
        return unwrap(ops, comp.type_signature.result, out), ops.checks
      return comp.fn(*reps), []

  def compiled(self, comp: Computation, entry: "CompiledEntry | None" = None):
    """The jitted program of `comp`: `program(*reps) -> (result, checks)`,
    where `checks` are the arrays of its run-time checks (see `run`)."""
    if entry is None:
      entry = self._state().entry(comp)
    if entry.program is None:
      # The program refers to `comp` weakly, so that the cache (keyed weakly
      # by `comp`) does not keep it alive.
      comp_ref = weakref.ref(comp)

      def program(*reps):  # traced once per compilation
        entry.traces += 1
        out, checks = self.trace_checked(comp_ref(), list(reps))
        entry.check_messages = [m for m, _ in checks]
        return out, [a for _, a in checks]
      entry.program = jax.jit(program)
    return entry.program

  def check_messages(self, comp: Computation) -> list:
    """The messages of the run-time checks of `comp`'s compiled program."""
    entry = self._state().entries.get(comp)
    return entry.check_messages if entry is not None else []

  def compilations(self, comp: Computation) -> int:
    """How many programs this backend's settings have compiled for `comp`:
    one per input shape of the one-program round, plus the chunk and final
    programs of streamed rounds (see `stream_chunk_mb`), since the last
    `reset()`.

    Example:
      >>> fedjit.get_backend().compilations(trainer.next)  # after 100 rounds
      1
    """
    entry = self._state().entries.get(comp)
    return 0 if entry is None else entry.traces + len(entry.stream_traces)

  def run(self, comp, args):
    types = param_types(comp)
    state = self._state()
    entry = state.entry(comp)
    if self.stream_chunk_mb is not None and isinstance(comp, FederatedComputation):
      plan = streaming.stream_plan(entry, comp, types)
      if plan is not None:
        out = streaming.run_streamed(self, state, comp, args, types, plan,
                                      self.stream_chunk_mb * 2 ** 20)
        if out is not None:
          return out[0]
    with _buffers.buffer_lease():
      reps = [to_vectorized(t, a, argument_what(comp, i), policy=state.shape_policy)
              for i, (t, a) in enumerate(zip(types, args))]
      out, checks = self.compiled(comp, entry)(*reps)
      raise_failed_checks(entry.check_messages, checks)
      # Results are copied to NumPy here, so the program has finished with
      # its inputs when the lease returns their buffers.
      return from_vectorized(comp.type_signature.result, out)


register_backend("vectorized", VectorizedBackend, default=VectorizedBackend())


def to_jax(comp: Computation):
  """A computation as a plain JAX function (vectorized backend), to
  differentiate, jit or vmap like any other.

  Arguments are given as for a Python call, but may be JAX tracers. Results
  stay JAX arrays; a `{T}@CLIENTS` result has a leading client axis.

  Example:
    >>> f = fedjit.to_jax(next_fn)
    >>> grad = jax.grad(lambda lr: loss(f(weights, lr, data)))(0.1)
  """
  current = get_backend()
  vb = current if isinstance(current, VectorizedBackend) else VectorizedBackend()
  types = param_types(comp)

  def fn(*args):
    if len(args) != len(types):
      raise TypeError(f"'{comp.name}' takes {len(types)} argument(s), got {len(args)}.")
    reps = [to_vectorized(t, a, argument_what(comp, i), xp=jnp)
            for i, (t, a) in enumerate(zip(types, args))]
    return vb.trace(comp, reps)
  fn.__name__ = comp.name
  return fn

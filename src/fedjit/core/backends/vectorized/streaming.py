"""Streaming a large cohort through a round, one chunk of clients at a time.

A round whose client data is passed as Python lists must copy them into
padded arrays before the compiled round can read them. For a cohort of
thousands of clients that copy is a large part of the round (a pass over all
of the client data) and a second copy of the data in memory. When the client
data reach the rest of the round only through fused client maps and
aggregations (`compiler/fusion.py`: FedAvg and its relatives, evaluation), the round
is run as

* one program per chunk of clients, which adds the chunk's contributions to
  the running sums of those aggregations (`Σ wᵢvᵢ`, `Σ wᵢ`, `Σ vᵢ`), and
* one final program, which divides the sums and runs the rest of the round.

JAX dispatches programs asynchronously, so the host pads chunk k+1 while the
device (or the CPU's other threads) computes chunk k, and only two chunks'
padded copies exist at a time. The sums are the same as in the one-program
round, added in chunks (equal up to float rounding).
"""

from __future__ import annotations

import functools
import math

import jax
import numpy as np

from fedjit.core import _buffers, _padding
from fedjit.core._computations import FederatedComputation, argument_what, executing, param_types
from fedjit.core._sequence import PaddedSequence
from fedjit.core._types import tensor_types
from fedjit.core._values import client_what, normalize
from fedjit.core.backends.interpreter import evaluate
from fedjit.core.backends.vectorized.cohorts import Bucket, Cohort
from fedjit.core.backends.vectorized.conversions import from_vectorized, to_vectorized
from fedjit.core.backends.vectorized.intrinsics import (VectorizedOps, unwrap, wrap,
                                                        raise_failed_checks)
from fedjit.core.backends.vectorized.loops import LoopPlan, tree_add
from fedjit.core.compiler import stream_plan as _graph_stream_plan
from fedjit.core.compiler import streamed_parameter

__all__ = ["Stage", "stream_plan", "run_streamed", "pad_chunk"]

MIN_CHUNK = 16  # clients per chunk at least
MIN_CHUNKS = 8  # chunks per round at least, where MIN_CHUNK allows
MIN_STREAM_BYTES = 4 << 20  # smaller cohorts are padded at once (cheap anyway)
_SAMPLE = 16  # clients whose sizes estimate the cohort's bytes per client


class _StageDone(Exception):
  """Ends tracing a chunk program once its running sums are known."""

  def __init__(self, totals):
    super().__init__("stage done")
    self.totals = totals


class Stage:
  """What one program of a streamed round does with the fused map-reduces
  that are streamed (`stage_of`: node id -> its stage): those of earlier
  stages (and all, in the final program) are finished from their sums in
  `prev`; this stage's adds the chunk's clients to `running` and ends the
  program (`_StageDone`). `VectorizedOps` asks it first (`fused_map_reduce`).
  """

  def __init__(self, stage_of: dict, stage: int, prev: list, running, final: bool):
    self.stage_of, self.stage, self.prev = stage_of, stage, prev
    self.running, self.final = running, final

  def fused_map_reduce(self, ops: VectorizedOps, node, v: Cohort):
    k = self.stage_of.get(id(node))
    if k is None:
      return NotImplemented  # not streamed: the ordinary fused map-reduce
    if self.final or k < self.stage:
      return ops.fused_finish(node, v, self.prev[k])
    partial = ops.fused_partials(node, v)  # the chunk's filler has valid 0
    raise _StageDone(partial if self.running is None else tree_add(self.running, partial))


def stream_plan(entry, comp: FederatedComputation, types: list):
  """(parameter index, fused node indices) when `comp` can be streamed (see
  `compiler.stream_plan`), remembered in the backend's `entry` for `comp`
  (a `backend.CompiledEntry`). None otherwise.
  """
  if entry.stream_plan is not ...:
    return entry.stream_plan
  plan = None
  index = streamed_parameter(types)
  if index is not None:
    plan = _graph_stream_plan(entry.fused(comp), index)
  entry.stream_plan = plan
  return plan


def _client_bytes(member) -> int:
  return sum(int(getattr(l, "nbytes", 0)) for l in jax.tree_util.tree_leaves(member))


def _program(backend, entry, comp: FederatedComputation, plan):
  """The jitted chunk/final program of `comp`, kept in the backend's `entry`
  for it (so one per backend configuration)."""
  if entry.stream_program is not None:
    return entry.stream_program
  graph = entry.fused(comp)
  types = param_types(comp)
  result_type = comp.type_signature.result  # not `comp`: the entry must not keep it alive
  stage_of = {id(graph.nodes[j]): k for k, j in enumerate(plan[1])}

  plan_of_loops = LoopPlan(backend.client_map, backend.chunk_size, backend.resolved_devices())

  def run(reps, prev, running, *, stage, num_clients, final):
    with executing():
      ops = VectorizedOps(num_clients, plan_of_loops, Stage(stage_of, stage, prev, running, final))
      try:
        out = evaluate(graph, [wrap(t, r, num_clients) for t, r in zip(types, reps)], ops)
      except _StageDone as done:
        return done.totals
      # The final program also returns its run-time checks (see VectorizedOps.checks).
      messages[:] = [m for m, _ in ops.checks]
      return unwrap(ops, result_type, out), [a for _, a in ops.checks]

  traces = entry.stream_traces
  messages: list = []  # of the final program's run-time checks

  def traced(*args, **kwargs):  # runs once per compilation
    traces.append(kwargs["stage"])
    return run(*args, **kwargs)
  jitted = jax.jit(traced, static_argnames=("stage", "num_clients", "final"))
  zeros_cache: dict = {}

  def zeros(reps, prev, stage, num_clients):
    """Zero running sums of `stage` (their shapes found by tracing once)."""
    leaves, treedef = jax.tree_util.tree_flatten((reps, prev))
    shapes = (treedef, tuple((np.shape(l), str(getattr(l, "dtype", type(l)))) for l in leaves),
              stage, num_clients)
    if shapes not in zeros_cache:
      zeros_cache[shapes] = jax.eval_shape(functools.partial(
          run, stage=stage, num_clients=num_clients, final=False), reps, prev, None)
    return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), zeros_cache[shapes])

  entry.stream_program = (jitted, zeros, messages)
  return entry.stream_program


def pad_chunk(element, members: list, equal: bool, seen: dict) -> PaddedSequence:
  """A chunk's client datasets padded to one length (see `run_streamed`);
  `seen` remembers the largest leaf shapes per element type."""
  flat = _padding.flatten_elements(element, members)
  sizes = _padding.max_leaf_sizes(tensor_types(element), flat)
  if element in seen:
    sizes = _padding.grown_sizes(sizes, seen[element])
  seen[element] = sizes
  longest = max(len(m) for m in members)
  steps = longest if equal else _padding.pow2(max(longest, 1))
  padded = _padding.pad_sequences(element, members, num_elements=steps, leaf_sizes=sizes,
                                 flat=flat)
  return padded if equal else PaddedSequence(padded.data, padded.mask, element, full=False)


def _lengths(value: list) -> "list[int] | None":
  """Each client's number of elements, where known without reading them."""
  try:
    return [len(m) for m in value]
  except TypeError:
    return None


def run_streamed(backend, state, comp: FederatedComputation, args: tuple, types: list, plan,
                 chunk_bytes: float):
  """Runs `comp` streaming its client data in chunks: `(result,)`, or None
  if the cohort is small enough to pad at once (the caller then runs the
  one-program round). `state` is the backend's compile cache and shape
  policy (`backend._BackendState`), where the chunk programs, chunk sizes
  and padded leaf shapes are remembered.

  Clients are taken shortest first, so each chunk holds clients of similar
  length and is padded to one length with little waste: the longest in the
  chunk, rounded up to a power of two unless all clients of the cohort are
  equally long (a few compiled chunk programs serve all rounds). The first
  chunk, whose padding nothing overlaps, is then the smallest. Element
  leaves are padded to the largest shape seen for the computation (e.g. the
  full batch size), for the same reason.
  """
  index, streamed = plan
  t = types[index]
  what = argument_what(comp, index)
  value = args[index]
  if not isinstance(value, list) or len(value) < 2 * MIN_CHUNK:
    return None  # too few clients to split
  n = len(value)
  done: dict[int, list] = {}

  def normalized(i):
    if i in done:
      return done.pop(i)
    return normalize(t.member, value[i], np, client_what(what, i))

  lengths = _lengths(value)
  if lengths is None:  # e.g. generators: read every client first
    done = {i: normalized(i) for i in range(n)}
    lengths = [len(done[i]) for i in range(n)]
  order = sorted(range(n), key=lambda i: lengths[i])
  sample = order[::max(1, n // _SAMPLE)][:_SAMPLE]
  done.update({i: normalized(i) for i in sample if i not in done})
  # Bytes per element (batch), and the cohort's bytes estimated from them.
  per_element = max(max(1, _client_bytes(done[i])) / max(1, len(done[i])) for i in sample)
  if sum(lengths) * per_element <= min(MIN_STREAM_BYTES, chunk_bytes):
    return None
  equal = len(set(lengths)) == 1
  longest = max(lengths[order[-1]], 1)
  padded_client = (longest if equal else _padding.pow2(longest)) * per_element
  # Several chunks, so that padding them overlaps most of the computation,
  # and none (not even the longest clients' chunk) larger than `chunk_bytes`.
  size = max(MIN_CHUNK, min(n // MIN_CHUNKS, int(chunk_bytes // padded_client)))
  # The chunk size of an earlier round of as many clients is kept while the
  # estimate is within 2x of it, so that rounds reuse compiled programs.
  entry = state.entry(comp)
  sizes_used = entry.stream_chunk_sizes
  if n in sizes_used and sizes_used[n] / 2 <= size <= sizes_used[n] * 2:
    size = sizes_used[n]
  if size >= n:
    return None
  sizes_used[n] = size
  chunks = math.ceil(n / size)
  size = math.ceil(n / chunks)  # chunks of equal size: one compiled program
  fill = chunks * size - n  # filler clients, in the first chunk

  element = t.member.element
  seen = entry.stream_leaf_sizes
  program, zeros, messages = _program(backend, entry, comp, plan)
  pending: list = []  # (lease, output) of chunks whose buffers are in use

  def settle(keep_last: int) -> None:
    while len(pending) > keep_last:
      lease, out = pending.pop(0)
      jax.block_until_ready(out)  # the program has finished reading the buffers
      lease.release()

  with _buffers.buffer_lease():
    reps = [None if i == index else to_vectorized(ti, a, argument_what(comp, i),
                                                  policy=state.shape_policy)
            for i, (ti, a) in enumerate(zip(types, args))]
    try:
      prev = []
      for stage in range(len(streamed)):
        running = None
        for c in range(chunks):
          settle(1)  # at most two chunks' padded copies at a time
          ids = order[max(0, c * size - fill):(c + 1) * size - fill]
          members = [normalized(i) for i in ids]
          if stage + 1 < len(streamed):
            done.update(zip(ids, members))  # read again by the next stage
          # The first chunk is filled up with copies of its shortest client,
          # left out of the sums, so that every chunk has the same shape.
          # Filler: position n (out of the cohort) and valid 0.
          members += [members[0]] * (size - len(members))
          valid = np.zeros(size, np.float32)
          valid[:len(ids)] = 1.0
          positions = np.full(size, n, np.int32)
          positions[:len(ids)] = ids
          lease = _buffers.BufferLease()
          with lease:
            padded = pad_chunk(element, members, equal, seen)
          reps[index] = Cohort([Bucket(padded, True, None, positions, valid)], n)
          if running is None:
            running = zeros(reps, prev, stage, n)
          running = program(reps, prev, running, stage=stage, num_clients=n, final=False)
          pending.append((lease, running))
        prev.append(running)
      out, checks = program(reps, prev, None, stage=len(streamed), num_clients=n, final=True)
      raise_failed_checks(messages, checks)
      result = from_vectorized(comp.type_signature.result, out)
    finally:
      settle(0)
  return (result,)

"""Ready-made stages: broadcast distributor, model-delta client work, and the
optimizer-applying finalizer."""

from __future__ import annotations

import enum
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fedjit
from fedjit.core import (CLIENTS, SERVER, FederatedType, SequenceType, TensorType,
                         Type, build_container, to_type)
from fedjit.learning.models._functional import FunctionalModel, ModelWeights, split_batch
from fedjit.learning.metrics import sum_then_finalize
from fedjit.learning.optimizers import as_optimizer
from fedjit.learning.templates._processes import (ClientResult, ClientWorkProcess,
                                                  DistributionProcess, FinalizerProcess,
                                                  MeasuredProcessOutput)

__all__ = ["ClientWeighting", "build_broadcast_process", "build_model_delta_client_work",
           "build_fed_sgd_client_work", "client_work_from_update",
           "build_apply_optimizer_finalizer", "drop_if_not_finite",
           "NUM_NON_FINITE_CLIENTS_KEY"]

ROUND = TensorType(np.int32)

# The metric counting clients whose update was not finite (TFF's name).
NUM_NON_FINITE_CLIENTS_KEY = "num_non_finite_clients"


class ClientWeighting(enum.Enum):
  """How client updates are weighted in the mean (TFF's ClientWeighting)."""
  UNIFORM = 1
  NUM_EXAMPLES = 2


def _empty_server():
  return fedjit.federated_value((), SERVER)


def build_broadcast_process(value_type: Any) -> DistributionProcess:
  """A distributor that broadcasts the server's value to all clients.

  Example:
    >>> distributor = build_broadcast_process(model_weights_type)
  """
  value_type = to_type(value_type)

  @fedjit.federated_computation
  def initialize_fn():
    return _empty_server()

  @fedjit.federated_computation(FederatedType((), SERVER), FederatedType(value_type, SERVER))
  def next_fn(state, value):
    return MeasuredProcessOutput(state, fedjit.federated_broadcast(value), _empty_server())

  return DistributionProcess(initialize_fn, next_fn)


def _is_float(x) -> bool:
  return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def _delta(initial, final):
  """initial - final for float leaves; float32 zeros for the others."""
  return jax.tree_util.tree_map(
      lambda a, b: (a - b) if _is_float(a) else jnp.zeros(jnp.shape(a), jnp.float32),
      initial, final)


def _all_finite(tree: Any) -> jax.Array:
  """True when every floating value in `tree` is finite."""
  checks = [jnp.all(jnp.isfinite(l)) for l in jax.tree_util.tree_leaves(tree) if _is_float(l)]
  return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)


def drop_if_not_finite(update: Any, weight: Any, metric_state: dict,
                       reset_metrics: dict | None = None):
  """A client's `(update, weight, metric_state)`, left out of the round if
  its update holds a NaN or infinity (TFF's `zero_all_if_any_non_finite`).

  Such a client sends a zero update with weight 0, so it drops out of the
  weighted mean Σ wᵢΔᵢ / Σ wᵢ; the update is zeroed with `where`, not
  multiplied by 0, because 0 · NaN is NaN. With `reset_metrics` (the zero
  metric state) its metrics are replaced too, so that its NaN loss does not
  reach the round's metrics (TFF's model-delta client work does this; its
  FedSGD does not). `metric_state['num_non_finite_clients']` is 1 for such
  a client and 0 otherwise; summed, it counts the dropped clients.

  Example (at the end of a custom `client_update` for
  `client_work_from_update`):
    >>> update, weight, metric_state = drop_if_not_finite(
    ...     update, weight, metric_state, model.metrics_init())
    >>> return ClientResult(update, weight), metric_state
  """
  finite = _all_finite(update)
  update = jax.tree_util.tree_map(lambda u: jnp.where(finite, u, jnp.zeros_like(u)), update)
  weight = jnp.where(finite, jnp.asarray(weight, jnp.float32), jnp.float32(0.0))
  if reset_metrics is not None:
    metric_state = jax.tree_util.tree_map(lambda m, z: jnp.where(finite, m, z),
                                          metric_state, reset_metrics)
  metric_state = dict(metric_state)
  metric_state[NUM_NON_FINITE_CLIENTS_KEY] = (~finite).astype(jnp.int32)
  return update, weight, metric_state


def _is_rng_state(x) -> bool:
  """Unsigned 32-bit weights are random-number state: Keras seed generators
  (`seed_generator_state`) and Flax RNG streams (key data and counters)."""
  return jnp.result_type(x) == jnp.uint32


def has_rng_state(weights: Any) -> bool:
  """Whether a model's weights hold random-number state (see `reseed`)."""
  return any(_is_rng_state(l) for l in jax.tree_util.tree_leaves(weights))


def reseed(weights: Any, *salt: Any) -> Any:
  """`weights` with every uint32 leaf (RNG state) moved to a new stream.

  Each RNG leaf `s` becomes `s + bits(fold_in(k, i))` (mod 2³²), where `i`
  is the leaf's position and `k` the key folded in with each of `salt`
  (int32/uint32 scalars such as the round number), so different salts give
  independent streams. Other leaves are returned unchanged.
  """
  leaves, treedef = jax.tree_util.tree_flatten(weights)
  if not any(_is_rng_state(l) for l in leaves):
    return weights
  key = jax.random.key(0x5EED)
  for s in salt:
    key = jax.random.fold_in(key, jnp.asarray(s).astype(jnp.uint32))
  out = [l + jax.random.bits(jax.random.fold_in(key, i), jnp.shape(l), jnp.uint32)
         if _is_rng_state(l) else l for i, l in enumerate(leaves)]
  return jax.tree_util.tree_unflatten(treedef, out)


def _as_bits(x) -> jax.Array:
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.floating):
    return jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
  return x.astype(jnp.uint32)


def _mix(v: jax.Array) -> jax.Array:
  """MurmurHash3's 32-bit finalizer (a bijection that scrambles all bits)."""
  v = (v ^ (v >> 16)) * jnp.uint32(0x85EBCA6B)
  v = (v ^ (v >> 13)) * jnp.uint32(0xC2B2AE35)
  return v ^ (v >> 16)


def client_fingerprint(data: Any) -> jax.Array:
  """A uint32 hash of a client's examples, to tell clients apart.

  The federated map gives a client no index, so its RNG streams are keyed
  by its data: every value of a batch's real (unmasked) examples is hashed
  together with its position, the hashes are summed mod 2³², and the sums
  of successive batches are chained. Integer sums do not depend on the order
  of addition, so both backends compute the same hash. Clients holding
  identical data get identical streams.
  """
  def step(h, batch, mask):
    for leaf in jax.tree_util.tree_leaves(batch):
      bits = _as_bits(leaf)
      position = jnp.arange(bits.size, dtype=jnp.uint32).reshape(bits.shape)
      m = jnp.reshape(mask > 0, jnp.shape(mask) + (1,) * (bits.ndim - jnp.ndim(mask)))
      hashed = _mix(bits ^ _mix(position + jnp.uint32(0x9E3779B9)))
      h = _mix(h ^ jnp.sum(jnp.where(m, hashed, jnp.uint32(0)), dtype=jnp.uint32))
    return h
  return data.reduce(jnp.uint32(0x811C9DC5), step, with_mask=True)


def zeros_of(t: Type):
  """A zero value of a (struct of) tensor type."""
  if isinstance(t, TensorType):
    return jnp.zeros(t.shape, t.dtype)
  return build_container(t, [zeros_of(e) for e in t.types()])


def _check_model(builder: str, model: Any) -> None:
  if not isinstance(model, FunctionalModel):
    raise TypeError(
        f"{builder} expects a fedjit.learning.models.FunctionalModel (from "
        f"from_keras_model, functional_model_from_keras or from_functions), got {model!r}. "
        f"If it is a function returning a model, call it first: model_fn().")


def check_loop_implementation(value: Any) -> None:
  """Accepts TFF's default `loop_implementation` (or none); raises for others.

  fedjit always folds a client's batches with one `Sequence.reduce` (a
  `lax.scan` in the compiled round), which is what TFF's default,
  `LoopImplementation.DATASET_REDUCE`, does; there is no iterator loop.
  """
  name = value if isinstance(value, str) else getattr(value, "name", None)
  if value is None or name == "DATASET_REDUCE":
    return
  raise NotImplementedError(
      f"loop_implementation={value!r} is not supported: fedjit always reduces a "
      f"client's batches in one compiled loop (TFF's default, "
      f"LoopImplementation.DATASET_REDUCE), with the same results. Leave "
      f"loop_implementation out.")


def build_model_delta_client_work(model: FunctionalModel, optimizer: Any,
                                  client_weighting: Any = ClientWeighting.NUM_EXAMPLES,
                                  metrics_aggregator: Any = None, *,
                                  proximal_strength: float = 0.0,
                                  loop_implementation: Any = None) -> ClientWorkProcess:
  """Local training that returns the model delta `initial - trained` as update.

  Each client runs `optimizer` over its batches once (repeat the data for
  more epochs), minimizing the model's loss plus, for FedProx,
  `proximal_strength / 2 · ‖w - w_server‖²`. Padded examples are masked out
  of the loss and metrics, so a client's result equals training it alone —
  except for layers that compute batch statistics (batch normalization),
  which see the padded rows of a smaller last batch on the vectorized
  backend: batch such models with `drop_remainder=True`. Training metrics
  are summed over clients and finalized at the server under `train`.

  A client whose delta holds a NaN or infinity is left out of the round, as
  in TFF: its update is zeroed, its weight is 0 and its metrics are reset;
  `train/num_non_finite_clients` counts such clients (`drop_if_not_finite`).

  Random-number state (uint32 non-trainable weights: Keras seed generators,
  Flax RNG streams) starts each client on its own stream, keyed by the round
  number and a fingerprint of the client's data (`client_fingerprint`), so
  dropout masks differ between rounds and between clients.

  Args:
    model: a `FunctionalModel`.
    optimizer: the client optimizer (anything `optimizers.as_optimizer` takes).
    client_weighting: `ClientWeighting.NUM_EXAMPLES`, `UNIFORM`, or a function
      of the client's finalized local metrics returning its weight.
    metrics_aggregator: how the clients' metric state becomes the round's
      metrics: a function `(metric_finalizers, local_unfinalized_metrics_type)`
      returning the aggregation of `{metric state}@CLIENTS` (TFF's form);
      default `fedjit.learning.metrics.sum_then_finalize`.
    proximal_strength: FedProx's μ (0 gives FedAvg's client work).
    loop_implementation: TFF compatibility: only TFF's default,
      `LoopImplementation.DATASET_REDUCE` (or its name, or None), which is
      what fedjit does: the client's batches are reduced in one compiled loop.

  Example:
    >>> client_work = build_model_delta_client_work(model, build_sgdm(0.1))
    >>> output = client_work.next(client_work.initialize(), client_weights, client_data)
    >>> output.measurements['train']['num_non_finite_clients']
    0

  Raises:
    NotImplementedError: for a `loop_implementation` other than TFF's default.
  """
  check_loop_implementation(loop_implementation)
  _check_model("build_model_delta_client_work", model)
  optimizer = as_optimizer(optimizer)
  if proximal_strength < 0:
    raise ValueError(f"proximal_strength must be >= 0, got {proximal_strength}.")
  if not (isinstance(client_weighting, ClientWeighting) or callable(client_weighting)):
    raise TypeError(f"client_weighting must be a ClientWeighting or a function of the "
                    f"local metrics, got {client_weighting!r}.")
  weights_type = model.weights_type
  data_type = SequenceType(model.input_spec)
  mu = float(proximal_strength)

  @fedjit.jax_computation(data_type, weights_type, ROUND)
  def client_update(data, initial, round_num):
    tx = optimizer.at_round(round_num)

    def step(carry, batch, mask):
      weights, opt_state, metric_state = carry

      def objective(trainable):
        out = model.forward_pass(ModelWeights(trainable, weights.non_trainable), batch, mask)
        loss, aux = out.loss, (out.predictions, out.non_trainable)
        prox = 0.0
        if mu > 0:
          prox = 0.5 * mu * sum(jnp.sum((a - b) ** 2) for a, b in zip(
              jax.tree_util.tree_leaves(trainable), jax.tree_util.tree_leaves(initial.trainable)))
        return loss + prox, (loss, aux)

      grads, (loss, (preds, non_trainable)) = jax.grad(objective, has_aux=True)(
          weights.trainable)
      updates, opt_state = tx.update(grads, opt_state, weights.trainable)
      trainable = optax.apply_updates(weights.trainable, updates)
      metric_state = model.metrics_update(metric_state, split_batch(batch)[1], preds, loss, mask)
      return ModelWeights(trainable, non_trainable), opt_state, metric_state

    start = initial
    if has_rng_state(initial.non_trainable):  # dropout etc.: new streams per client, per round
      start = initial._replace(non_trainable=reseed(
          initial.non_trainable, round_num, client_fingerprint(data)))
    carry = (start, tx.init(initial.trainable), model.metrics_init())
    final, _, metric_state = data.reduce(carry, step, with_mask=True)
    update = ModelWeights(_delta(initial.trainable, final.trainable),
                          _delta(initial.non_trainable, final.non_trainable))
    if client_weighting is ClientWeighting.NUM_EXAMPLES:
      weight = metric_state["num_examples"].astype(jnp.float32)
    elif client_weighting is ClientWeighting.UNIFORM:
      weight = jnp.float32(1.0)
    else:
      weight = jnp.asarray(client_weighting(model.metrics_finalize(metric_state)), jnp.float32)
    update, weight, metric_state = drop_if_not_finite(update, weight, metric_state,
                                                      model.metrics_init())
    return ClientResult(update, weight), metric_state

  return client_work_from_update(model, client_update, metrics_aggregator)


class _MetricFinalizers(dict):
  """A model's metric finalizers in both of TFF's forms: a mapping of metric
  names to the finalizer of that metric's state (TFF's
  `VariableModel.metric_finalizers()`), and a function of the whole state
  (a `FunctionalModel`'s `finalize_metrics`), which also sets the loss to
  NaN when every label was out of range."""

  def __init__(self, model: FunctionalModel, names: tuple):
    identity = lambda x: x
    finalizers = {}
    for name in names:
      if name in model.metrics:
        finalizers[name] = model.metrics[name].finalize
      elif name == "loss":
        finalizers[name] = lambda s: s[0] / jnp.maximum(s[1], 1.0)
      else:  # counts: num_examples, num_batches, num_invalid_labels, num_non_finite_clients
        finalizers[name] = identity
    super().__init__(finalizers)
    self._model = model

  def __call__(self, unfinalized_metrics: Any) -> dict:
    state = dict(unfinalized_metrics)
    extra = {k: state.pop(k) for k in (NUM_NON_FINITE_CLIENTS_KEY,) if k in state}
    return {**self._model.metrics_finalize(state), **extra}


def client_work_from_update(model: FunctionalModel, client_update,
                            metrics_aggregator: Any = None) -> ClientWorkProcess:
  """Client work around a jax computation `client_update(data, weights,
  round_num) -> (ClientResult, metric sums)`.

  `metrics_aggregator(metric_finalizers, local_unfinalized_metrics_type)`
  (default `fedjit.learning.metrics.sum_then_finalize`: sum over clients,
  then finalize at the server) gives the round's metrics, under `train`;
  the state is the round number, broadcast to the clients (for
  learning-rate schedules).

  Example:
    >>> client_work = client_work_from_update(model, my_client_update)
  """
  weights_type = model.weights_type
  data_type = SequenceType(model.input_spec)
  metric_type = client_update.type_signature.result[1]
  if metrics_aggregator is None:
    metrics_aggregator = sum_then_finalize
  if not callable(metrics_aggregator):
    raise TypeError(
        f"metrics_aggregator must be a function (metric_finalizers, "
        f"local_unfinalized_metrics_type) -> aggregation, such as "
        f"fedjit.learning.metrics.sum_then_finalize; got {metrics_aggregator!r}.")
  finalizers = _MetricFinalizers(model, tuple(getattr(metric_type, "names", lambda: ())()))
  aggregate_metrics = metrics_aggregator(finalizers, metric_type)
  if not callable(aggregate_metrics):
    raise TypeError(
        f"metrics_aggregator({getattr(metrics_aggregator, '__name__', metrics_aggregator)}) "
        f"must return the aggregation (a federated computation, or a function, taking "
        f"{{{metric_type}}}@CLIENTS and returning the metrics at SERVER); it returned "
        f"{aggregate_metrics!r}.")

  @fedjit.jax_computation(ROUND)
  def increment(round_num):
    return round_num + 1

  @fedjit.jax_computation
  def zero_round():
    return jnp.int32(0)

  @fedjit.federated_computation
  def initialize_fn():
    return fedjit.federated_value(zero_round(), SERVER)

  @fedjit.federated_computation(FederatedType(ROUND, SERVER),
                                FederatedType(weights_type, CLIENTS),
                                FederatedType(data_type, CLIENTS))
  def next_fn(state, weights, client_data):
    outputs = fedjit.federated_map(
        client_update, (client_data, weights, fedjit.federated_broadcast(state)))
    metrics = aggregate_metrics(outputs[1])
    t = getattr(metrics, "type_signature", None)
    if not (isinstance(t, FederatedType) and t.placement == SERVER):
      raise TypeError(
          f"The metrics_aggregator's aggregation must return the metrics placed at SERVER "
          f"(e.g. federated_map(finalize, federated_sum(metrics))); it returned "
          f"{t if t is not None else repr(metrics)}.")
    return MeasuredProcessOutput(
        state=fedjit.federated_map(increment, state),
        result=outputs[0],
        measurements=fedjit.federated_zip(dict(train=metrics)))

  return ClientWorkProcess(initialize_fn, next_fn)


def build_fed_sgd_client_work(model: FunctionalModel,
                              metrics_aggregator: Any = None) -> ClientWorkProcess:
  """Client work of FedSGD: the gradient of the mean loss over all of the
  client's examples, at the server's weights, weighted by the example count.

  A client whose gradient holds a NaN or infinity sends zeros with weight 0
  (its metrics are kept, as in TFF's FedSGD); `train/num_non_finite_clients`
  counts such clients.

  Args:
    model: a `FunctionalModel`.
    metrics_aggregator: see `build_model_delta_client_work`.

  Example:
    >>> client_work = build_fed_sgd_client_work(model)
  """
  _check_model("build_fed_sgd_client_work", model)
  weights_type = model.weights_type
  data_type = SequenceType(model.input_spec)

  @fedjit.jax_computation(data_type, weights_type, ROUND)
  def client_update(data, initial, round_num):
    def step(carry, batch, mask):
      grad_sum, non_trainable, metric_state = carry

      def objective(trainable):
        out = model.forward_pass(ModelWeights(trainable, non_trainable), batch, mask)
        return out.loss, (out.predictions, out.non_trainable)

      (loss, (preds, new_non_trainable)), grads = jax.value_and_grad(
          objective, has_aux=True)(initial.trainable)
      n = jnp.sum(mask)
      grad_sum = jax.tree_util.tree_map(lambda s, g: s + n * g, grad_sum, grads)
      metric_state = model.metrics_update(metric_state, split_batch(batch)[1], preds, loss, mask)
      return grad_sum, new_non_trainable, metric_state

    zeros = jax.tree_util.tree_map(jnp.zeros_like, initial.trainable)
    start = initial.non_trainable
    if has_rng_state(start):  # dropout etc.: new streams per client, per round
      start = reseed(start, round_num, client_fingerprint(data))
    grad_sum, non_trainable, metric_state = data.reduce(
        (zeros, start, model.metrics_init()), step, with_mask=True)
    n = jnp.maximum(metric_state["num_examples"].astype(jnp.float32), 1.0)
    update = ModelWeights(jax.tree_util.tree_map(lambda g: g / n, grad_sum),
                          _delta(initial.non_trainable, non_trainable))
    weight = metric_state["num_examples"].astype(jnp.float32)
    update, weight, metric_state = drop_if_not_finite(update, weight, metric_state)
    return ClientResult(update, weight), metric_state

  return client_work_from_update(model, client_update, metrics_aggregator)


def build_apply_optimizer_finalizer(optimizer: Any, model_weights_type: Any) -> FinalizerProcess:
  """A finalizer that applies the aggregated update with a server optimizer.

  The aggregate `ModelWeights` delta is used as a gradient for the trainable
  weights (`w ← w - lr · delta` with SGD); floating non-trainable weights
  (batch-norm statistics) become `w - delta`, the clients' mean, and RNG
  state (uint32 leaves) moves to a new stream every round. If the
  update holds a NaN or infinity, the model and optimizer state are left
  unchanged and `update_non_finite` reports 1.

  Example:
    >>> finalizer = build_apply_optimizer_finalizer(build_sgdm(1.0), weights_type)
  """
  optimizer = as_optimizer(optimizer)
  weights_type = to_type(model_weights_type)
  trainable_type = weights_type[0]

  @fedjit.jax_computation
  def init_state():
    return optimizer.init(zeros_of(trainable_type)), jnp.int32(0)

  state_type = init_state.type_signature.result
  update_type = to_type(jax.tree_util.tree_map(
      lambda t: jax.ShapeDtypeStruct(np.shape(t), np.float32),
      jax.eval_shape(lambda: zeros_of(weights_type))))

  @fedjit.jax_computation(state_type, weights_type, update_type)
  def apply_update(state, weights, update):
    opt_state, round_num = state
    tx = optimizer.at_round(round_num)
    updates, new_opt_state = tx.update(update[0], opt_state, weights[0])
    trainable = optax.apply_updates(weights[0], updates)
    non_trainable = jax.tree_util.tree_map(
        lambda w, d: (w - d).astype(w.dtype) if _is_float(w) else w, weights[1], update[1])
    non_trainable = reseed(non_trainable, round_num)  # RNG state advances every round
    finite = _all_finite(update)  # integer leaves are always finite
    keep = lambda new, old: jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, old)
    new_weights = keep(ModelWeights(trainable, non_trainable), ModelWeights(*weights))
    new_state = (keep(new_opt_state, opt_state), round_num + 1)
    return new_state, new_weights, dict(update_non_finite=(~finite).astype(jnp.int32))

  @fedjit.federated_computation
  def initialize_fn():
    return fedjit.federated_value(init_state(), SERVER)

  @fedjit.federated_computation(FederatedType(state_type, SERVER),
                                FederatedType(weights_type, SERVER),
                                FederatedType(update_type, SERVER))
  def next_fn(state, weights, update):
    out = fedjit.federated_map(apply_update, (state, weights, update))
    return MeasuredProcessOutput(state=out[0], result=out[1], measurements=out[2])

  return FinalizerProcess(initialize_fn, next_fn)

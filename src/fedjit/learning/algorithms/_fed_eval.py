"""Federated evaluation, and centralized evaluation of a server model."""

from __future__ import annotations

import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fedjit
from fedjit.core import CLIENTS, SERVER, FederatedType, SequenceType, to_sequence
from fedjit.learning.algorithms._fed_avg import (_accepts_model_fn, as_model,
                                                initial_weights_fn)
from fedjit.learning.metrics import sum_then_finalize
from fedjit.learning.models._functional import FunctionalModel, ModelWeights, split_batch
from fedjit._tracebacks import api_boundary
from fedjit.learning.templates import (DistributionProcess, LearningAlgorithmState,
                                       LearningProcess, LearningProcessOutput,
                                       build_broadcast_process)

__all__ = ["build_fed_eval", "evaluate"]


def _metric_sums(model: FunctionalModel, data, weights):
  def step(state, batch, mask):
    out = model.forward_pass(weights, batch, mask, training=False)
    return model.metrics_update(state, split_batch(batch)[1], out.predictions, out.loss, mask)
  return data.reduce(model.metrics_init(), step, with_mask=True)


@_accepts_model_fn
@api_boundary
def build_fed_eval(model: Any, model_distributor: Any = None,
                   metrics_aggregator: Any = None) -> LearningProcess:
  """Federated evaluation: the server model's metrics over the clients' data.

  Metric sums are added over all clients and finalized once, so a reported
  accuracy is the accuracy over every example. `next` returns
  `metrics['client_work']['eval']['current_round_metrics']` (this call) and
  `['total_rounds_metrics']` (all calls so far). Put the model to evaluate
  into the state with `set_model_weights`.

  Args:
    model: a `FunctionalModel` or a function returning one (or `model_fn=`).
    model_distributor: a `DistributionProcess` sending the model to the
      clients; default broadcast.
    metrics_aggregator: only the default, `sum_then_finalize`, for now: the
      running totals need the sums, so other aggregators are refused.

  Raises:
    NotImplementedError: for a metrics_aggregator other than
      `sum_then_finalize`.

  Example:
    >>> evaluator = build_fed_eval(model)
    >>> state = evaluator.set_model_weights(evaluator.initialize(), weights)
    >>> metrics = evaluator.next(state, test_data).metrics
  """
  if metrics_aggregator not in (None, sum_then_finalize):
    raise NotImplementedError(
        f"build_fed_eval sums the clients' metrics and finalizes the sum (keeping "
        f"running totals of the sums), so it takes no other metrics_aggregator yet; got "
        f"{metrics_aggregator!r}. Leave metrics_aggregator out, or pass "
        f"fedjit.learning.metrics.sum_then_finalize.")
  model = as_model(model)
  weights_type = model.weights_type
  distributor = model_distributor or build_broadcast_process(weights_type)
  if not isinstance(distributor, DistributionProcess):
    raise TypeError(f"build_fed_eval expects model_distributor to be a "
                    f"fedjit.learning.templates.DistributionProcess, got {distributor!r}.")
  data_type = SequenceType(model.input_spec)
  init_weights = initial_weights_fn(model)

  @fedjit.jax_computation
  def zero_sums():
    return model.metrics_init()

  sums_type = zero_sums.type_signature.result

  @fedjit.jax_computation(data_type, weights_type)
  def client_eval(data, weights):
    return _metric_sums(model, data, weights)

  @fedjit.jax_computation(sums_type, sums_type)
  def add_and_finalize(total, current):
    total = jax.tree_util.tree_map(jnp.add, total, current)
    return total, model.metrics_finalize(current), model.metrics_finalize(total)

  @fedjit.federated_computation
  def initialize_fn():
    return fedjit.federated_zip(LearningAlgorithmState(
        global_model_weights=fedjit.federated_value(init_weights(), SERVER),
        distributor=distributor.initialize(),
        client_work=fedjit.federated_value(zero_sums(), SERVER),
        aggregator=fedjit.federated_value((), SERVER),
        finalizer=fedjit.federated_value((), SERVER)))

  state_type = initialize_fn.type_signature.result

  @fedjit.federated_computation(state_type, FederatedType(data_type, CLIENTS))
  def next_fn(state, client_data):
    distributed = distributor.next(state.distributor, state.global_model_weights)
    sums = fedjit.federated_sum(fedjit.federated_map(
        client_eval, (client_data, distributed.result)))
    out = fedjit.federated_map(add_and_finalize, (state.client_work, sums))
    new_state = fedjit.federated_zip(LearningAlgorithmState(
        global_model_weights=state.global_model_weights, distributor=distributed.state,
        client_work=out[0], aggregator=state.aggregator, finalizer=state.finalizer))
    empty = fedjit.federated_value((), SERVER)
    metrics = fedjit.federated_zip(dict(
        distributor=distributed.measurements,
        client_work=fedjit.federated_zip(dict(eval=fedjit.federated_zip(dict(
            current_round_metrics=out[1], total_rounds_metrics=out[2])))),
        aggregator=empty, finalizer=empty))
    return LearningProcessOutput(state=new_state, metrics=metrics)

  return LearningProcess(initialize_fn, next_fn)


# The compiled evaluation of each model, held only while the model lives: the
# keys are weak, and the compiled function reaches its model through a weak
# reference too (a strong one from the value would keep the key alive).
_EVAL_CACHE: "weakref.WeakKeyDictionary[FunctionalModel, Any]" = weakref.WeakKeyDictionary()


def _compiled_eval(model: FunctionalModel):
  fn = _EVAL_CACHE.get(model)
  if fn is None:
    model_ref = weakref.ref(model)

    def metrics_of(data, w):
      m = model_ref()
      return m.metrics_finalize(_metric_sums(m, data, w))

    fn = _EVAL_CACHE[model] = jax.jit(metrics_of)
  return fn


@api_boundary
def evaluate(model: Any, weights: Any, dataset: Any) -> dict:
  """Centralized evaluation of model weights on a dataset (a list of batches).

  Padded examples are masked out, so the result is exact for any batching.

  Args:
    model: a `FunctionalModel` (or a function returning one).
    weights: `ModelWeights`, e.g. `trainer.get_model_weights(state)`.
    dataset: a list (or iterable) of `(x, y)` batches, or a fedjit Dataset.

  Returns:
    `{metric name: value, 'loss': ..., 'num_examples': ..., 'num_batches': ...}`.

  Example:
    >>> evaluate(model, trainer.get_model_weights(state), test_batches)['loss']
  """
  model = as_model(model)
  padded = to_sequence(model.input_spec, dataset, what="dataset")
  weights = ModelWeights(*weights)
  out = _compiled_eval(model)(padded, weights)
  return {k: np.asarray(v)[()] for k, v in out.items()}

"""Federated Averaging and its relatives, composed from the four stages."""

from __future__ import annotations

import functools
import sys
import warnings
from typing import Any

import jax.numpy as jnp
import numpy as np

import fedjit
from fedjit.core import TensorType
from fedjit.learning.aggregators import (MeanFactory, UnweightedAggregationFactory,
                                         UnweightedMeanFactory, WeightedAggregationFactory)
from fedjit.learning.models._functional import FunctionalModel
from fedjit.learning.optimizers import build_sgdm
from fedjit._tracebacks import api_boundary
from fedjit.learning.templates._stages import check_loop_implementation
from fedjit.learning.templates import (ClientWeighting, LearningProcess,
                                       build_apply_optimizer_finalizer,
                                       build_broadcast_process,
                                       build_fed_sgd_client_work,
                                       build_model_delta_client_work,
                                       compose_learning_process)

__all__ = ["build_weighted_fed_avg", "build_unweighted_fed_avg", "build_fed_prox",
           "build_fed_sgd", "build_federated_averaging_process", "as_model"]


def _is_keras_model(obj: Any) -> bool:
  keras = sys.modules.get("keras")
  return keras is not None and isinstance(obj, getattr(keras, "Model", ()))


def as_model(model: Any) -> FunctionalModel:
  """A `FunctionalModel`, or a function with no arguments returning one."""
  if isinstance(model, FunctionalModel):
    return model
  if _is_keras_model(model):
    raise TypeError(
        f"Expected a fedjit model, got the Keras model {getattr(model, 'name', '')!r} "
        f"({type(model).__name__}). "
        f"Wrap it first: fedjit.learning.models.from_keras_model(keras_model, loss=..., "
        f"input_spec=..., metrics=[...]).")
  if callable(model):
    made = model()
    if isinstance(made, FunctionalModel):
      return made
    raise TypeError(
        f"Expected a fedjit model (from fedjit.learning.models: from_keras_model, "
        f"functional_model_from_keras, from_functions, FunctionalModel) or a function "
        f"with no arguments returning one; got {model!r}, but the callable returned "
        f"type: {type(made).__name__} ({made!r}).")
  raise TypeError(
      f"Expected a fedjit model (from fedjit.learning.models: from_keras_model, "
      f"functional_model_from_keras, from_functions, FunctionalModel) or a function "
      f"with no arguments returning one; got {model!r}, which is not a callable.")


def _accepts_model_fn(builder):
  """Lets a builder take its model as `model_fn=` (TFF's keyword) too."""
  @functools.wraps(builder)
  def wrapper(*args, **kwargs):
    if "model_fn" in kwargs:
      if args or "model" in kwargs:
        raise TypeError(f"{builder.__name__} got both model and model_fn; pass one of them "
                        f"(model_fn is TFF's name for the model argument).")
      kwargs["model"] = kwargs.pop("model_fn")
    return builder(*args, **kwargs)
  return wrapper


def initial_weights_fn(model: FunctionalModel):
  """A jax computation with no arguments returning the model's initial weights."""
  initial = model.initial_weights

  @fedjit.jax_computation
  def initial_model_weights():
    import jax
    return jax.tree_util.tree_map(jnp.asarray, initial)
  return initial_model_weights


def _require_weighted(builder: str, model_aggregator: Any) -> None:
  """TFF's check: a weighted algorithm needs a weighted aggregation factory,
  or the clients' weights would be dropped without a word."""
  if model_aggregator is None or isinstance(model_aggregator, WeightedAggregationFactory):
    return
  given = type(model_aggregator).__name__
  if isinstance(model_aggregator, UnweightedAggregationFactory):
    given += ", an unweighted aggregation factory,"
  raise TypeError(
      f"{builder} weights each client's update (by its number of examples, or by "
      f"client_weighting), so model_aggregator must be a "
      f"fedjit.learning.aggregators.WeightedAggregationFactory, whose "
      f"create(value_type, weight_type) aggregates (value, weight) pairs; got "
      f"{given} which would drop the weights. Pass a weighted factory such as "
      f"MeanFactory(), or use build_unweighted_fed_avg(model, client_optimizer_fn, "
      f"model_aggregator=...) to average the clients equally.")


def _require_unweighted(builder: str, model_aggregator: Any) -> None:
  """TFF's check: an unweighted algorithm needs an unweighted factory (a
  weighted one would be handed weights that are all 1)."""
  if model_aggregator is None or isinstance(model_aggregator, UnweightedAggregationFactory):
    return
  given = type(model_aggregator).__name__
  if isinstance(model_aggregator, WeightedAggregationFactory):
    given += ", a weighted aggregation factory,"
  raise TypeError(
      f"{builder} averages the clients equally, so model_aggregator must be a "
      f"fedjit.learning.aggregators.UnweightedAggregationFactory, whose "
      f"create(value_type) aggregates the values alone; got {given}. Pass an "
      f"unweighted factory such as UnweightedMeanFactory(), or use "
      f"build_weighted_fed_avg(model, client_optimizer_fn, model_aggregator=..., "
      f"client_weighting=ClientWeighting.UNIFORM) for a weighted factory with equal "
      f"weights.")


def _compose(model, client_work, server_optimizer, model_distributor, model_aggregator):
  weights_type = model.weights_type
  distributor = model_distributor or build_broadcast_process(weights_type)
  update_type = client_work.result_type.member["update"]
  if isinstance(model_aggregator, WeightedAggregationFactory):
    aggregator = model_aggregator.create(update_type, TensorType(np.float32))
  elif hasattr(model_aggregator, "create"):
    aggregator = model_aggregator.create(update_type)
  else:
    raise TypeError(f"model_aggregator must be an aggregation factory (such as "
                    f"fedjit.learning.aggregators.MeanFactory()), got {model_aggregator!r}.")
  # Refused at build time: secure aggregation beside a flow that reveals
  # individual updates (e.g. a robust aggregator over a secure sum).
  fedjit.privacy_report(aggregator.next).check()
  finalizer = build_apply_optimizer_finalizer(server_optimizer, weights_type)
  return compose_learning_process(initial_weights_fn(model), distributor, client_work,
                                  aggregator, finalizer)


@_accepts_model_fn
@api_boundary
def build_weighted_fed_avg(model: Any, client_optimizer_fn: Any,
                           server_optimizer_fn: Any = None,
                           client_weighting: Any = None,
                           model_distributor: Any = None,
                           model_aggregator: Any = None,
                           metrics_aggregator: Any = None,
                           loop_implementation: Any = None) -> LearningProcess:
  """Federated Averaging (McMahan et al., 2017), weighted by client data size.

  Each round the server broadcasts the model; each client trains it on its
  data with the client optimizer and sends back `Δᵢ = w - wᵢ`; the server
  computes the weighted mean `Δ = Σ nᵢΔᵢ / Σ nᵢ` and applies it with the
  server optimizer as a gradient (`w ← w - Δ` with the default SGD(1.0)).
  FedAdam, FedYogi and FedAdagrad are this algorithm with
  `server_optimizer_fn=build_adam(...)` and so on.

  Args:
    model: a `FunctionalModel` or a function with no arguments returning one
      (also accepted as `model_fn=`, TFF's keyword, in every builder here).
    client_optimizer_fn: the client optimizer (`build_sgdm(0.1)`, any optax
      transformation, a Keras optimizer, or a function returning one).
    server_optimizer_fn: the server optimizer; default `build_sgdm(1.0)`.
    client_weighting: `ClientWeighting.NUM_EXAMPLES` (default), `UNIFORM`, or
      a function of a client's local metrics returning its weight.
    model_distributor: a `DistributionProcess`; default broadcast.
    model_aggregator: a `WeightedAggregationFactory`; default `MeanFactory()`.
    metrics_aggregator: a function `(metric_finalizers,
      local_unfinalized_metrics_type)` returning the aggregation of the
      clients' metric state (TFF's form); default
      `fedjit.learning.metrics.sum_then_finalize`.
    loop_implementation: TFF compatibility: only TFF's default,
      `LoopImplementation.DATASET_REDUCE` (or its name, or None), which is
      what fedjit does: each client's batches are reduced in one compiled loop.

  A client whose update is not finite (NaN or inf) gets weight 0 and drops
  out of the mean, as in TFF; `client_work/train/num_non_finite_clients`
  counts such clients.

  Returns:
    A `LearningProcess`.

  Raises:
    TypeError: if `model_aggregator` is not a weighted aggregation factory
      (as in TFF: an unweighted one would drop the client weights).
    NotImplementedError: for a `loop_implementation` other than TFF's default.

  Example:
    >>> trainer = build_weighted_fed_avg(
    ...     model, client_optimizer_fn=fedjit.learning.optimizers.build_sgdm(0.1))
    >>> state = trainer.initialize()
    >>> result = trainer.next(state, train_data)
  """
  check_loop_implementation(loop_implementation)
  _require_weighted("build_weighted_fed_avg", model_aggregator)
  model = as_model(model)
  client_work = build_model_delta_client_work(
      model, client_optimizer_fn, client_weighting or ClientWeighting.NUM_EXAMPLES,
      metrics_aggregator)
  return _compose(model, client_work, server_optimizer_fn or build_sgdm(1.0),
                  model_distributor, model_aggregator or MeanFactory())


@_accepts_model_fn
@api_boundary
def build_unweighted_fed_avg(model: Any, client_optimizer_fn: Any,
                             server_optimizer_fn: Any = None,
                             model_distributor: Any = None,
                             model_aggregator: Any = None,
                             metrics_aggregator: Any = None) -> LearningProcess:
  """Federated Averaging with every client weighted equally: `Δ = Σ Δᵢ / n`.

  Arguments as `build_weighted_fed_avg`; `model_aggregator` is an
  `UnweightedAggregationFactory` (default `UnweightedMeanFactory()`). As in
  TFF, a client whose update is not finite sends a zero update, which the
  unweighted mean still counts (n includes it); to leave such clients out
  of the mean, use `build_weighted_fed_avg(...,
  client_weighting=ClientWeighting.UNIFORM)`.

  Raises:
    TypeError: if `model_aggregator` is a weighted aggregation factory.

  Example:
    >>> trainer = build_unweighted_fed_avg(model, build_sgdm(0.1))
  """
  _require_unweighted("build_unweighted_fed_avg", model_aggregator)
  model = as_model(model)
  client_work = build_model_delta_client_work(model, client_optimizer_fn,
                                              ClientWeighting.UNIFORM, metrics_aggregator)
  return _compose(model, client_work, server_optimizer_fn or build_sgdm(1.0),
                  model_distributor, model_aggregator or UnweightedMeanFactory())


@_accepts_model_fn
@api_boundary
def build_fed_prox(model: Any, proximal_strength: float, client_optimizer_fn: Any,
                   server_optimizer_fn: Any = None, client_weighting: Any = None,
                   model_distributor: Any = None, model_aggregator: Any = None,
                   metrics_aggregator: Any = None) -> LearningProcess:
  """FedProx (Li et al., 2020): FedAvg whose clients minimize
  `loss(w) + μ/2 · ‖w - w_server‖²`, with μ = `proximal_strength`.

  With `proximal_strength=0` it is exactly `build_weighted_fed_avg`.

  Example:
    >>> trainer = build_fed_prox(model, proximal_strength=0.1,
    ...                          client_optimizer_fn=build_sgdm(0.1))
  """
  _require_weighted("build_fed_prox", model_aggregator)
  model = as_model(model)
  client_work = build_model_delta_client_work(
      model, client_optimizer_fn, client_weighting or ClientWeighting.NUM_EXAMPLES,
      metrics_aggregator, proximal_strength=proximal_strength)
  return _compose(model, client_work, server_optimizer_fn or build_sgdm(1.0),
                  model_distributor, model_aggregator or MeanFactory())


@_accepts_model_fn
@api_boundary
def build_fed_sgd(model: Any, server_optimizer_fn: Any = None,
                  model_distributor: Any = None, model_aggregator: Any = None,
                  metrics_aggregator: Any = None) -> LearningProcess:
  """FedSGD: clients send the gradient of their mean loss at the server's
  weights; the server applies the example-weighted mean gradient with its
  optimizer (default `build_sgdm(0.1)`). With one client, a round is one
  centralized gradient step on that client's data. A client whose gradient
  is not finite gets weight 0 and drops out of the mean, as in TFF.
  `metrics_aggregator` as in `build_weighted_fed_avg`.

  Example:
    >>> trainer = build_fed_sgd(model, server_optimizer_fn=build_sgdm(0.5))
  """
  _require_weighted("build_fed_sgd", model_aggregator)
  model = as_model(model)
  return _compose(model, build_fed_sgd_client_work(model, metrics_aggregator),
                  server_optimizer_fn or build_sgdm(0.1), model_distributor,
                  model_aggregator or MeanFactory())


@api_boundary
def build_federated_averaging_process(model_fn: Any, client_optimizer_fn: Any,
                                      server_optimizer_fn: Any = None,
                                      **kwargs) -> LearningProcess:
  """Deprecated TFF name for `build_weighted_fed_avg`.

  Example:
    >>> process = build_federated_averaging_process(model_fn, lambda: optax.sgd(0.02))
  """
  warnings.warn("build_federated_averaging_process is deprecated (as in TFF); use "
                "fedjit.learning.algorithms.build_weighted_fed_avg.",
                DeprecationWarning, stacklevel=2)
  return build_weighted_fed_avg(model_fn, client_optimizer_fn, server_optimizer_fn, **kwargs)

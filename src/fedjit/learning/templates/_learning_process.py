"""`LearningProcess`: distributor, client work, aggregator and finalizer composed."""

from __future__ import annotations

import warnings
from typing import Any, Mapping, NamedTuple

import numpy as np

import fedjit
from fedjit._tracebacks import user_stacklevel
from fedjit.core import SERVER, Computation, FederatedTypeError, JaxComputation
from fedjit.learning.templates._processes import (AggregationProcess,
                                                  ClientWorkProcess,
                                                  DistributionProcess,
                                                  FinalizerProcess)
from fedjit.templates import IterativeProcess

__all__ = ["InvalidLabelsWarning", "LearningProcess", "LearningProcessOutput",
           "LearningAlgorithmState",
           "compose_learning_process"]


class LearningAlgorithmState(NamedTuple):
  """The state of a composed learning process (at SERVER)."""
  global_model_weights: Any
  distributor: Any
  client_work: Any
  aggregator: Any
  finalizer: Any


class InvalidLabelsWarning(UserWarning):
  """Examples were skipped because their labels are not class indices."""


class _Output(NamedTuple):
  state: Any
  metrics: Any


class LearningProcessOutput(_Output):
  """What `LearningProcess.next` returns: the new state and the round's metrics.

  Scalar metrics are plain Python numbers (a float32 metric becomes the
  Python float that prints as the float32 does), so that printed metrics
  read as TFF's do: `{'loss': 3.6005745, 'num_examples': 180}`. When
  examples were skipped because their label was out of range
  (`num_invalid_labels`), a `UserWarning` says so.

  Example:
    >>> result = trainer.next(state, train_data)
    >>> result.metrics['client_work']['train']['loss']
    2.3025851
  """
  __slots__ = ()

  def __new__(cls, state: Any, metrics: Any):
    metrics = _plain_numbers(metrics)
    _warn_invalid_labels(metrics)
    return super().__new__(cls, state, metrics)


def plain_number(x: Any) -> Any:
  """A 0-d NumPy value as a Python number; anything else unchanged.

  A float32 becomes the Python float that prints as the float32 does (the
  shortest decimal that reads back as it: `0.1`, not `0.10000000149011612`).

  Example:
    >>> plain_number(np.float32(0.1)), plain_number(np.array(3, np.int32))
    (0.1, 3)
  """
  if isinstance(x, np.ndarray) and x.ndim == 0:
    x = x[()]
  if not isinstance(x, np.generic):
    return x
  if isinstance(x, np.floating):
    return float(str(x)) if x.dtype.itemsize < 8 else float(x)
  if isinstance(x, (np.integer, np.bool_)):
    return x.item()
  return x


def _plain_numbers(metrics: Any) -> Any:
  """`metrics` with 0-d NumPy leaves as Python numbers, containers (and the
  order of their keys) kept."""
  if isinstance(metrics, Mapping):
    return type(metrics)((k, _plain_numbers(v)) for k, v in metrics.items())
  if isinstance(metrics, tuple) and hasattr(metrics, "_fields"):
    return type(metrics)(*(_plain_numbers(v) for v in metrics))
  if isinstance(metrics, (list, tuple)):
    return type(metrics)(_plain_numbers(v) for v in metrics)
  return plain_number(metrics)


def _count(metrics: Any, name: str) -> int:
  """The sum of every integer metric called `name` in a metrics structure."""
  if isinstance(metrics, Mapping):  # (evaluation's running totals repeat this round's)
    return sum(int(v) if k == name and isinstance(v, (int, np.integer)) else _count(v, name)
               for k, v in metrics.items() if k != "total_rounds_metrics")
  if isinstance(metrics, (list, tuple)):
    return sum(_count(v, name) for v in metrics)
  return 0


def _warn_invalid_labels(metrics: Any) -> None:
  skipped = _count(metrics, "num_invalid_labels")
  if skipped > 0:
    warnings.warn(
        f"{skipped} examples were skipped because their labels are not class indices "
        f"of the model (0 <= label < the number of outputs); they are not in the loss, "
        f"the metrics or num_examples. Check the labels (e.g. 1-based or -1 labels) "
        f"or the size of the model's output layer.", InvalidLabelsWarning,
        stacklevel=user_stacklevel())


class LearningProcess(IterativeProcess):
  """An iterative process for training a model.

  `initialize()` gives the state, `next(state, client_data)` runs one round
  and returns `LearningProcessOutput(state, metrics)`; `get_model_weights`
  and `set_model_weights` read and replace the model in a state.

  Example:
    >>> state = trainer.initialize()
    >>> result = trainer.next(state, train_data)
    >>> result.metrics['client_work']['train']['loss']
  """

  def __init__(self, initialize_fn: Computation, next_fn: Computation,
               get_model_weights=None, set_model_weights=None):
    super().__init__(initialize_fn, next_fn)
    result = next_fn.type_signature.result
    names = getattr(result, "names", lambda: ())()
    if names != ("state", "metrics"):
      raise FederatedTypeError(
          f"A learning process's next must return LearningProcessOutput(state, "
          f"metrics), but returns {result}.")
    self._get = get_model_weights or (lambda state: state.global_model_weights)
    self._set = set_model_weights or (
        lambda state, weights: state._replace(global_model_weights=weights))

  def get_model_weights(self, state: Any) -> Any:
    """The model weights held in `state` (a `ModelWeights`)."""
    return self._get(state)

  def set_model_weights(self, state: Any, model_weights: Any) -> Any:
    """A copy of `state` whose model weights are `model_weights`.

    Raises:
      FederatedTypeError: if the weights do not have the model's structure.
    """
    import jax
    import numpy as np
    old = self._get(state)
    if jax.tree_util.tree_structure(old) != jax.tree_util.tree_structure(model_weights):
      raise FederatedTypeError(
          f"set_model_weights expects weights with the structure "
          f"{jax.tree_util.tree_structure(old)}, got "
          f"{jax.tree_util.tree_structure(model_weights)}.")
    for a, b in zip(jax.tree_util.tree_leaves(old), jax.tree_util.tree_leaves(model_weights)):
      if np.shape(a) != np.shape(b):
        raise FederatedTypeError(f"set_model_weights: a weight of shape {np.shape(a)} "
                                 f"was given shape {np.shape(b)}.")
    return self._set(state, model_weights)


def compose_learning_process(initial_model_weights_fn: JaxComputation,
                             model_weights_distributor: DistributionProcess,
                             client_work: ClientWorkProcess,
                             model_update_aggregator: AggregationProcess,
                             model_finalizer: FinalizerProcess) -> LearningProcess:
  """Builds a learning process from its four stages (TFF's composition).

  A round broadcasts the model, runs client work, aggregates the updates
  (weighted by the clients' update weights when the aggregator is weighted)
  and lets the finalizer apply the aggregate. The stages' types must fit;
  that is checked here, while the round is traced, not during a run.

  Args:
    initial_model_weights_fn: a jax computation with no arguments returning
      the initial `ModelWeights`.
    model_weights_distributor: a `DistributionProcess`.
    client_work: a `ClientWorkProcess`.
    model_update_aggregator: an `AggregationProcess`.
    model_finalizer: a `FinalizerProcess`.

  Returns:
    A `LearningProcess`.

  Example:
    >>> process = compose_learning_process(init_fn, distributor, client_work,
    ...                                    aggregator, finalizer)
  """
  for name, obj, cls in (
      ("model_weights_distributor", model_weights_distributor, DistributionProcess),
      ("client_work", client_work, ClientWorkProcess),
      ("model_update_aggregator", model_update_aggregator, AggregationProcess),
      ("model_finalizer", model_finalizer, FinalizerProcess)):
    if not isinstance(obj, cls):
      raise TypeError(f"compose_learning_process expects {name} to be a "
                      f"{cls.__name__}, got {type(obj).__name__}.")
  data_type = client_work.next.type_signature.parameter[2]

  @fedjit.federated_computation
  def initialize_fn():
    return fedjit.federated_zip(LearningAlgorithmState(
        global_model_weights=fedjit.federated_value(initial_model_weights_fn(), SERVER),
        distributor=model_weights_distributor.initialize(),
        client_work=client_work.initialize(),
        aggregator=model_update_aggregator.initialize(),
        finalizer=model_finalizer.initialize()))

  state_type = initialize_fn.type_signature.result

  @fedjit.federated_computation(state_type, data_type)
  def next_fn(state, client_data):
    weights = state.global_model_weights
    distributed = model_weights_distributor.next(state.distributor, weights)
    trained = client_work.next(state.client_work, distributed.result, client_data)
    updates = trained.result
    if model_update_aggregator.is_weighted:
      aggregated = model_update_aggregator.next(
          state.aggregator, updates.update, updates.update_weight)
    else:
      aggregated = model_update_aggregator.next(state.aggregator, updates.update)
    finalized = model_finalizer.next(state.finalizer, weights, aggregated.result)
    new_state = fedjit.federated_zip(LearningAlgorithmState(
        global_model_weights=finalized.result,
        distributor=distributed.state,
        client_work=trained.state,
        aggregator=aggregated.state,
        finalizer=finalized.state))
    metrics = fedjit.federated_zip(dict(
        distributor=distributed.measurements,
        client_work=trained.measurements,
        aggregator=aggregated.measurements,
        finalizer=finalized.measurements))
    return LearningProcessOutput(state=new_state, metrics=metrics)

  return LearningProcess(initialize_fn, next_fn)

"""Summable metrics: per-client sums and counts, added across clients,
finalized on the server.

A `Metric` is three pure functions over a small state of sums: `init`,
`update(state, y_true, y_pred, mask)` and `finalize(state)`. Because the state
is made of sums, adding the states of all clients and finalizing once gives
the metric over every example of the round (not a mean of per-client means).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Metric", "KerasMetric", "MeanMetric", "as_metrics", "masked_mean_per_example"]


class Metric:
  """A metric whose state is a pytree of sums (so states add across clients)."""

  name: str

  def init(self) -> Any:
    raise NotImplementedError

  def update(self, state: Any, y_true, y_pred, mask) -> Any:
    raise NotImplementedError

  def finalize(self, state: Any) -> Any:
    raise NotImplementedError


def _per_example(values: jax.Array) -> jax.Array:
  """Reduces a per-example array [b, ...] to shape [b] by the mean."""
  values = jnp.asarray(values)
  if values.ndim == 0:
    return values[None]
  return values.reshape(values.shape[0], -1).mean(axis=1) if values.ndim > 1 else values


def masked_mean_per_example(values: jax.Array, mask: jax.Array) -> jax.Array:
  """Σ mᵢ vᵢ / max(Σ mᵢ, 1) over the real examples of a batch."""
  v = _per_example(values)
  m = mask.astype(v.dtype)
  return jnp.sum(v * m) / jnp.maximum(jnp.sum(m), 1.0)


class MeanMetric(Metric):
  """The mean over examples of `fn(y_true, y_pred)` (per-example values).

  Args:
    name: the metric's name in reported metrics.
    fn: `fn(y_true, y_pred) -> values of shape [batch]` (other axes are
      averaged per example).

  Example:
    >>> accuracy = MeanMetric("accuracy",
    ...     lambda y, p: (p.argmax(-1) == y.reshape(-1)).astype(jnp.float32))
  """

  def __init__(self, name: str, fn: Callable):
    self.name = name
    self.fn = fn

  def init(self):
    return (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))

  def update(self, state, y_true, y_pred, mask):
    total, count = state
    v = _per_example(self.fn(y_true, y_pred)).astype(jnp.float32)
    m = mask.astype(jnp.float32)
    return total + jnp.sum(v * m), count + jnp.sum(m)

  def finalize(self, state):
    total, count = state
    return total / jnp.maximum(count, 1.0)


class KerasMetric(Metric):
  """A Keras 3 metric used statelessly (its variables are sums and counts).

  Works for metrics whose variables add across clients: the mean-type
  metrics (`SparseCategoricalAccuracy`, `MeanAbsoluteError`, `Mean`, ...),
  and count-based ones (`Precision`, `Recall`, `AUC`).
  """

  def __init__(self, metric: Any):
    if isinstance(metric, type):
      metric = metric()
    self.metric = metric
    self.name = metric.name
    if not metric.variables:
      raise TypeError(
          f"Keras metric {metric.name!r} has no variables yet; fedjit needs metrics "
          f"whose state exists when constructed (e.g. keras.metrics.Mean).")
    # A metric built inside a jax computation (TFF's `model_fn()` in a
    # `tf_computation`) has traced initial values: keep them traced.
    self._initial = [v.value if isinstance(v.value, jax.core.Tracer) else np.asarray(v.value)
                     for v in metric.variables]
    # Mean-type wrappers take (y_true, y_pred); plain reducers such as
    # keras.metrics.Mean take one array of values: they get the predictions.
    import inspect
    params = inspect.signature(metric.update_state).parameters
    self._takes_labels = "y_true" in params

  def init(self):
    return [jnp.asarray(v) for v in self._initial]

  def update(self, state, y_true, y_pred, mask):
    args = (y_true, y_pred) if self._takes_labels else (y_pred,)
    return list(self.metric.stateless_update_state(
        state, *args, sample_weight=mask.astype(jnp.float32)))

  def finalize(self, state):
    return self.metric.stateless_result(state)


def _is_keras_metric(obj) -> bool:
  cls = obj if isinstance(obj, type) else type(obj)
  return any(c.__module__.startswith("keras") and c.__name__ == "Metric"
             for c in cls.__mro__)


def _metric(obj: Any, name: str | None = None) -> Metric:
  if isinstance(obj, Metric):
    return obj
  if _is_keras_metric(obj):
    m = KerasMetric(obj)
    if name is not None:
      m.name = name
    return m
  if callable(obj):
    made = obj()
    if isinstance(made, Metric) or _is_keras_metric(made):
      return _metric(made, name)
  raise TypeError(
      f"Expected a metric: a Keras metric (class or instance), a fedjit "
      f"Metric, or a function with no arguments returning one; got {obj!r}.")


def as_metrics(metrics: Any) -> dict[str, Metric]:
  """Normalizes metrics given as a list, a mapping `name -> metric` or a
  no-argument function returning either, into an ordered `{name: Metric}`.

  Example:
    >>> as_metrics([keras.metrics.SparseCategoricalAccuracy()])
    {'sparse_categorical_accuracy': <KerasMetric ...>}
  """
  if metrics is None:
    return {}
  if callable(metrics) and not isinstance(metrics, (Mapping, list, tuple)) and not (
      _is_keras_metric(metrics) or isinstance(metrics, Metric)):
    made = metrics()
    if isinstance(made, (Mapping, list, tuple)):
      return as_metrics(made)
    metrics = [made]
  out: dict[str, Metric] = {}
  if isinstance(metrics, Mapping):
    items = [(name, _metric(m, name)) for name, m in metrics.items()]
  else:
    if not isinstance(metrics, (list, tuple)):
      metrics = [metrics]
    items = [(m.name, m) for m in (_metric(x) for x in metrics)]
  for name, m in items:
    if name in out or name in ("loss", "num_examples", "num_batches"):
      raise ValueError(f"Duplicate or reserved metric name {name!r}; give the "
                       f"metrics distinct names (a dict of name -> metric).")
    out[name] = m
  return out

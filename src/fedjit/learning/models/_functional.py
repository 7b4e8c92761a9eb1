"""Functional models: weights as pytrees, and pure functions over them."""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core import SequenceType, StructType, TensorType, Type, to_type
from fedjit.core._types import _is_dtype_like, _is_shape_like
from fedjit.learning.metrics._metrics import Metric, as_metrics, masked_mean_per_example

__all__ = ["ModelWeights", "FunctionalModel", "from_functions", "input_spec_type",
           "split_batch"]

Params = Any


class ModelWeights(NamedTuple):
  """A model's weights: `trainable` and `non_trainable` pytrees (lists of
  arrays for Keras models).

  Example:
    >>> weights = ModelWeights(trainable=[w, b], non_trainable=[])
  """
  trainable: Params
  non_trainable: Params

  @classmethod
  def from_model(cls, model: "FunctionalModel") -> "ModelWeights":
    """The initial weights of a fedjit model."""
    return model.initial_weights

  def assign_weights_to(self, keras_model: Any) -> None:
    """Copies these weights into a Keras model's variables.

    Example:
      >>> trainer.get_model_weights(state).assign_weights_to(keras_model)
    """
    for var, value in zip(keras_model.trainable_variables, self.trainable):
      var.assign(np.asarray(value))
    for var, value in zip(keras_model.non_trainable_variables, self.non_trainable):
      var.assign(np.asarray(value))


def _spec_leaf(spec: Any) -> Type:
  if isinstance(spec, Type) or isinstance(spec, type) or _is_dtype_like(spec):
    return to_type(spec)
  shape = getattr(spec, "shape", None)
  dtype = getattr(spec, "dtype", None)
  if shape is not None and dtype is not None:
    dims = [None if d is None else int(d) for d in tuple(shape)]
    return TensorType(np.dtype(getattr(dtype, "as_numpy_dtype", dtype)), dims)
  return to_type(spec)


def input_spec_type(spec: Any) -> Type:
  """The element type of a model's input: `(x, y)` batches.

  Accepts fedjit types, `(dtype, shape)` pairs, objects with `shape` and
  `dtype` (`jax.ShapeDtypeStruct`, Keras or TF tensor specs), pytrees of
  these, a `fedjit.SequenceType`, or a dataset's `element_spec`.

  Example:
    >>> str(input_spec_type(((np.float32, [None, 784]), (np.int32, [None, 1]))))
    '<float32[?,784],int32[?,1]>'
  """
  spec = getattr(spec, "element_spec", spec)
  if isinstance(spec, SequenceType):
    return spec.element
  if isinstance(spec, Type):
    return spec
  if (isinstance(spec, tuple) and len(spec) == 2 and _is_dtype_like(spec[0])
      and _is_shape_like(spec[1])):
    return TensorType(np.dtype(spec[0]), spec[1])
  if isinstance(spec, Mapping):
    return StructType([(str(k), input_spec_type(v)) for k, v in spec.items()],
                      container=type(spec))
  if isinstance(spec, (list, tuple)):
    fields = [input_spec_type(s) for s in spec]
    if hasattr(spec, "_fields"):
      return StructType(list(zip(spec._fields, fields)), container=type(spec))
    return StructType(fields, container=type(spec))
  return _spec_leaf(spec)


def split_batch(batch: Any) -> tuple[Any, Any]:
  """`(x, y)` of a batch given as a pair, or a dict/namedtuple with x and y."""
  if isinstance(batch, Mapping):
    if "x" in batch and "y" in batch:
      return batch["x"], batch["y"]
    raise TypeError(f"A batch given as a dict needs keys 'x' and 'y', got {list(batch)}.")
  if hasattr(batch, "x") and hasattr(batch, "y"):
    return batch.x, batch.y
  if isinstance(batch, (list, tuple)) and len(batch) == 2:
    return batch[0], batch[1]
  raise TypeError(f"A batch must be an (x, y) pair or a dict with 'x' and 'y'; got "
                  f"{type(batch).__name__}.")


def _is_keras_loss(obj) -> bool:
  return any(c.__module__.startswith("keras") and c.__name__ == "Loss"
             for c in type(obj).__mro__)


def per_example_loss_fn(loss: Any) -> Callable:
  """`loss(y_true, y_pred)` giving one value per example.

  Keras `Loss` objects are called unreduced (their `call`), so that padded
  examples can be masked out exactly.
  """
  if _is_keras_loss(loss):
    return loss.call
  if isinstance(loss, type) and callable(loss):
    made = loss()
    if _is_keras_loss(made):
      return made.call
  if callable(loss):
    return loss
  raise TypeError(f"Expected a loss: a Keras loss or a function (y_true, y_pred) -> "
                  f"per-example losses; got {loss!r}.")


class FunctionalModel:
  """A model as pure functions over explicit weights (TFF's FunctionalModel).

  Args:
    initial_weights: `ModelWeights` (or a pair `(trainable, non_trainable)`).
    predict_on_batch_fn: `fn(model_weights, x, training) -> predictions`, for
      models without state updates.
    loss_fn: `loss_fn(y_true, y_pred)`, per-example losses (a Keras loss
      object also works; it is evaluated unreduced).
    input_spec: the type of one `(x, y)` batch (see `input_spec_type`).
    metrics: metrics to report: a list, a `{name: metric}` mapping, or a
      function returning one (Keras metrics or `fedjit` metrics).
    apply_fn: instead of `predict_on_batch_fn`, `fn(model_weights, x,
      training) -> (predictions, new_non_trainable)` for models whose
      non-trainable state changes in training (batch-norm statistics).

  Example:
    >>> model = FunctionalModel(
    ...     initial_weights=ModelWeights([np.zeros((3, 1)), np.zeros(1)], []),
    ...     predict_on_batch_fn=lambda w, x, training: x @ w.trainable[0] + w.trainable[1],
    ...     loss_fn=lambda y, p: (y - p)[:, 0] ** 2,
    ...     input_spec=((np.float32, [None, 3]), (np.float32, [None, 1])))
  """

  def __init__(self, initial_weights: Any, predict_on_batch_fn: Callable | None = None,
               loss_fn: Any = None, input_spec: Any = None, metrics: Any = None,
               apply_fn: Callable | None = None):
    if (predict_on_batch_fn is None) == (apply_fn is None):
      raise TypeError("Give exactly one of predict_on_batch_fn or apply_fn.")
    if loss_fn is None or input_spec is None:
      raise TypeError("A FunctionalModel needs loss_fn and input_spec.")
    if not isinstance(initial_weights, ModelWeights):
      initial_weights = ModelWeights(*initial_weights)
    self.initial_weights = jax.tree_util.tree_map(np.asarray, initial_weights)
    self._predict = predict_on_batch_fn
    self._apply = apply_fn
    self.loss_fn = per_example_loss_fn(loss_fn)
    self.input_spec = input_spec_type(input_spec)
    self.metrics: dict[str, Metric] = as_metrics(metrics)

  @property
  def weights_type(self) -> Type:
    """The fedjit type of the model weights."""
    return to_type(jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype), self.initial_weights))

  def apply(self, weights: ModelWeights, x: Any, training: bool) -> tuple[Any, Any]:
    """`(predictions, new_non_trainable)` on a batch."""
    if self._apply is not None:
      return self._apply(weights, x, training)
    return self._predict(weights, x, training), weights.non_trainable

  def predict_on_batch(self, weights: ModelWeights, x: Any, training: bool = False):
    """The model's predictions for a batch of inputs."""
    return self.apply(weights, x, training)[0]

  def loss(self, weights: ModelWeights, batch: Any, mask: jax.Array, training: bool = True):
    """`(mean loss over real examples, (predictions, new_non_trainable))`."""
    x, y = split_batch(batch)
    preds, non_trainable = self.apply(weights, x, training)
    return masked_mean_per_example(self.loss_fn(y, preds), mask), (preds, non_trainable)

  def metrics_init(self) -> dict:
    """Zero metric state: user metrics, then loss, num_examples, num_batches."""
    state = {name: m.init() for name, m in self.metrics.items()}
    state["loss"] = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
    state["num_examples"] = jnp.zeros((), jnp.int32)
    state["num_batches"] = jnp.zeros((), jnp.int32)
    return state

  def metrics_update(self, state: dict, y_true, y_pred, loss_value, mask) -> dict:
    """Adds one batch to the metric sums."""
    out = {name: m.update(state[name], y_true, y_pred, mask)
           for name, m in self.metrics.items()}
    n = jnp.sum(mask.astype(jnp.float32))
    total, count = state["loss"]
    out["loss"] = (total + loss_value * n, count + n)
    out["num_examples"] = state["num_examples"] + n.astype(jnp.int32)
    out["num_batches"] = state["num_batches"] + (n > 0).astype(jnp.int32)
    return out

  def metrics_finalize(self, state: dict) -> dict:
    """Metric values from (summed) metric state."""
    out = {name: m.finalize(state[name]) for name, m in self.metrics.items()}
    total, count = state["loss"]
    out["loss"] = total / jnp.maximum(count, 1.0)
    out["num_examples"] = state["num_examples"]
    out["num_batches"] = state["num_batches"]
    return out


def from_functions(init_fn: Callable[[jax.Array], Params], apply_fn: Callable,
                   loss_fn: Any, input_spec: Any, metrics: Any = None,
                   seed: int = 0) -> FunctionalModel:
  """A model from plain JAX functions: `init_fn(rng) -> params` and
  `apply_fn(params, x) -> predictions`.

  Args:
    init_fn: builds the trainable parameters from a PRNG key.
    apply_fn: the forward pass.
    loss_fn: per-example loss `loss_fn(y_true, y_pred)`.
    input_spec: the type of one `(x, y)` batch.
    metrics: metrics to report (see `FunctionalModel`).
    seed: the PRNG seed for `init_fn`.

  Example:
    >>> model = from_functions(
    ...     lambda rng: {"w": jnp.zeros((784, 10)), "b": jnp.zeros(10)},
    ...     lambda p, x: x @ p["w"] + p["b"],
    ...     lambda y, logits: optax.softmax_cross_entropy_with_integer_labels(logits, y),
    ...     input_spec=((np.float32, [None, 784]), (np.int32, [None])))
  """
  params = init_fn(jax.random.PRNGKey(seed))
  return FunctionalModel(ModelWeights(params, ()),
                         predict_on_batch_fn=lambda w, x, training: apply_fn(w.trainable, x),
                         loss_fn=loss_fn, input_spec=input_spec, metrics=metrics)

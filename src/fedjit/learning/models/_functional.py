"""Functional models: weights as pytrees, and pure functions over them."""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core import SequenceType, StructType, TensorType, Type, build_container, to_type
from fedjit._tracebacks import api_boundary
from fedjit.learning.metrics._metrics import Metric, as_metrics, masked_mean_per_example

__all__ = ["ModelWeights", "FunctionalModel", "BatchOutput", "from_functions",
           "input_spec_type", "split_batch"]

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


def concrete_or_traced(value: Any) -> Any:
  """A NumPy array, or the traced value itself when a model is built inside a
  jax computation (TFF's `model = model_fn()` in a `tf_computation`)."""
  if isinstance(value, jax.core.Tracer):
    return value
  return np.asarray(value)


def _spec_leaf(spec: Any) -> Type:
  """One tensor type of an input spec.

  Objects with a `shape` but no `dtype` (a `keras.InputSpec` that accepts
  any dtype) are float32, Keras's default float type.

  Example:
    >>> str(_spec_leaf(jax.ShapeDtypeStruct((None, 3), np.int32)))
    'int32[?,3]'
  """
  if isinstance(spec, (Type, type, np.dtype)):  # np.dtype has a shape too: ()
    return to_type(spec)
  if isinstance(spec, str):
    try:
      return to_type(spec)  # a dtype name such as 'float32'
    except TypeError:
      pass  # any other string: not a type (below)
  if spec is None or isinstance(spec, (bool, int, float, complex, str, bytes)):
    raise TypeError(
        f"input_spec describes the type of one (x, y) element, but it holds {spec!r} "
        f"(a {type(spec).__name__}), which is not a type. Give a dataset's "
        f"element_spec (e.g. train_data.element_spec), (dtype, shape) pairs such as "
        f"(np.float32, [None, 1]), or jax.ShapeDtypeStruct objects.")
  shape = getattr(spec, "shape", None)
  dtype = getattr(spec, "dtype", None)
  if shape is not None:
    dims = [None if d is None else int(d) for d in tuple(shape)]
    if dtype is None:
      return TensorType(np.float32, dims)
    return TensorType(np.dtype(getattr(dtype, "as_numpy_dtype", dtype)), dims)
  return to_type(spec)


def input_spec_type(spec: Any) -> Type:
  """The element type of a model's input: `(x, y)` batches.

  Accepts fedjit types, `(dtype, shape)` pairs, objects with `shape` and
  `dtype` (`jax.ShapeDtypeStruct`, Keras or TF tensor specs), pytrees of
  these, a `fedjit.SequenceType`, or a dataset's or ClientData's
  `element_spec` (or the dataset or ClientData itself).

  Example:
    >>> str(input_spec_type(((np.float32, [None, 784]), (np.int32, [None, 1]))))
    '<float32[?,784],int32[?,1]>'
  """
  spec = getattr(spec, "element_spec", spec)
  if isinstance(spec, SequenceType):
    return spec.element
  if isinstance(spec, Type):
    return spec
  pair = _dtype_shape_pair(spec)
  if pair is not None:
    return pair
  if isinstance(spec, Mapping):
    return StructType([(str(k), input_spec_type(v)) for k, v in spec.items()],
                      container=type(spec))
  if isinstance(spec, (list, tuple)):
    fields = [input_spec_type(s) for s in spec]
    if hasattr(spec, "_fields"):
      return StructType(list(zip(spec._fields, fields)), container=type(spec))
    return StructType(fields, container=type(spec))
  return _spec_leaf(spec)


def _dtype_shape_pair(spec: Any) -> TensorType | None:
  """The tensor type of a `(dtype, shape)` pair such as `(np.float32, [None, 1])`
  (as `fedjit.to_type` reads it), or None for any other spec."""
  if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], (list, tuple))):
    return None
  try:
    t = to_type(tuple(spec))  # a namedtuple pair counts too
  except TypeError:
    return None  # not a type as a whole: read part by part (and explained there)
  return t if isinstance(t, TensorType) else None


def _shape_dtype_structs(t: Type) -> Any:
  """A (struct of) tensor type as `jax.ShapeDtypeStruct`s in its containers."""
  if isinstance(t, TensorType):
    return jax.ShapeDtypeStruct(t.shape, t.dtype)
  return build_container(t, [_shape_dtype_structs(e) for e in t.types()])


def split_batch(batch: Any) -> tuple[Any, Any]:
  """`(x, y)` of a batch given as a pair, or a dict/namedtuple with x and y.

  Labels given as a dict of one entry (`{'y': labels}`, as a dataset of
  `({'x': ...}, {'y': ...})` examples has them) are that entry's tensor: a
  model has one output, and its loss and metrics take one label tensor.

  Example:
    >>> x, y = split_batch(({'x': np.ones(3)}, {'y': np.zeros(3)}))
    >>> sorted(x), y.shape
    (['x'], (3,))
  """
  if isinstance(batch, Mapping):
    if "x" not in batch or "y" not in batch:
      raise TypeError(f"A batch given as a dict needs keys 'x' and 'y', got {list(batch)}. "
                      f"Map the dataset to (x, y) pairs, e.g. "
                      f"ds.map(lambda e: (e['pixels'], e['label'])).")
    x, y = batch["x"], batch["y"]
  elif hasattr(batch, "x") and hasattr(batch, "y"):
    x, y = batch.x, batch.y
  elif isinstance(batch, (list, tuple)) and len(batch) == 2:
    x, y = batch
  else:
    raise TypeError(f"A batch must be an (x, y) pair or a dict with 'x' and 'y'; got "
                    f"{type(batch).__name__}. Map the dataset to (x, y) pairs, e.g. "
                    f"ds.map(lambda e: (e['pixels'], e['label'])).")
  if isinstance(y, Mapping) and len(y) == 1:
    y = next(iter(y.values()))
  return x, y


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
    integer_labels: whether the labels are class indices into the
      predictions' last axis, so that examples whose label is outside
      `[0, num_classes)` are left out and counted (`num_invalid_labels`).
      None (the default) decides from the loss's name
      (`SparseCategoricalCrossentropy`, `softmax_cross_entropy_with_integer_labels`,
      ...) or, for other losses, from the input spec: integer labels of
      shape `[batch]` (or `[batch, 1]`) against predictions `[batch, C]`, C > 1.

  Example:
    >>> model = FunctionalModel(
    ...     initial_weights=ModelWeights([np.zeros((3, 1)), np.zeros(1)], []),
    ...     predict_on_batch_fn=lambda w, x, training: x @ w.trainable[0] + w.trainable[1],
    ...     loss_fn=lambda y, p: (y - p)[:, 0] ** 2,
    ...     input_spec=((np.float32, [None, 3]), (np.float32, [None, 1])))
  """

  def __init__(self, initial_weights: Any, predict_on_batch_fn: Callable | None = None,
               loss_fn: Any = None, input_spec: Any = None, metrics: Any = None,
               apply_fn: Callable | None = None, integer_labels: bool | None = None):
    if (predict_on_batch_fn is None) == (apply_fn is None):
      raise TypeError("Give exactly one of predict_on_batch_fn or apply_fn.")
    if loss_fn is None or input_spec is None:
      raise TypeError("A FunctionalModel needs loss_fn and input_spec.")
    if not isinstance(initial_weights, ModelWeights):
      initial_weights = ModelWeights(*initial_weights)
    self.initial_weights = jax.tree_util.tree_map(concrete_or_traced, initial_weights)
    self._predict = predict_on_batch_fn
    self._apply = apply_fn
    self.loss_fn = per_example_loss_fn(loss_fn)
    self._label_loss, self._ignore_class = _label_loss_info(loss_fn)
    self.input_spec = input_spec_type(input_spec)
    self.metrics: dict[str, Metric] = as_metrics(metrics)
    if integer_labels is not None:
      if not isinstance(integer_labels, bool):
        raise TypeError(f"integer_labels must be True, False or None (decide from the loss "
                        f"and input spec); got {integer_labels!r}.")
      self._label_loss = integer_labels
    elif not self._label_loss:
      self._label_loss = self._spec_has_class_labels()

  @property
  def trainable_variables(self) -> Params:
    """The initial trainable weights (TFF's `model.trainable_variables`; here
    the same as `initial_weights.trainable`).

    Example:
      >>> @fedjit.jax_computation
      ... def server_init():
      ...   return model_fn().trainable_variables
    """
    return self.initial_weights.trainable

  @property
  def non_trainable_variables(self) -> Params:
    """The initial non-trainable weights (TFF's `non_trainable_variables`)."""
    return self.initial_weights.non_trainable

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

  def forward_pass(self, weights: ModelWeights, batch: Any, mask: jax.Array | None = None,
                   training: bool = True) -> BatchOutput:
    """The model on one batch: `BatchOutput(loss, predictions, num_examples,
    non_trainable)`, as TFF's `forward_pass`.

    `loss` is the mean loss over the real examples (`mask` 1.0; all examples
    when `mask` is None). For classification losses on integer labels
    (`SparseCategoricalCrossentropy`, `softmax_cross_entropy_with_integer_labels`),
    examples whose label is outside `[0, num_classes)` are left out of the
    loss and of `num_examples`, and counted by the `num_invalid_labels` metric.

    Example:
      >>> out = model.forward_pass(weights, (x, y))
      >>> grads = jax.grad(lambda w: model.forward_pass(w, (x, y)).loss)(weights)
    """
    x, y = split_batch(batch)
    preds, non_trainable = self.apply(weights, x, training)
    mask = self._used(y, preds, _mask_for(y, mask))
    loss = masked_mean_per_example(self.loss_fn(y, preds), mask)
    return BatchOutput(loss, preds, jnp.sum(mask).astype(jnp.int32), non_trainable)

  def loss(self, weights: ModelWeights, batch: Any, mask: jax.Array | None = None,
           training: bool = True) -> jax.Array:
    """The mean loss over the batch's real examples: a scalar, so that
    `jax.grad(model.loss)(weights, batch)` works (see `forward_pass` for the
    predictions and new non-trainable weights).

    Example:
      >>> grads = jax.grad(model.loss)(model.initial_weights, (x, y))
    """
    return self.forward_pass(weights, batch, mask, training).loss

  @property
  def checks_labels(self) -> bool:
    """True when the loss takes integer class labels, which are then checked
    against the number of classes (the predictions' last axis)."""
    return self._label_loss

  def _spec_has_class_labels(self) -> bool:
    """Integer labels `[b]` or `[b, 1]` against predictions `[b, C]` (C > 1)
    in the input spec: class indices, whatever the loss is called."""
    try:
      x, y = split_batch(_shape_dtype_structs(_with_batch(self.input_spec)))
    except TypeError:
      return False
    if not isinstance(y, jax.ShapeDtypeStruct) or not jnp.issubdtype(y.dtype, jnp.integer):
      return False
    try:
      preds = jax.eval_shape(lambda w, x: self.apply(w, x, False)[0], self.initial_weights, x)
    except Exception:  # noqa: BLE001 - a model that cannot run on its spec: decided later
      return False
    if not isinstance(preds, jax.ShapeDtypeStruct) or len(preds.shape) < 2:
      return False
    lead = tuple(preds.shape[:-1])
    return preds.shape[-1] > 1 and tuple(y.shape) in (lead, lead + (1,))

  def _used(self, y_true, y_pred, mask):
    """`mask` without the examples whose integer label is out of range."""
    if not self._label_loss:
      return mask
    return mask * _valid_labels(y_true, y_pred, self._ignore_class).astype(mask.dtype)

  def metrics_init(self) -> dict:
    """Zero metric state: user metrics, then loss, num_examples, num_batches
    (and num_invalid_labels for integer-label losses)."""
    state = {name: m.init() for name, m in self.metrics.items()}
    state["loss"] = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
    state["num_examples"] = jnp.zeros((), jnp.int32)
    state["num_batches"] = jnp.zeros((), jnp.int32)
    if self._label_loss:
      state["num_invalid_labels"] = jnp.zeros((), jnp.int32)
    return state

  def metrics_update(self, state: dict, y_true, y_pred, loss_value, mask) -> dict:
    """Adds one batch to the metric sums (`mask`: the batch's real examples)."""
    mask = _mask_for(y_true, mask)
    used = self._used(y_true, y_pred, mask)
    out = {name: m.update(state[name], y_true, y_pred, used)
           for name, m in self.metrics.items()}
    n = jnp.sum(used.astype(jnp.float32))
    total, count = state["loss"]
    out["loss"] = (total + loss_value * n, count + n)
    out["num_examples"] = state["num_examples"] + n.astype(jnp.int32)
    out["num_batches"] = state["num_batches"] + (n > 0).astype(jnp.int32)
    if self._label_loss:
      invalid = jnp.sum(mask.astype(jnp.float32)) - n
      out["num_invalid_labels"] = state["num_invalid_labels"] + invalid.astype(jnp.int32)
    return out

  def metrics_finalize(self, state: dict) -> dict:
    """Metric values from (summed) metric state. With no example used because
    every label was out of range, the loss is NaN, not 0."""
    out = {name: m.finalize(state[name]) for name, m in self.metrics.items()}
    total, count = state["loss"]
    out["loss"] = total / jnp.maximum(count, 1.0)
    out["num_examples"] = state["num_examples"]
    out["num_batches"] = state["num_batches"]
    if self._label_loss:
      out["num_invalid_labels"] = state["num_invalid_labels"]
      out["loss"] = jnp.where((count == 0) & (state["num_invalid_labels"] > 0),
                              jnp.nan, out["loss"])
    return out


class BatchOutput(NamedTuple):
  """What `FunctionalModel.forward_pass` returns (TFF's `BatchOutput`, with
  the new non-trainable weights as a fourth field)."""
  loss: jax.Array
  predictions: Any
  num_examples: jax.Array
  non_trainable: Any


def _with_batch(t: Type) -> Type:
  """`t` with unknown dimensions (the batch axis) set to 2."""
  if isinstance(t, TensorType):
    return TensorType(t.dtype, [2 if d is None else d for d in t.shape])
  return StructType([(n, _with_batch(e)) for n, e in t.items()], container=t.container) \
      if isinstance(t, StructType) else t


def _mask_for(y_true, mask):
  """One mask value per example. A batch of fixed size (`drop_remainder=True`)
  comes with one mask value for the whole batch: it applies to each example."""
  first = jax.tree_util.tree_leaves(y_true)[0]
  if mask is None:
    return jnp.ones((jnp.shape(first)[0],), jnp.float32)
  mask = jnp.asarray(mask)
  if mask.ndim == 0 and jnp.ndim(first) > 0:
    return jnp.broadcast_to(mask, (jnp.shape(first)[0],))
  return mask


_LABEL_LOSSES = ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy",
                 "softmax_cross_entropy_with_integer_labels")


def _label_loss_info(loss: Any) -> tuple[bool, int | None]:
  """(takes integer class labels, Keras's ignore_class) for a loss."""
  if isinstance(loss, type) and callable(loss):
    try:
      loss = loss()
    except TypeError:
      return False, None
  names = {type(loss).__name__, getattr(loss, "__name__", ""),
           getattr(getattr(loss, "fn", None), "__name__", ""),
           getattr(getattr(loss, "__self__", None).__class__, "__name__", "")}
  if not names & set(_LABEL_LOSSES):
    return False, None
  owner = getattr(loss, "__self__", loss)
  ignore = getattr(owner, "ignore_class", None)
  if ignore is None:
    ignore = (getattr(owner, "_fn_kwargs", None) or {}).get("ignore_class")
  return True, ignore


def _valid_labels(y_true, y_pred, ignore_class) -> jax.Array:
  """Per example: every integer label is in [0, num_classes) (or ignored)."""
  y = jnp.asarray(y_true)
  if not jnp.issubdtype(y.dtype, jnp.integer):
    y = jnp.round(y)  # float labels, as Keras accepts them
  num_classes = jnp.shape(y_pred)[-1]
  ok = (y >= 0) & (y < num_classes)
  if ignore_class is not None:
    ok = ok | (y == ignore_class)
  return ok.reshape(ok.shape[0], -1).all(axis=1) if ok.ndim > 1 else ok


@api_boundary
def from_functions(init_fn: Callable[[jax.Array], Params], apply_fn: Callable,
                   loss_fn: Any, input_spec: Any, metrics: Any = None,
                   seed: int = 0, integer_labels: bool | None = None) -> FunctionalModel:
  """A model from plain JAX functions: `init_fn(rng) -> params` and
  `apply_fn(params, x) -> predictions`.

  Args:
    init_fn: builds the trainable parameters from a PRNG key.
    apply_fn: the forward pass.
    loss_fn: per-example loss `loss_fn(y_true, y_pred)`.
    input_spec: the type of one `(x, y)` batch.
    metrics: metrics to report (see `FunctionalModel`).
    seed: the PRNG seed for `init_fn`.
    integer_labels: whether labels are class indices, checked against the
      number of classes (see `FunctionalModel`; None decides from the loss
      and the input spec).

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
                         loss_fn=loss_fn, input_spec=input_spec, metrics=metrics,
                         integer_labels=integer_labels)

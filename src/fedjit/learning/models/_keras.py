"""Keras 3 models (JAX backend) as fedjit functional models.

fedjit calls Keras statelessly: `model.stateless_call(trainable,
non_trainable, x, training=...)`, so the weights are explicit pytrees and the
whole round still compiles into one XLA program.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core import StructType, TensorType, Type
from fedjit.learning.metrics._metrics import Metric
from fedjit._tracebacks import api_boundary
from fedjit.learning.models._functional import (FunctionalModel, ModelWeights,
                                                _is_keras_loss, concrete_or_traced,
                                                input_spec_type)

__all__ = ["from_keras_model", "functional_model_from_keras", "ensure_keras_jax_backend"]


def ensure_keras_jax_backend():
  """Imports Keras on its JAX backend, or says clearly why it cannot.

  fedjit sets `KERAS_BACKEND=jax` when it is imported before Keras.

  Raises:
    RuntimeError: if Keras was already imported with another backend.
  """
  if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "jax"
  try:
    import keras
  except ImportError as e:
    raise ImportError("Keras models need Keras 3: pip install 'fedjit[keras]'.") from e
  backend = keras.backend.backend()
  if backend != "jax":
    raise RuntimeError(
        f"Keras is running on its {backend!r} backend, but fedjit needs the 'jax' "
        f"backend. Import fedjit before keras, or set the environment variable "
        f"KERAS_BACKEND=jax before Python starts.")
  return keras


def _tensor_leaves(t: Type) -> list[TensorType]:
  if isinstance(t, TensorType):
    return [t]
  return [leaf for e in t.types() for leaf in _tensor_leaves(e)]


def _is_one_example(spec_type: Type) -> bool:
  """True if an `(x, y)` element type describes one example, not a batch.

  A batch has a first axis shared by every tensor (`?` from `Dataset.batch`,
  or a fixed size with `drop_remainder=True`); an element with a scalar, or
  with tensors of different first dimensions, is a single example.

  Example:
    >>> _is_one_example(input_spec_type(((np.float32, []), (np.float32, []))))
    True
    >>> _is_one_example(input_spec_type(((np.float32, [None, 1]), (np.float32, [None]))))
    False
  """
  leaves = _tensor_leaves(spec_type)
  if not leaves or any(not l.shape for l in leaves):
    return True
  return len({l.shape[0] for l in leaves}) > 1


def _split_spec(spec_type: Type) -> tuple[Type, Type]:
  """`(x type, y type)` of an `(x, y)` element type (a pair, or named x and y).

  Example:
    >>> x_type, y_type = _split_spec(input_spec_type(((np.float32, [None, 3]), (np.int32, [None]))))
    >>> str(x_type), str(y_type)
    ('float32[?,3]', 'int32[?]')
  """
  if isinstance(spec_type, StructType):
    names = spec_type.names()
    if "x" in names and "y" in names:
      return spec_type["x"], spec_type["y"]
    if len(spec_type) == 2:
      return spec_type[0], spec_type[1]
  raise TypeError(
      f"A Keras model's input_spec must be the type of one (x, y) element: a pair "
      f"(features, labels) or a dict with keys 'x' and 'y'; got {spec_type}. Map the "
      f"dataset to (x, y) pairs, e.g. ds.map(lambda e: (e['pixels'], e['label'])).")


def _with_batch_axis(t: Type) -> Type:
  if isinstance(t, TensorType):
    return TensorType(t.dtype, (None,) + t.shape)
  return StructType([(n, _with_batch_axis(e)) for n, e in t.items()], container=t.container)


def _model_inputs(keras_model) -> Any:
  """The model's declared inputs: a KerasTensor, or a list or dict of them;
  None when the model does not declare them (not built, or subclassed)."""
  struct = getattr(keras_model, "_inputs_struct", None)  # functional models
  if struct is not None:
    return struct
  try:
    inputs = keras_model.inputs  # Sequential models
  except (AttributeError, ValueError):
    return None
  if not inputs:
    return None
  return inputs[0] if len(inputs) == 1 else list(inputs)


def _expects_column(declared: Any, feature: TensorType) -> bool:
  """True if a per-example scalar feature ([batch]) goes in as [batch, 1]."""
  if len(feature.shape) != 1:
    return False
  shape = tuple(getattr(declared, "shape", ()) or ())
  return len(shape) == 2 and shape[-1] == 1


def _input_adapter(keras_model, x_type: Type) -> Callable[[Any], Any]:
  """A function from a batch's features `x` (of the batched type `x_type`) to
  what the Keras model is called with, building the model if needed.

  Dict features go to a model with inputs named after them as a dict (or a
  list, in the model's order); a dict of one feature goes to a model with one
  unnamed input as that feature's tensor; per-example scalars (rank 1) go to
  an input of shape [batch, 1] as a column (Keras's `model.fit` does so).
  """
  declared = _model_inputs(keras_model) if keras_model.built else None
  if isinstance(x_type, StructType) and all(n is not None for n in x_type.names()):
    keys = list(x_type.names())
    if isinstance(declared, Mapping):
      if set(declared) != set(keys):
        raise ValueError(
            f"The Keras model's inputs are named {sorted(declared)}, but the features "
            f"(x of input_spec) are a dict with keys {sorted(keys)}. Name each "
            f"keras.Input after a feature (keras.Input(shape=..., name='x')), or map "
            f"the dataset so that its feature keys are the input names.")
      return lambda x: x
    if isinstance(declared, list):
      names = [getattr(t, "name", None) for t in declared]
      if set(names) != set(keys):
        raise ValueError(
            f"The Keras model's inputs are named {names}, but the features (x of "
            f"input_spec) are a dict with keys {sorted(keys)}. Name each keras.Input "
            f"after a feature (keras.Input(shape=..., name='x')).")
      return lambda x: [x[n] for n in names]
    if len(keys) != 1:
      what = (f"one input named {getattr(declared, 'name', None)!r}"
              if declared is not None else "one input")
      raise ValueError(
          f"The Keras model takes {what}, but the features (x of input_spec) are a "
          f"dict of {len(keys)} features {sorted(keys)}. Use a functional model with "
          f"one keras.Input(shape=..., name=key) per feature (keras.Model(inputs="
          f"{{key: input, ...}}, outputs=...)), or combine the features into one array "
          f"with Dataset.map.")
    key = keys[0]
    inner = _input_adapter(keras_model, x_type[key])
    return lambda x: inner(x[key])
  if isinstance(x_type, TensorType):
    column = False
    if not keras_model.built:
      column = len(x_type.shape) == 1
      keras_model.build((None,) + tuple(x_type.shape[1:]) + ((1,) if column else ()))
    elif not isinstance(declared, (list, Mapping)):
      column = _expects_column(declared, x_type)
    if column:
      return lambda x: jnp.reshape(x, (-1, 1))
    return lambda x: x
  if not keras_model.built:
    raise ValueError(
        f"Cannot build the Keras model from features of type {x_type}. Build it "
        f"first: give it keras.Input layers, or call keras_model.build(shape) or "
        f"keras_model(example_features) before from_keras_model.")
  return lambda x: x


def _label_leaf_rank(y_type: Type) -> int | None:
  """The rank of the label tensor of one example (a dict of one label counts
  as its tensor); None when the labels are several tensors."""
  while isinstance(y_type, StructType) and len(y_type) == 1 and y_type.names()[0]:
    y_type = y_type[0]
  return len(y_type.shape) if isinstance(y_type, TensorType) else None


def _as_batch_of_one(y: Any, rank: int | None) -> Any:
  """An example's labels with a leading batch axis of one."""
  def add(a):
    a = jnp.asarray(a)
    return a[None] if rank is None or a.ndim == rank else a
  return jax.tree_util.tree_map(add, y)


class _OneExampleMetric(Metric):
  """A metric fed one example at a time, as a batch of one."""

  def __init__(self, metric: Metric, label_rank: int | None):
    self.metric = metric
    self.name = metric.name
    self._rank = label_rank

  def init(self):
    return self.metric.init()

  def update(self, state, y_true, y_pred, mask):
    mask = jnp.asarray(mask)
    return self.metric.update(state, _as_batch_of_one(y_true, self._rank), y_pred,
                              mask[None] if mask.ndim == 0 else mask)

  def finalize(self, state):
    return self.metric.finalize(state)


def _check_labels(loss: Any, y_type: Type) -> None:
  if isinstance(y_type, StructType) and len(y_type) > 1 and _is_keras_loss(loss):
    raise ValueError(
        f"The labels (y of input_spec) are {len(y_type)} tensors {y_type}, but a Keras "
        f"loss takes one label tensor (models with several outputs are not supported "
        f"yet). Map the dataset to one label, e.g. ds.map(lambda x, y: (x, y['label'])).")


def _make(keras_model: Any, loss: Any, input_spec: Any, metrics: Any) -> FunctionalModel:
  ensure_keras_jax_backend()
  spec_type = input_spec_type(input_spec)
  x_type, y_type = _split_spec(spec_type)
  one_example = _is_one_example(spec_type)
  _check_labels(loss, y_type)
  to_inputs = _input_adapter(keras_model, _with_batch_axis(x_type) if one_example else x_type)
  trainable = [concrete_or_traced(v.value) for v in keras_model.trainable_variables]
  non_trainable = [concrete_or_traced(v.value) for v in keras_model.non_trainable_variables]

  def apply_fn(weights, x, training):
    if one_example:  # one example: a batch of one (the predictions keep that axis)
      x = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], x)
    out, new_non_trainable = keras_model.stateless_call(
        list(weights.trainable), list(weights.non_trainable), to_inputs(x),
        training=training)
    return out, list(new_non_trainable)

  model = FunctionalModel(ModelWeights(trainable, non_trainable), apply_fn=apply_fn,
                          loss_fn=loss, input_spec=spec_type, metrics=metrics)
  if one_example:
    # The labels and mask of one example get the batch axis the predictions have.
    rank = _label_leaf_rank(y_type)
    per_example = model.loss_fn
    model.loss_fn = lambda y, p: per_example(_as_batch_of_one(y, rank), p)
    model.metrics = {name: _OneExampleMetric(m, rank) for name, m in model.metrics.items()}
  model.keras_model = keras_model
  return model


@api_boundary
def from_keras_model(keras_model: Any, loss: Any, input_spec: Any,
                     loss_weights: Any = None, metrics: Any = None) -> FunctionalModel:
  """Wraps a Keras 3 model for federated training (TFF's `from_keras_model`).

  Features and labels as a dataset of dicts has them (`({'x': ...}, {'y':
  ...})`) work as Keras's `model.fit` takes them:

  * Dict features go to a functional model whose `keras.Input`s are named
    after the keys as a dict (or a list, in the model's order); a dict of one
    feature goes to a model with one unnamed input (a `Sequential` model) as
    that feature's tensor. Per-example scalars (`[batch]`) go to an input of
    shape `[batch, 1]` (and an unbuilt model is built so) as a column.
  * Labels given as a dict of one entry are that entry's tensor; Keras losses
    and metrics match its rank to the predictions'.
  * Unbatched elements (one example each, e.g. `from_tensor_slices` without
    `.batch(n)`): each example is a batch of one, so the client optimizer
    takes one step per example, and the predictions have a batch axis of 1.
    Batch the data (`ds.batch(n)`) for fewer, larger steps.

  Args:
    keras_model: a built (or buildable from `input_spec`) Keras 3 model.
    loss: a Keras loss (evaluated per example, so padding is masked exactly)
      or a function `(y_true, y_pred) -> per-example losses`.
    input_spec: the type of one `(x, y)` element, batched or not: fedjit
      types, `(dtype, shape)` pairs, `jax.ShapeDtypeStruct`s, or a dataset's
      or ClientData's `element_spec`.
    loss_weights: not supported (single-output models); must be None.
    metrics: a list of Keras metrics (or a `{name: metric}` mapping).

  Returns:
    A `FunctionalModel` whose weights are the Keras model's variables.

  Raises:
    ValueError: if the features do not fit the model's inputs (dict keys
      that are not the inputs' names, several features for a model with one
      input), or the labels are several tensors for a Keras loss.
    TypeError: if `input_spec` is not the type of `(x, y)` elements.

  Example:
    >>> model = fedjit.learning.models.from_keras_model(
    ...     keras_model, loss=keras.losses.MeanSquaredError(),
    ...     input_spec=((np.float32, [None, 1]), (np.float32, [None, 1])),
    ...     metrics=[keras.metrics.MeanAbsoluteError()])
    >>> data = Dataset.from_tensor_slices(({'x': [1.0, 2.0]}, {'y': [2.0, 4.0]}))
    >>> model = fedjit.learning.from_keras_model(
    ...     keras.Sequential([keras.layers.Dense(1)]), input_spec=data.element_spec,
    ...     loss=keras.losses.MeanSquaredError())
  """
  if loss_weights is not None:
    raise NotImplementedError("loss_weights (multi-output Keras models) is not "
                              "supported yet; combine the losses in one loss function.")
  return _make(keras_model, loss, input_spec, metrics)


@api_boundary
def functional_model_from_keras(keras_model: Any, loss_fn: Any, input_spec: Any,
                                metrics_constructor: Any = None) -> FunctionalModel:
  """TFF's `functional_model_from_keras`: a Keras 3 model as a functional model.

  Args:
    keras_model: a Keras 3 model (or a function with no arguments returning one).
    loss_fn: a Keras loss, or `(y_true, y_pred) -> per-example losses`.
    input_spec: the type of one `(x, y)` batch.
    metrics_constructor: a `{name: metric class or constructor}` mapping, or a
      function returning metrics.

  Example:
    >>> model = fedjit.learning.models.functional_model_from_keras(
    ...     keras_model, loss_fn=keras.losses.SparseCategoricalCrossentropy(),
    ...     input_spec=train_data[0].element_spec,
    ...     metrics_constructor=collections.OrderedDict(
    ...         accuracy=keras.metrics.SparseCategoricalAccuracy))
  """
  if callable(keras_model) and not hasattr(keras_model, "stateless_call"):
    keras_model = keras_model()
  return _make(keras_model, loss_fn, input_spec, metrics_constructor)

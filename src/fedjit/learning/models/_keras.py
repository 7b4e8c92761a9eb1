"""Keras 3 models (JAX backend) as fedjit functional models.

fedjit calls Keras statelessly: `model.stateless_call(trainable,
non_trainable, x, training=...)`, so the weights are explicit pytrees and the
whole round still compiles into one XLA program.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping

import numpy as np

from fedjit.learning.models._functional import (FunctionalModel, ModelWeights,
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


def _check_built(keras_model, spec_type) -> None:
  if not keras_model.built:
    from fedjit.core import StructType
    x_type = spec_type[0] if isinstance(spec_type, StructType) else spec_type
    keras_model.build(tuple(x_type.shape))


def _make(keras_model: Any, loss: Any, input_spec: Any, metrics: Any) -> FunctionalModel:
  ensure_keras_jax_backend()
  spec_type = input_spec_type(input_spec)
  _check_built(keras_model, spec_type)
  trainable = [np.asarray(v.value) for v in keras_model.trainable_variables]
  non_trainable = [np.asarray(v.value) for v in keras_model.non_trainable_variables]

  def apply_fn(weights, x, training):
    out, new_non_trainable = keras_model.stateless_call(
        list(weights.trainable), list(weights.non_trainable), x, training=training)
    return out, list(new_non_trainable)

  model = FunctionalModel(ModelWeights(trainable, non_trainable), apply_fn=apply_fn,
                          loss_fn=loss, input_spec=spec_type, metrics=metrics)
  model.keras_model = keras_model
  return model


def from_keras_model(keras_model: Any, loss: Any, input_spec: Any,
                     loss_weights: Any = None, metrics: Any = None) -> FunctionalModel:
  """Wraps a Keras 3 model for federated training (TFF's `from_keras_model`).

  Args:
    keras_model: a built (or buildable from `input_spec`) Keras 3 model.
    loss: a Keras loss (evaluated per example, so padding is masked exactly)
      or a function `(y_true, y_pred) -> per-example losses`.
    input_spec: the type of one `(x, y)` batch: fedjit types, `(dtype,
      shape)` pairs, `jax.ShapeDtypeStruct`s, or a dataset's `element_spec`.
    loss_weights: not supported (single-output models); must be None.
    metrics: a list of Keras metrics (or a `{name: metric}` mapping).

  Returns:
    A `FunctionalModel` whose weights are the Keras model's variables.

  Example:
    >>> model = fedjit.learning.models.from_keras_model(
    ...     keras_model, loss=keras.losses.MeanSquaredError(),
    ...     input_spec=((np.float32, [None, 1]), (np.float32, [None, 1])),
    ...     metrics=[keras.metrics.MeanAbsoluteError()])
  """
  if loss_weights is not None:
    raise NotImplementedError("loss_weights (multi-output Keras models) is not "
                              "supported yet; combine the losses in one loss function.")
  return _make(keras_model, loss, input_spec, metrics)


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

"""Flax NNX modules as fedjit functional models."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fedjit._tracebacks import api_boundary
from fedjit.learning.models._functional import FunctionalModel, ModelWeights

__all__ = ["from_flax_model"]


def _is_prng_key(x) -> bool:
  return jnp.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key)


@api_boundary
def from_flax_model(module: Any, loss_fn: Any, input_spec: Any,
                    metrics: Any = None) -> FunctionalModel:
  """Wraps a Flax NNX module: its `nnx.Param`s are the trainable weights and
  every other state (batch statistics, RNG streams) the non-trainable ones.

  RNG keys (`nnx.Rngs`, e.g. for `nnx.Dropout`) are held as their raw
  `jax.random.key_data` (uint32 arrays), so the weights stay plain arrays
  that can be averaged, checkpointed and serialized; fedjit's client work
  gives every client a different stream each round (see
  `build_model_delta_client_work`).

  Args:
    module: an initialized `flax.nnx.Module` whose `__call__(x)` gives the
      predictions.
    loss_fn: `(y_true, y_pred) -> per-example losses`.
    input_spec: the type of one `(x, y)` batch.
    metrics: metrics to report (see `FunctionalModel`).

  Example:
    >>> class Linear(nnx.Module):
    ...   def __init__(self, rngs):
    ...     self.dense = nnx.Linear(784, 10, rngs=rngs)
    ...   def __call__(self, x):
    ...     return self.dense(x)
    >>> model = from_flax_model(Linear(nnx.Rngs(0)), loss_fn, input_spec)
  """
  try:
    from flax import nnx
  except ImportError as e:
    raise ImportError("Flax models need flax: pip install 'fedjit[flax]'.") from e
  graphdef, params, rest = nnx.split(module, nnx.Param, ...)
  to_pure = lambda state: nnx.to_pure_dict(state) if hasattr(nnx, "to_pure_dict") else state
  params_template, rest_template = params, rest

  def _restore(template, pure):
    state = jax.tree_util.tree_map(lambda x: x, template)
    nnx.replace_by_pure_dict(state, pure)
    return state

  # Typed PRNG keys cannot become NumPy arrays: store their key data, and
  # wrap it again (with the original key implementation) to call the module.
  rest_pure_template = to_pure(rest)
  to_stored = lambda pure: jax.tree_util.tree_map(
      lambda x: jax.random.key_data(x) if _is_prng_key(x) else x, pure)
  from_stored = lambda stored: jax.tree_util.tree_map(
      lambda t, x: jax.random.wrap_key_data(x, impl=jax.random.key_impl(t))
      if _is_prng_key(t) else x, rest_pure_template, stored)

  def apply_fn(weights, x, training):
    # JAX arrays: NNX layers update their state (batch statistics) by assignment.
    weights = jax.tree_util.tree_map(jnp.asarray, weights)
    model = nnx.merge(graphdef, _restore(params_template, weights.trainable),
                      _restore(rest_template, from_stored(weights.non_trainable)))
    if hasattr(model, "train"):
      model.train() if training else model.eval()
    out = model(x)
    _, _, new_rest = nnx.split(model, nnx.Param, ...)
    return out, to_stored(to_pure(new_rest))

  initial = ModelWeights(jax.tree_util.tree_map(np.asarray, to_pure(params)),
                         jax.tree_util.tree_map(np.asarray, to_stored(rest_pure_template)))
  return FunctionalModel(initial, apply_fn=apply_fn, loss_fn=loss_fn,
                         input_spec=input_spec, metrics=metrics)

"""Port of TFF's FedAvg builder tests.

Source: google-parfait/tensorflow-federated,
tensorflow_federated/python/learning/algorithms/fed_avg_test.py.

Spelling: `tff.learning.algorithms.X` -> `fedjit.learning.algorithms.X`,
`sgdm.build_sgdm` -> `fedjit.learning.optimizers.build_sgdm`,
`model_examples.LinearRegression` / `test_models.build_functional_linear_regression`
-> the same linear regression as a fedjit `FunctionalModel` (`_linear_regression`).

Changed beyond spelling (marked at the case): fedjit has no
`model_update_aggregator.robust_aggregator` yet, so its weighted / unweighted
forms become `MeanFactory()` / `UnweightedMeanFactory()`.

Deviation (strict xfail): test_construction_calls_model_fn: fedjit calls
`model_fn` once per build (TFF: 3 times).

Left out:
* test_client_tf_dataset_reduce_fn, test_build_weighted_fed_avg_called_by_unweighted_fed_avg,
  test_aggregation_wrapper_called_by_unweighted: mock TFF internals (the
  loop builder, the builders calling each other, `as_weighted_aggregator`).
* test_weighted_fed_avg_with_only_secure_aggregation,
  test_unweighted_fed_avg_with_only_secure_aggregation and the functional
  variant: fedjit has neither `secure_aggregator`, `secure_sum_then_finalize`
  nor `computation_contains_unsecure_aggregation` (missing features).
"""

import collections
from unittest import mock

import jax.numpy as jnp
import numpy as np
import pytest

from fedjit.learning import aggregators, algorithms, optimizers
from fedjit.learning.models import FunctionalModel, ModelWeights

fed_avg = algorithms
sgdm = optimizers


def _linear_regression(feature_dim=2):
  """TFF's LinearRegression (`x @ a + b + c`, loss `0.5 (pred - y)²`)."""
  return FunctionalModel(
      initial_weights=ModelWeights([np.zeros([feature_dim, 1], np.float32), np.float32(0.0)],
                                   [np.float32(0.0)]),
      predict_on_batch_fn=lambda w, x, training: x @ w.trainable[0] + w.trainable[1]
      + w.non_trainable[0],
      loss_fn=lambda y, p: 0.5 * jnp.sum((p - y) ** 2, axis=-1),
      input_spec=collections.OrderedDict(x=(np.float32, [None, feature_dim]),
                                         y=(np.float32, [None, 1])))


class model_examples:  # spelling: model_examples.LinearRegression -> a model function
  LinearRegression = staticmethod(_linear_regression)


# ------------------------------------------------------------------ FedAvgTest


@pytest.mark.xfail(strict=True, reason="deviation: fedjit builds the model once per builder "
                   "call (TFF calls model_fn 3 times)")
def test_construction_calls_model_fn():
  # Assert that the process building does not call `model_fn` too many times.
  # `model_fn` can potentially be expensive (loading weights, processing, etc).
  mock_model_fn = mock.Mock(side_effect=model_examples.LinearRegression)
  fed_avg.build_weighted_fed_avg(
      model_fn=mock_model_fn,
      client_optimizer_fn=sgdm.build_sgdm(learning_rate=0.1),
      model_aggregator=aggregators.MeanFactory(),  # changed: robust_aggregator()
  )
  assert mock_model_fn.call_count == 3


def test_raises_on_callable_non_model_fn():
  with pytest.raises(TypeError, match="callable returned type:"):
    fed_avg.build_weighted_fed_avg(model_fn=lambda: 0, client_optimizer_fn=sgdm.build_sgdm())
  with pytest.raises(TypeError, match="callable returned type:"):
    fed_avg.build_unweighted_fed_avg(model_fn=lambda: 0,
                                     client_optimizer_fn=sgdm.build_sgdm())


def test_raises_on_invalid_client_weighting():
  with pytest.raises(TypeError, match="client_weighting"):
    fed_avg.build_weighted_fed_avg(
        model_fn=model_examples.LinearRegression,
        client_optimizer_fn=sgdm.build_sgdm(1.0),
        client_weighting="uniform",
    )


def test_weighted_fed_avg_raises_on_unweighted_aggregator():
  # changed: robust_aggregator(weighted=False)
  model_aggregator = aggregators.UnweightedMeanFactory()
  with pytest.raises(TypeError, match="WeightedAggregationFactory"):
    fed_avg.build_weighted_fed_avg(
        model_fn=model_examples.LinearRegression,
        client_optimizer_fn=sgdm.build_sgdm(1.0),
        model_aggregator=model_aggregator,
    )


def test_unweighted_fed_avg_raises_on_weighted_aggregator():
  # changed: robust_aggregator(weighted=True)
  model_aggregator = aggregators.MeanFactory()
  with pytest.raises(TypeError, match="UnweightedAggregationFactory"):
    fed_avg.build_unweighted_fed_avg(
        model_fn=model_examples.LinearRegression,
        client_optimizer_fn=sgdm.build_sgdm(1.0),
        model_aggregator=model_aggregator,
    )


# -------------------------------------------------------- FunctionalFedAvgTest


@pytest.mark.parametrize("constructor", [fed_avg.build_weighted_fed_avg,
                                         fed_avg.build_unweighted_fed_avg],
                         ids=["weighted", "unweighted"])
def test_raises_on_non_callable_or_functional_model(constructor):
  with pytest.raises(TypeError, match="is not a callable"):
    constructor(model_fn=0, client_optimizer_fn=sgdm.build_sgdm(learning_rate=0.1))

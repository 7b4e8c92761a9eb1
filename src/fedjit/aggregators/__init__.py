"""Aggregation factories (TFF's `tff.aggregators`).

A factory's `create(value_type[, weight_type])` gives an `AggregationProcess`
with its own state and measurements; factories wrap factories (a DP mean
sums with an inner `SumFactory`). These are the objects of
`fedjit.learning.aggregators`, which keeps working.

Example:
  >>> factory = fedjit.aggregators.DifferentiallyPrivateFactory.gaussian_fixed(
  ...     noise_multiplier=1.0, clients_per_round=10, clip=0.5)
  >>> process = factory.create(fedjit.TensorType(np.float32, [3]))
"""

from fedjit.learning.aggregators import *  # noqa: F401,F403  (the same objects)
from fedjit.learning.aggregators import __all__  # noqa: F401

"""Summable metrics, finalized on the server.

Example:
  >>> metric = fedjit.learning.metrics.MeanMetric("mae", lambda y, p: jnp.abs(y - p))
"""

from fedjit.learning.metrics._aggregator import sum_then_finalize
from fedjit.learning.metrics._metrics import (KerasMetric, MeanMetric, Metric,
                                              as_metrics)

__all__ = ["Metric", "MeanMetric", "KerasMetric", "as_metrics", "sum_then_finalize"]

"""Aggregators: factories whose `create` gives an `AggregationProcess`.

Example:
  >>> trainer = build_weighted_fed_avg(model, client_optimizer_fn,
  ...                                  model_aggregator=MeanFactory())
"""

from fedjit.learning.aggregators._mean import (MeanFactory, SumFactory,
                                               UnweightedAggregationFactory,
                                               UnweightedMeanFactory,
                                               WeightedAggregationFactory)

__all__ = ["MeanFactory", "SumFactory", "UnweightedMeanFactory",
           "WeightedAggregationFactory", "UnweightedAggregationFactory"]

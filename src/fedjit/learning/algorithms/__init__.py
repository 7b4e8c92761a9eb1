"""Federated learning algorithms built from the learning process stages.

Example:
  >>> trainer = fedjit.learning.algorithms.build_weighted_fed_avg(
  ...     model, client_optimizer_fn=fedjit.learning.optimizers.build_sgdm(0.1))
"""

from fedjit.learning.algorithms._fed_avg import (build_fed_prox, build_fed_sgd,
                                                 build_federated_averaging_process,
                                                 build_unweighted_fed_avg,
                                                 build_weighted_fed_avg)
from fedjit.learning.algorithms._fed_eval import build_fed_eval, evaluate

__all__ = ["build_weighted_fed_avg", "build_unweighted_fed_avg", "build_fed_prox",
           "build_fed_sgd", "build_federated_averaging_process", "build_fed_eval",
           "evaluate"]

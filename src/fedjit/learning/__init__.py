"""The learning layer: models, optimizers, aggregators, algorithms, templates.

Names follow `tff.learning`: `fedjit.learning.algorithms.build_weighted_fed_avg`,
`fedjit.learning.models.functional_model_from_keras`,
`fedjit.learning.optimizers.build_sgdm`, `fedjit.learning.ClientWeighting`.

Example:
  >>> trainer = fedjit.learning.algorithms.build_weighted_fed_avg(
  ...     model, client_optimizer_fn=fedjit.learning.optimizers.build_sgdm(0.1))
  >>> state = trainer.initialize()
  >>> result = trainer.next(state, train_data)
  >>> result.metrics['client_work']['train']['loss']
"""

from fedjit.learning import aggregators, algorithms, metrics, models, optimizers, templates
from fedjit.learning._model_update_aggregator import (compression_aggregator, dp_aggregator,
                                                      robust_aggregator, secure_aggregator)
from fedjit.learning._checkpoint import (load_checkpoint, read_checkpoint_metadata,
                                         save_checkpoint)
from fedjit.learning.algorithms import (build_fed_eval, build_fed_prox, build_fed_sgd,
                                        build_federated_averaging_process,
                                        build_unweighted_fed_avg, build_weighted_fed_avg,
                                        evaluate)
from fedjit.learning.models import ModelWeights, from_keras_model
from fedjit.learning.templates import ClientWeighting

__all__ = ["aggregators", "algorithms", "metrics", "models", "optimizers", "templates",
           "ClientWeighting", "ModelWeights", "from_keras_model",
           "build_weighted_fed_avg", "build_unweighted_fed_avg", "build_fed_prox",
           "build_fed_sgd", "build_federated_averaging_process", "build_fed_eval",
           "evaluate", "dp_aggregator", "compression_aggregator", "robust_aggregator",
           "secure_aggregator", "save_checkpoint", "load_checkpoint", "read_checkpoint_metadata"]

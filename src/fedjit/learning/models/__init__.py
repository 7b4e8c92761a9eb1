"""Models for federated learning: functional models, Keras 3 and Flax adapters.

Example:
  >>> model = fedjit.learning.models.functional_model_from_keras(
  ...     keras_model, loss_fn=keras.losses.SparseCategoricalCrossentropy(),
  ...     input_spec=((np.float32, [None, 784]), (np.int32, [None])))
"""

from fedjit.learning.models._flax import from_flax_model
from fedjit.learning.models._functional import (BatchOutput, FunctionalModel,
                                                ModelWeights, from_functions,
                                                input_spec_type)
from fedjit.learning.models._keras import from_keras_model, functional_model_from_keras

__all__ = ["BatchOutput", "FunctionalModel", "ModelWeights", "from_functions", "from_keras_model",
           "functional_model_from_keras", "from_flax_model", "input_spec_type"]

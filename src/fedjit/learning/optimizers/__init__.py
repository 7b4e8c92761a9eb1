"""Optimizers for federated learning, named and computed as `tff.learning.optimizers`.

Each builder returns an `Optimizer` with TFF's API (`initialize(specs)`,
`next(state, weights, gradients)`, `get_hparams`, `set_hparams`, the state an
`OrderedDict` laid out as in TFF) and optax's (`init`, `update`, and
`at_round(round_num)` for a learning rate that follows a schedule over
rounds, traceable). `as_optimizer` also accepts optax transformations, Keras
optimizers and TFF's no-argument `optimizer_fn` style.

Example:
  >>> from fedjit.learning import optimizers
  >>> opt = optimizers.build_sgdm(learning_rate=0.1, momentum=0.9)
  >>> state = opt.initialize(jax.ShapeDtypeStruct((2,), np.float32))
  >>> state, weights = opt.next(state, weights, gradients)          # TFF style
  >>> state = opt.set_hparams(state, {"learning_rate": 0.05})
  >>> updates, opt_state = opt.at_round(round_num).update(delta, opt_state, params)
"""

from fedjit.learning.optimizers._builders import (build_adagrad, build_adam, build_adamw,
                                                  build_rmsprop, build_sgdm, build_yogi)
from fedjit.learning.optimizers._convert import as_optimizer
from fedjit.learning.optimizers._optimizer import (LEARNING_RATE_KEY, Optimizer,
                                                   check_weights_gradients_match,
                                                   check_weights_state_match)
from fedjit.learning.optimizers._scheduling import schedule_learning_rate

__all__ = [
    "LEARNING_RATE_KEY",
    "Optimizer",
    "as_optimizer",
    "build_adagrad",
    "build_adam",
    "build_adamw",
    "build_rmsprop",
    "build_sgdm",
    "build_yogi",
    "check_weights_gradients_match",
    "check_weights_state_match",
    "schedule_learning_rate",
]

"""Optimizers for federated learning, named as in `tff.learning.optimizers`.

Each builder returns an `Optimizer`: an optax transformation whose learning
rate may follow a schedule over rounds (`opt.at_round(round_num)`, traceable).
`as_optimizer` also accepts optax transformations, Keras optimizers and TFF's
no-argument `optimizer_fn` style.

Example:
  >>> from fedjit.learning import optimizers
  >>> server_opt = optimizers.build_sgdm(learning_rate=1.0, momentum=0.9)
  >>> client_opt = optimizers.as_optimizer(lambda: optax.sgd(0.02))
  >>> state = server_opt.init(params)
  >>> updates, state = server_opt.at_round(round_num).update(delta, state, params)
"""

from fedjit.learning.optimizers._optimizers import (
    Optimizer,
    as_optimizer,
    build_adagrad,
    build_adam,
    build_rmsprop,
    build_sgdm,
    build_yogi,
)

__all__ = [
    "Optimizer",
    "as_optimizer",
    "build_adagrad",
    "build_adam",
    "build_rmsprop",
    "build_sgdm",
    "build_yogi",
]

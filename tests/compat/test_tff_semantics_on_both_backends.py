"""TFF semantics that issue 13 fixed, run end to end on the reference and the
vectorized backend (fedjit-only cases; the ported TFF tests are the other
files of this folder).

Expected values are hand calculations: a named struct parameter used by
name, Nesterov momentum's first server step (`lr * (1 + momentum) * delta`
where heavy-ball momentum gives `lr * delta`), and `set_hparams` between
rounds (a learning rate of 0 leaves the model where it is).
"""

import collections

import jax
import numpy as np
import pytest

import fedjit
from fedjit.learning import algorithms, optimizers

from conftest import batched_clients, softmax3_model


def test_named_struct_specs_as_parameters_of_both_kinds_of_computation(backend):
  spec = [("a", np.int32), ("b", np.float32)]

  @fedjit.jax_computation(spec)
  def scale(s):
    return s.a.astype(np.float32) * s["b"]

  @fedjit.jax_computation(spec)
  def unpacked(a, b):
    return a.astype(np.float32) + b

  @fedjit.federated_computation(fedjit.FederatedType(spec, fedjit.CLIENTS))
  def total(v):
    return fedjit.federated_sum(fedjit.federated_map(scale, v))

  assert str(scale.type_signature) == "(<a=int32,b=float32> -> float32)"
  assert str(total.type_signature) == "({<a=int32,b=float32>}@CLIENTS -> float32@SERVER)"
  assert float(scale((2, 1.5))) == 3.0
  assert float(scale(collections.OrderedDict(a=3, b=0.5))) == 1.5
  assert float(unpacked(a=2, b=0.25)) == 2.25
  assert float(total([{"a": 1, "b": 2.0}, {"a": 3, "b": 4.0}])) == 1 * 2.0 + 3 * 4.0


def _first_round_delta(backend_name, server):
  model = softmax3_model()
  trainer = algorithms.build_weighted_fed_avg(model, optimizers.build_sgdm(0.1),
                                              server_optimizer_fn=server)
  state = trainer.initialize()
  before = trainer.get_model_weights(state).trainable
  after = trainer.get_model_weights(trainer.next(state, batched_clients([4, 6])).state).trainable
  return jax.tree.map(lambda a, b: np.asarray(a) - np.asarray(b), after, before)


def test_nesterov_server_momentum_takes_the_look_ahead_step(backend):
  plain = _first_round_delta(backend, optimizers.build_sgdm(1.0))  # the mean client delta
  heavy = _first_round_delta(backend, optimizers.build_sgdm(0.5, momentum=0.9))
  nesterov = _first_round_delta(backend, optimizers.build_sgdm(0.5, momentum=0.9,
                                                               nesterov=True))
  assert max(float(np.abs(d).max()) for d in jax.tree.leaves(plain)) > 1e-3
  # Step 1 from a zero accumulator v = g: heavy ball moves lr * g, Nesterov lr * (g + m v).
  jax.tree.map(lambda h, p: np.testing.assert_allclose(h, 0.5 * p, rtol=1e-5, atol=1e-7),
               heavy, plain)
  jax.tree.map(lambda n, p: np.testing.assert_allclose(n, 0.5 * 1.9 * p, rtol=1e-5, atol=1e-7),
               nesterov, plain)


def test_get_and_set_hparams_between_rounds(backend):
  server = optimizers.build_sgdm(1.0, momentum=0.5)
  trainer = algorithms.build_weighted_fed_avg(softmax3_model(), optimizers.build_sgdm(0.1),
                                              server_optimizer_fn=server)
  data = batched_clients([4, 6])
  first = trainer.next(trainer.initialize(), data).state
  opt_state, round_num = first.finalizer
  assert server.get_hparams(opt_state) == collections.OrderedDict(learning_rate=1.0,
                                                                  momentum=0.5)
  frozen = first._replace(finalizer=(server.set_hparams(opt_state, {"learning_rate": 0.0}),
                                     round_num))
  still = trainer.get_model_weights(trainer.next(frozen, data).state).trainable
  moved = trainer.get_model_weights(trainer.next(first, data).state).trainable
  start = trainer.get_model_weights(first).trainable
  jax.tree.map(np.testing.assert_array_equal, still, start)
  assert any(np.any(np.asarray(a) != np.asarray(b))
             for a, b in zip(jax.tree.leaves(moved), jax.tree.leaves(start)))

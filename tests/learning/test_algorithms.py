"""FedAvg, FedSGD, FedProx and evaluation against independent NumPy code."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fedjit
from fedjit import learning
from fedjit.learning import ClientWeighting, optimizers

FEATURES, CLASSES = 4, 3


def _model():
  rng = np.random.default_rng(42)
  w0 = rng.normal(0, 0.3, (FEATURES, CLASSES)).astype(np.float32)
  b0 = np.zeros(CLASSES, np.float32)
  return learning.models.from_functions(
      lambda key: {"w": jnp.asarray(w0), "b": jnp.asarray(b0)},
      lambda p, x: x @ p["w"] + p["b"],
      lambda y, logits: optax.softmax_cross_entropy_with_integer_labels(logits, y),
      input_spec=((np.float32, [None, FEATURES]), (np.int32, [None])),
      metrics={"accuracy": learning.metrics.MeanMetric(
          "accuracy", lambda y, p: (jnp.argmax(p, -1) == y).astype(jnp.float32))})


def _clients(sizes=(11, 5, 8), batch=4, seed=0):
  """Clients with unequal sizes and a smaller last batch."""
  rng = np.random.default_rng(seed)
  true_w = rng.normal(size=(FEATURES, CLASSES))
  out = []
  for n in sizes:
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    y = np.argmax(x @ true_w + rng.normal(0, 0.5, (n, CLASSES)), -1).astype(np.int32)
    out.append([(x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)])
  return out


# ----------------------------------------------------- NumPy reference code


def _grad(w, b, x, y):
  """Mean softmax cross-entropy over the batch: loss, dW, db, predictions."""
  x = x.astype(np.float64)
  logits = x @ w + b
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  loss = -np.log(p[np.arange(len(y)), y]).mean()
  d = p.copy()
  d[np.arange(len(y)), y] -= 1.0
  d /= len(y)
  return loss, x.T @ d, d.sum(0), logits.argmax(1)


def numpy_fed_avg(w, b, clients, rounds, client_lr, server_lr=1.0, uniform=False, mu=0.0,
                  lr_schedule=None):
  """FedAvg (FedProx when mu > 0) in plain NumPy, float64.

  Returns the final weights and, per round, (accuracy, mean loss) over all
  examples seen in training (predictions made before each step's update).
  """
  w, b = w.astype(np.float64), b.astype(np.float64)
  history = []
  for r in range(rounds):
    lr = client_lr if lr_schedule is None else lr_schedule(r)
    deltas, weights = [], []
    correct = loss_sum = count = 0
    for batches in clients:
      cw, cb = w.copy(), b.copy()
      n = 0
      for x, y in batches:
        loss, gw, gb, pred = _grad(cw, cb, x, y)
        gw, gb = gw + mu * (cw - w), gb + mu * (cb - b)
        cw, cb = cw - lr * gw, cb - lr * gb
        correct += (pred == y).sum()
        loss_sum += loss * len(y)
        count += len(y)
        n += len(y)
      deltas.append((w - cw, b - cb))
      weights.append(1.0 if uniform else n)
    total = sum(weights)
    dw = sum(wt * d[0] for wt, d in zip(weights, deltas)) / total
    db = sum(wt * d[1] for wt, d in zip(weights, deltas)) / total
    w, b = w - server_lr * dw, b - server_lr * db
    history.append((correct / count, loss_sum / count))
  return w, b, history


def _weights(trainer, state):
  p = trainer.get_model_weights(state).trainable
  return np.asarray(p["w"]), np.asarray(p["b"])


# ---------------------------------------------------------------- FedAvg


@pytest.mark.parametrize("weighting", ["num_examples", "uniform"])
def test_fed_avg_equals_numpy(backend, weighting):
  model = _model()
  clients = _clients()
  w0, b0 = model.initial_weights.trainable["w"], model.initial_weights.trainable["b"]
  uniform = weighting == "uniform"
  trainer = learning.algorithms.build_weighted_fed_avg(
      model, client_optimizer_fn=optimizers.build_sgdm(0.1),
      server_optimizer_fn=optimizers.build_sgdm(0.7),
      client_weighting=ClientWeighting.UNIFORM if uniform else ClientWeighting.NUM_EXAMPLES)
  state = trainer.initialize()
  for _ in range(3):
    result = trainer.next(state, clients)
    state = result.state
  w, b, history = numpy_fed_avg(w0, b0, clients, 3, 0.1, server_lr=0.7, uniform=uniform)
  got_w, got_b = _weights(trainer, state)
  np.testing.assert_allclose(got_w, w, atol=1e-5)
  np.testing.assert_allclose(got_b, b, atol=1e-5)
  # Metrics of the last round: over all examples, not a mean of client means.
  train = result.metrics["client_work"]["train"]
  np.testing.assert_allclose(train["accuracy"], history[-1][0], atol=1e-6)
  np.testing.assert_allclose(train["loss"], history[-1][1], atol=1e-5)
  assert train["num_examples"] == 24 and train["num_batches"] == 3 + 2 + 2


def test_unweighted_fed_avg_equals_uniform_weighting():
  model, clients = _model(), _clients()
  a = learning.algorithms.build_unweighted_fed_avg(model, optimizers.build_sgdm(0.1))
  b = learning.algorithms.build_weighted_fed_avg(model, optimizers.build_sgdm(0.1),
                                                 client_weighting=ClientWeighting.UNIFORM)
  sa, sb = a.initialize(), b.initialize()
  for _ in range(2):
    sa, sb = a.next(sa, clients).state, b.next(sb, clients).state
  for x, y in zip(_weights(a, sa), _weights(b, sb)):
    np.testing.assert_allclose(x, y, atol=1e-6)


def test_client_weighting_function_and_learning_rate_schedule():
  model, clients = _model(), _clients()
  w0, b0 = model.initial_weights.trainable["w"], model.initial_weights.trainable["b"]
  schedule = lambda r: 0.2 * 0.5 ** r
  trainer = learning.algorithms.build_weighted_fed_avg(
      model, client_optimizer_fn=optimizers.build_sgdm(learning_rate=schedule),
      # A weighting function of the local metrics: here, uniform by hand.
      client_weighting=lambda metrics: 1.0 + 0.0 * metrics["num_examples"])
  state = trainer.initialize()
  for _ in range(3):
    state = trainer.next(state, clients).state
  w, b, _ = numpy_fed_avg(w0, b0, clients, 3, None, uniform=True, lr_schedule=schedule)
  np.testing.assert_allclose(_weights(trainer, state)[0], w, atol=1e-5)


def test_metrics_are_nested_as_in_tff():
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), optimizers.build_sgdm(0.1))
  metrics = trainer.next(trainer.initialize(), _clients()).metrics
  assert set(metrics) == {"distributor", "client_work", "aggregator", "finalizer"}
  assert set(metrics["client_work"]["train"]) == {"accuracy", "loss", "num_examples",
                                                  "num_batches", "num_invalid_labels",
                                                  "num_non_finite_clients"}
  assert metrics["client_work"]["train"]["num_non_finite_clients"] == 0
  assert metrics["aggregator"] == {"mean_value": (), "mean_weight": ()}
  assert metrics["finalizer"] == {"update_non_finite": 0}
  assert metrics["distributor"] == ()


def test_server_adam_is_fedadam():
  model, clients = _model(), _clients()
  trainer = learning.algorithms.build_weighted_fed_avg(
      model, optimizers.build_sgdm(0.1), server_optimizer_fn=optimizers.build_adam(0.05))
  state = trainer.initialize()
  for _ in range(2):
    state = trainer.next(state, clients).state
  # NumPy Adam in TFF's form (epsilon added to the uncorrected sqrt(v)) on
  # the FedAvg pseudo-gradients.
  w0, b0 = model.initial_weights.trainable["w"], model.initial_weights.trainable["b"]
  w, b = w0.astype(np.float64), b0.astype(np.float64)
  m = [np.zeros_like(w), np.zeros_like(b)]
  v = [np.zeros_like(w), np.zeros_like(b)]
  for t in range(1, 3):
    nw, nb, _ = numpy_fed_avg(w, b, clients, 1, 0.1)
    g = [w - nw, b - nb]
    for i in range(2):
      m[i] = 0.9 * m[i] + 0.1 * g[i]
      v[i] = 0.999 * v[i] + 0.001 * g[i] ** 2
    normalized_lr = 0.05 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
    step = [normalized_lr * m[i] / (np.sqrt(v[i]) + 1e-7) for i in range(2)]
    w, b = w - step[0], b - step[1]
  np.testing.assert_allclose(_weights(trainer, state)[0], w, atol=1e-5)


def _with_nan_client(clients, k=1):
  """`clients` with client k's first batch all NaN features."""
  clients = [list(c) for c in clients]
  x, y = clients[k][0]
  clients[k][0] = (np.full_like(x, np.nan), y)
  return clients


def test_a_non_finite_client_drops_out_of_the_weighted_mean(backend):
  # As TFF's model-delta client work: weight 0, update zeroed (not 0 * NaN),
  # metrics reset; the model moves as FedAvg over the other clients.
  model, clients = _model(), _clients()
  w0, b0 = model.initial_weights.trainable["w"], model.initial_weights.trainable["b"]
  trainer = learning.algorithms.build_weighted_fed_avg(model, optimizers.build_sgdm(0.1))
  result = trainer.next(trainer.initialize(), _with_nan_client(clients))
  w, b, history = numpy_fed_avg(w0, b0, [clients[0], clients[2]], 1, 0.1)
  np.testing.assert_allclose(_weights(trainer, result.state)[0], w, atol=1e-5)
  np.testing.assert_allclose(_weights(trainer, result.state)[1], b, atol=1e-5)
  train = result.metrics["client_work"]["train"]
  assert train["num_non_finite_clients"] == 1
  assert train["num_examples"] == 11 + 8 and train["num_batches"] == 3 + 2
  np.testing.assert_allclose(train["loss"], history[0][1], atol=1e-5)
  assert result.metrics["finalizer"]["update_non_finite"] == 0


def test_a_non_finite_client_drops_out_of_fed_sgd(backend):
  model, clients = _model(), _clients(sizes=(6, 4, 5), batch=4)
  trainer = learning.algorithms.build_fed_sgd(model, optimizers.build_sgdm(0.3))
  result = trainer.next(trainer.initialize(), _with_nan_client(clients, k=0))
  good = [bt for c in clients[1:] for bt in c]
  x = np.concatenate([bt[0] for bt in good])
  y = np.concatenate([bt[1] for bt in good])
  w0, b0 = model.initial_weights.trainable["w"], model.initial_weights.trainable["b"]
  _, gw, gb, _ = _grad(w0.astype(np.float64), b0.astype(np.float64), x, y)
  np.testing.assert_allclose(_weights(trainer, result.state)[0], w0 - 0.3 * gw, atol=1e-6)
  np.testing.assert_allclose(_weights(trainer, result.state)[1], b0 - 0.3 * gb, atol=1e-6)
  train = result.metrics["client_work"]["train"]
  assert train["num_non_finite_clients"] == 1
  assert np.isnan(train["loss"])  # TFF's FedSGD keeps the dropped client's metrics


def test_unweighted_fed_avg_counts_a_non_finite_client_as_a_zero_update():
  # TFF's unweighted FedAvg ignores the weights, so the dropped client's zero
  # update is one of the n it averages.
  model, clients = _model(), _clients()
  w0, b0 = model.initial_weights.trainable["w"], model.initial_weights.trainable["b"]
  trainer = learning.algorithms.build_unweighted_fed_avg(model, optimizers.build_sgdm(0.1))
  state = trainer.next(trainer.initialize(), _with_nan_client(clients)).state
  w, b, _ = numpy_fed_avg(w0, b0, [clients[0], clients[2]], 1, 0.1, uniform=True,
                          server_lr=2 / 3)
  np.testing.assert_allclose(_weights(trainer, state)[0], w, atol=1e-5)


def test_a_round_of_only_non_finite_clients_never_touches_the_model():
  model, clients = _model(), _clients(sizes=(4, 4))
  clients = _with_nan_client(_with_nan_client(clients, 0), 1)
  trainer = learning.algorithms.build_weighted_fed_avg(model, optimizers.build_sgdm(0.1))
  state = trainer.initialize()
  result = trainer.next(state, clients)
  assert result.metrics["client_work"]["train"]["num_non_finite_clients"] == 2
  assert result.metrics["finalizer"]["update_non_finite"] == 1  # Σw = 0: 0/0
  for before, after in zip(_weights(trainer, state), _weights(trainer, result.state)):
    np.testing.assert_array_equal(before, after)


def _times_two(metric_finalizers, local_unfinalized_metrics_type):
  """A metrics aggregator in TFF's form: sums, finalizes, doubles."""
  @fedjit.federated_computation(fedjit.FederatedType(local_unfinalized_metrics_type,
                                                     fedjit.CLIENTS))
  def aggregate(client_metrics):
    @fedjit.jax_computation
    def finalize(state):
      return {k: v * 2 for k, v in metric_finalizers(state).items()}
    return fedjit.federated_map(finalize, fedjit.federated_sum(client_metrics))
  return aggregate


@pytest.mark.parametrize("build", [
    lambda m, **kw: learning.algorithms.build_weighted_fed_avg(m, optimizers.build_sgdm(0.1),
                                                               **kw),
    lambda m, **kw: learning.algorithms.build_fed_sgd(m, **kw),
], ids=["weighted_fed_avg", "fed_sgd"])  # (FedProx and unweighted share FedAvg's client work)
def test_metrics_aggregator_is_used(build):
  model, clients = _model(), _clients()
  explicit = build(model, metrics_aggregator=learning.metrics.sum_then_finalize)
  summed = explicit.next(explicit.initialize(), clients).metrics["client_work"]["train"]
  assert summed["num_examples"] == 24 and summed["num_batches"] == 3 + 2 + 2
  doubled = build(model, metrics_aggregator=_times_two)
  train = doubled.next(doubled.initialize(), clients).metrics["client_work"]["train"]
  assert train["num_examples"] == 2 * 24
  np.testing.assert_allclose(train["loss"], 2 * summed["loss"], rtol=1e-6)


def test_metrics_aggregator_must_give_server_metrics():
  def at_clients(metric_finalizers, local_type):
    return lambda client_metrics: client_metrics
  with pytest.raises(TypeError, match="placed at SERVER"):
    learning.algorithms.build_weighted_fed_avg(_model(), optimizers.build_sgdm(0.1),
                                               metrics_aggregator=at_clients)
  with pytest.raises(TypeError, match="metrics_aggregator must be a function"):
    learning.algorithms.build_weighted_fed_avg(_model(), optimizers.build_sgdm(0.1),
                                               metrics_aggregator="sum")


def test_unweighted_fed_avg_rejects_a_weighted_aggregator():
  with pytest.raises(TypeError) as info:
    learning.algorithms.build_unweighted_fed_avg(
        _model(), optimizers.build_sgdm(0.1),
        model_aggregator=learning.aggregators.MeanFactory())
  message = str(info.value)
  assert "MeanFactory, a weighted aggregation factory" in message  # what was given
  assert "UnweightedAggregationFactory" in message  # what was expected
  assert "UnweightedMeanFactory()" in message and "ClientWeighting.UNIFORM" in message


def test_builders_take_the_model_as_model_fn_too():
  trainer = learning.algorithms.build_weighted_fed_avg(
      model_fn=_model, client_optimizer_fn=optimizers.build_sgdm(0.1))
  assert trainer.get_model_weights(trainer.initialize()).trainable["w"].shape == (
      FEATURES, CLASSES)
  with pytest.raises(TypeError, match="both model and model_fn"):
    learning.algorithms.build_fed_sgd(_model(), model_fn=_model)


# ---------------------------------------------------------- FedSGD, FedProx


def test_fed_sgd_with_one_client_is_one_centralized_gradient_step(backend):
  model = _model()
  client = _clients(sizes=(10,), batch=4)  # batches of 4, 4 and 2
  trainer = learning.algorithms.build_fed_sgd(
      model, server_optimizer_fn=optimizers.build_sgdm(0.3))
  state = trainer.next(trainer.initialize(), client).state
  x = np.concatenate([b[0] for b in client[0]])
  y = np.concatenate([b[1] for b in client[0]])
  w0, b0 = model.initial_weights.trainable["w"], model.initial_weights.trainable["b"]
  _, gw, gb, _ = _grad(w0.astype(np.float64), b0.astype(np.float64), x, y)
  np.testing.assert_allclose(_weights(trainer, state)[0], w0 - 0.3 * gw, atol=1e-6)
  np.testing.assert_allclose(_weights(trainer, state)[1], b0 - 0.3 * gb, atol=1e-6)


def test_fed_prox_with_zero_strength_is_fed_avg():
  model, clients = _model(), _clients()
  prox = learning.algorithms.build_fed_prox(model, 0.0, optimizers.build_sgdm(0.1))
  avg = learning.algorithms.build_weighted_fed_avg(model, optimizers.build_sgdm(0.1))
  sp, sa = prox.initialize(), avg.initialize()
  for _ in range(2):
    sp, sa = prox.next(sp, clients).state, avg.next(sa, clients).state
  for p, a in zip(_weights(prox, sp), _weights(avg, sa)):
    np.testing.assert_array_equal(p, a)


def test_fed_prox_matches_numpy_and_keeps_clients_closer():
  model, clients = _model(), _clients()
  w0, b0 = model.initial_weights.trainable["w"], model.initial_weights.trainable["b"]
  moves = []
  for mu in (0.0, 1.0, 10.0):
    trainer = learning.algorithms.build_fed_prox(model, mu, optimizers.build_sgdm(0.1),
                                                 client_weighting=ClientWeighting.UNIFORM)
    state = trainer.next(trainer.initialize(), clients).state
    w, b, _ = numpy_fed_avg(w0, b0, clients, 1, 0.1, uniform=True, mu=mu)
    np.testing.assert_allclose(_weights(trainer, state)[0], w, atol=1e-5)
    # With uniform weights and SGD(1.0), the server moves by the mean client delta.
    moves.append(np.linalg.norm(_weights(trainer, state)[0] - w0))
  assert moves[0] > moves[1] > moves[2] > 0
  with pytest.raises(ValueError, match="proximal_strength"):
    learning.algorithms.build_fed_prox(model, -1.0, optimizers.build_sgdm(0.1))


# ------------------------------------------------ evaluation and checkpoints


def test_fed_eval_and_central_evaluate_agree_with_numpy():
  model, clients = _model(), _clients()
  weights = model.initial_weights
  w, b = weights.trainable["w"].astype(np.float64), weights.trainable["b"].astype(np.float64)
  x = np.concatenate([bt[0] for c in clients for bt in c])
  y = np.concatenate([bt[1] for c in clients for bt in c])
  logits = x @ w + b
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  loss = -np.log(p[np.arange(len(y)), y]).mean()
  accuracy = (logits.argmax(1) == y).mean()

  evaluator = learning.build_fed_eval(model)
  state = evaluator.set_model_weights(evaluator.initialize(), weights)
  out = evaluator.next(state, clients)
  current = out.metrics["client_work"]["eval"]["current_round_metrics"]
  np.testing.assert_allclose(current["loss"], loss, atol=1e-5)
  np.testing.assert_allclose(current["accuracy"], accuracy, atol=1e-6)
  assert current["num_examples"] == len(y)
  total = evaluator.next(out.state, clients[:1]).metrics["client_work"]["eval"][
      "total_rounds_metrics"]
  assert total["num_examples"] == len(y) + sum(len(bt[1]) for bt in clients[0])

  central = learning.evaluate(model, weights, [bt for c in clients for bt in c])
  np.testing.assert_allclose(central["loss"], loss, atol=1e-5)
  np.testing.assert_allclose(central["accuracy"], accuracy, atol=1e-6)


def test_fed_eval_uses_the_distributor_and_refuses_other_metrics_aggregators():
  from test_aggregators import _counting_broadcast
  model = _model()
  evaluator = learning.build_fed_eval(model_fn=_model,
                                      model_distributor=_counting_broadcast(model.weights_type))
  out = evaluator.next(evaluator.initialize(), _clients())
  out = evaluator.next(out.state, _clients())
  assert out.metrics["distributor"] == {"broadcasts": 2}
  assert out.metrics["client_work"]["eval"]["total_rounds_metrics"]["num_examples"] == 48
  with pytest.raises(NotImplementedError, match="sum_then_finalize"):
    learning.build_fed_eval(model, metrics_aggregator=lambda finalizers, t: None)


def test_evaluate_does_not_keep_models_alive():
  import gc
  import weakref
  clients = _clients()
  batches = [bt for c in clients for bt in c]
  model = _model()
  first = learning.evaluate(model, model.initial_weights, batches)
  # The compiled evaluation is reused while the model lives...
  again = learning.evaluate(model, model.initial_weights, batches)
  assert again["loss"] == first["loss"]
  # ...and dropped with it: no cache entry may hold the model.
  alive = weakref.ref(model)
  del model
  gc.collect()
  assert alive() is None


def test_resume_from_checkpoint_gives_identical_weights(tmp_path):
  clients = _clients()
  build = lambda: learning.algorithms.build_weighted_fed_avg(
      _model(), optimizers.build_sgdm(0.1, momentum=0.9),
      server_optimizer_fn=optimizers.build_adam(0.01))
  trainer = build()
  state = trainer.initialize()
  for _ in range(4):
    state = trainer.next(state, clients).state

  first = build()
  resumed = first.initialize()
  for _ in range(2):
    resumed = first.next(resumed, clients).state
  path = learning.save_checkpoint(tmp_path / "ckpt" / "round2.safetensors", resumed,
                                  metadata={"round": 2})
  second = build()  # as if in a new process
  resumed = learning.load_checkpoint(path, second.initialize())
  assert learning.read_checkpoint_metadata(path) == {"round": 2}
  for _ in range(2):
    resumed = second.next(resumed, clients).state
  for a, b in zip(_weights(trainer, state), _weights(second, resumed)):
    np.testing.assert_array_equal(a, b)


def test_learning_process_serializes():
  model, clients = _model(), _clients()
  trainer = learning.algorithms.build_weighted_fed_avg(model, optimizers.build_sgdm(0.1))
  state = trainer.initialize()
  restored = fedjit.deserialize(fedjit.serialize(trainer.next))
  assert str(restored.type_signature) == str(trainer.next.type_signature)
  expected = trainer.next(state, clients)
  got = restored(state, clients)
  for a, b in zip(_weights(trainer, expected.state), _weights(trainer, got.state)):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_set_model_weights_checks_structure():
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), optimizers.build_sgdm(0.1))
  state = trainer.initialize()
  weights = trainer.get_model_weights(state)
  new = trainer.set_model_weights(state, weights._replace(trainable={
      "w": np.ones((FEATURES, CLASSES), np.float32), "b": np.ones(CLASSES, np.float32)}))
  assert np.all(_weights(trainer, new)[0] == 1.0)
  with pytest.raises(fedjit.FederatedTypeError, match="shape"):
    trainer.set_model_weights(state, weights._replace(trainable={
        "w": np.ones((2, 2), np.float32), "b": np.ones(CLASSES, np.float32)}))

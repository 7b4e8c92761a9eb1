"""The examples run, print the seed's strings, learn, and agree across backends."""

import numpy as np

from conftest import load_example


def test_custom_fedavg_prints_seed_types_and_loss_goes_down(capsys):
  example = load_example("custom_fedavg")
  losses = example.main(rounds=15, backend="vectorized")
  out = capsys.readouterr().out.splitlines()
  assert out[:4] == [
      "<float32[?,784],int32[?,1]>*",
      "<float32[784,10],float32[10]>",
      "( -> <float32[784,10],float32[10]>@SERVER)",
      "(<server_weights=<float32[784,10],float32[10]>@SERVER,"
      "federated_dataset={<float32[?,784],int32[?,1]>*}@CLIENTS> -> "
      "<float32[784,10],float32[10]>@SERVER)",
  ]
  assert len(losses) == 15 and sum(l.startswith("round") for l in out) == 15
  assert all(b < a for a, b in zip(losses, losses[1:])), losses


def test_custom_fedavg_both_backends_agree_for_5_rounds():
  example = load_example("custom_fedavg")
  data = [example.preprocess(*c) for c in example.make_client_data()]
  sizes = sorted(sum(len(b[1]) for b in c) for c in data)
  assert len(set(sizes)) > 1  # clients really hold unequal amounts of data
  process = example.federated_algorithm
  states = {}
  for backend in ("reference", "vectorized"):
    with example.fedjit.backend(backend):
      state = process.initialize()
      for _ in range(5):
        state = process.next(state, data)
    states[backend] = state
  for ref, vec in zip(states["reference"], states["vectorized"]):
    np.testing.assert_allclose(vec, ref, atol=1e-5)


def test_custom_fedavg_matches_numpy_fedavg():
  """One round equals an independent NumPy implementation of FedAvg."""
  example = load_example("custom_fedavg")
  data = [example.preprocess(*c) for c in example.make_client_data(num_clients=4)]
  state = example.federated_algorithm.initialize()
  new_state = example.federated_algorithm.next(state, data)

  def softmax_grad(w, b, x, y):
    logits = x @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    p /= len(y)
    return x.T @ p, p.sum(0)

  clients = []
  for batches in data:
    w, b = np.array(state[0], np.float64), np.array(state[1], np.float64)
    for x, y in batches:
      gw, gb = softmax_grad(w, b, x.astype(np.float64), y[:, 0])
      w, b = w - 0.01 * gw, b - 0.01 * gb
    clients.append((w, b))
  mean_w = np.mean([c[0] for c in clients], axis=0)
  mean_b = np.mean([c[1] for c in clients], axis=0)
  np.testing.assert_allclose(new_state[0], mean_w, atol=1e-5)
  np.testing.assert_allclose(new_state[1], mean_b, atol=1e-5)


def test_thousand_clients_example_learns_and_compiles_once(capsys):
  example = load_example("thousand_clients")
  trainers = []
  build = example.build_trainer
  example.build_trainer = lambda: trainers.append(build()) or trainers[-1]
  history = example.main(num_clients=300, per_round=100, rounds=4, examples_per_client=30)
  out = capsys.readouterr().out
  assert sum(line.startswith("round") for line in out.splitlines()) == 4
  assert "Population(300 clients" in history["population"]
  assert history["loss"][-1] < 0.7 * history["loss"][0], history["loss"]
  # Every round's examples are its sampled clients' examples, counted here
  # from the datasets themselves; sizes really differ (power law).
  train = example.make_client_data(300, 30)
  sizes = {c: train.create_dataset_for_client(c).num_examples for c in train.client_ids}
  assert max(sizes.values()) > 5 * min(sizes.values())
  for r, examples in enumerate(history["examples"]):
    ids = example.simulation.sample_clients(train.client_ids, 100, round_num=r)
    assert examples == sum(sizes[c] for c in ids)
  # Four rounds of different cohorts, one compiled program.
  assert example.fedjit.get_backend().compilations(trainers[0].next) == 1


def test_thousand_clients_population_round_equals_reference_backend_with_lists():
  example = load_example("thousand_clients")
  train = example.make_client_data(40, 30, seed=1)
  trainer = example.build_trainer()
  state = trainer.initialize()
  population = example.simulation.Population(trainer, train)
  ids = example.simulation.sample_clients(train.client_ids, 12, round_num=0)
  fast = trainer.next(state, population.cohort(ids))
  with example.fedjit.backend("reference"):
    ref = trainer.next(state, [train.create_dataset_for_client(c) for c in ids])
  for a, b in zip(example.jax.tree_util.tree_leaves(fast.state.global_model_weights),
                  example.jax.tree_util.tree_leaves(ref.state.global_model_weights)):
    np.testing.assert_allclose(a, b, atol=1e-5)
  np.testing.assert_allclose(fast.metrics["client_work"]["train"]["loss"],
                             ref.metrics["client_work"]["train"]["loss"], rtol=1e-5)


def test_dp_fedavg_prints_epsilon_per_round_as_dp_accounting_computes_it(capsys):
  dpa = __import__("pytest").importorskip("dp_accounting")
  example = load_example("dp_fedavg")
  epsilons = example.main(rounds=3)
  out = capsys.readouterr().out.splitlines()
  assert [l.split()[:2] for l in out] == [["round", "1"], ["round", "2"], ["round", "3"]]
  assert all("epsilon" in l for l in out)
  for n, eps in enumerate(epsilons, 1):
    rdp = dpa.rdp.RdpAccountant(neighboring_relation=dpa.NeighboringRelation.REPLACE_ONE)
    rdp.compose(dpa.SelfComposedDpEvent(
        dpa.SampledWithoutReplacementDpEvent(200, 40, dpa.GaussianDpEvent(1.0)), n))
    assert abs(eps - rdp.get_epsilon(1e-4)) < 1e-5 * eps
  losses = [float(l.split()[3]) for l in out]
  assert losses[-1] < losses[0]


def test_deploy_digits_example_writes_client_folders_and_its_round_splits(tmp_path, capsys):
  import fedjit
  from fedjit import deploy
  example = load_example("deploy_digits")
  example.main([str(tmp_path)])
  assert capsys.readouterr().out.splitlines() == [
      f"wrote {tmp_path}/client-1", f"wrote {tmp_path}/client-2"]
  datasets = [deploy.load_client_folder(tmp_path / f"client-{i}") for i in (1, 2)]
  assert sum(d.num_examples for d in datasets) == 1797   # all of the digits
  process = example.build_process()
  plan = fedjit.core.DistributedRound(process)
  state = process.initialize()
  task = plan.prepare([state])
  program = fedjit.deserialize(plan.serialized_client_program())
  result = plan.finish(task, [plan.run_client(program, [d], task.broadcasts) for d in datasets])
  expected = process.next(state, datasets)
  np.testing.assert_allclose(process.get_model_weights(result.state).trainable["w"],
                             process.get_model_weights(expected.state).trainable["w"],
                             rtol=1e-4, atol=1e-6)

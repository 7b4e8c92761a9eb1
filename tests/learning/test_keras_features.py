"""Keras models on dict features and unbatched examples, against NumPy.

The seed 004 program (TFF's linear regression on two clients of three dict
examples, only the tf/tff spelling changed) runs as written; dict features
go to Sequential and functional Keras models as `model.fit` takes them; and
the errors for features that cannot fit a model are one clear line.
"""

import contextlib
import re
import warnings

import numpy as np
import pytest

import fedjit  # before keras: fedjit selects Keras's JAX backend
import keras

from fedjit.learning.algorithms import build_fed_eval, build_weighted_fed_avg
from fedjit.simulation import Dataset

# Keras 3 on NumPy 2 warns about its own Variable.__array__; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

BACKENDS = {"reference": lambda: fedjit.backend("reference"),
            "vectorized": contextlib.nullcontext}  # the default backend

SEED_004 = '''
import fedjit as tff   # spelling: tff.simulation.datasets.TestClientData etc.
import keras
from fedjit.simulation import Dataset
def create_tf_dataset_for_client(client_id):
    example_data = Dataset.from_tensor_slices(
        ({'x': [1.0, 2.0, 3.0]}, {'y': [2.0, 4.0, 6.0]}))
    return example_data
client_ids = ['client1', 'client2']
federated_data = {client_id: create_tf_dataset_for_client(client_id) for client_id in client_ids}
def create_tff_dataset(client_id):
  return tff.simulation.datasets.TestClientData(client_data={client_id: federated_data[client_id]})
federated_train_data = [create_tff_dataset(cid).create_tf_dataset_from_all_clients() for cid in client_ids]
train_data = tff.simulation.datasets.TestClientData(client_data={cid: create_tf_dataset_for_client(cid) for cid in client_ids})
def create_keras_model():
    return keras.models.Sequential([keras.layers.Dense(1, kernel_initializer='zeros')])
def model_fn():
    keras_model = create_keras_model()
    return tff.learning.from_keras_model(keras_model, input_spec=train_data.element_spec,
        loss=keras.losses.MeanSquaredError(), metrics=[keras.metrics.MeanAbsoluteError()])
iterative_process = tff.learning.build_federated_averaging_process(
    model_fn, client_optimizer_fn=lambda: keras.optimizers.SGD(learning_rate=0.02))
state = iterative_process.initialize()
for round_num in range(1, 3):
    state, metrics = iterative_process.next(state, federated_train_data)
    print('round {}: metrics={}'.format(round_num, metrics))
'''


def _run_seed(capsys):
  namespace = {"__name__": "seed_004"}
  with pytest.warns(DeprecationWarning, match="build_federated_averaging_process"):
    exec(compile(SEED_004, "seed_004.py", "exec"), namespace)
  return namespace, capsys.readouterr().out.splitlines()


def _printed(line, name):
  """The value of metric `name` in a printed metrics dict."""
  return float(re.search(rf"'{name}': (?:np\.\w+\()?([-+0-9.e]+)", line).group(1))


def np_fedavg_round(clients, w, b, lr, batch_size):
  """One round of FedAvg of a 1-feature linear model, SGD on the MSE, in
  float64: `(kernel, bias, mean loss, mean absolute error)` over all examples
  (losses before each step, as the training metrics are)."""
  results, losses, errors = [], [], []
  for x, y in clients:
    cw, cb = w, b
    for i in range(0, len(x), batch_size):
      xb, yb = x[i:i + batch_size], y[i:i + batch_size]
      r = cw * xb + cb - yb
      losses += list(r**2)
      errors += list(abs(r))
      cw, cb = cw - lr * 2 * np.mean(r * xb), cb - lr * 2 * np.mean(r)
    results.append((cw, cb, len(x)))
  n = sum(k for _, _, k in results)
  return (sum(cw * k for cw, _, k in results) / n, sum(cb * k for _, cb, k in results) / n,
          np.mean(losses), np.mean(errors))


# -------------------------------------------------------------- seed 004

@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_seed_004_runs_as_written_prints_and_learns(backend, capsys):
  with BACKENDS[backend]():
    namespace, lines = _run_seed(capsys)
  assert len(lines) == 2
  for k, line in enumerate(lines, start=1):
    assert re.fullmatch(
        rf"round {k}: metrics=\{{'distributor': \(\), 'client_work': \{{'train': "
        rf"\{{.*\}}\}}, 'aggregator': .*\}}", line), line
    assert _printed(line, "num_examples") == 6
  losses = [_printed(line, "loss") for line in lines]
  maes = [_printed(line, "mean_absolute_error") for line in lines]
  assert losses[1] < 0.5 * losses[0] and maes[1] < maes[0], (losses, maes)
  # Each unbatched example is a batch of one: 3 SGD steps per client.
  assert _printed(lines[0], "num_batches") == 6
  train = namespace["metrics"]["client_work"]["train"]
  assert float(train["loss"]) == pytest.approx(losses[1], rel=1e-6)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_seed_004_round_one_matches_numpy_fedavg(backend, capsys):
  with BACKENDS[backend]():
    namespace, _ = _run_seed(capsys)
    process = namespace["iterative_process"]
    state, metrics = process.next(process.initialize(), namespace["federated_train_data"])
  x, y = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])
  # Unbatched examples are batches of one: SGD(0.02) steps example by example.
  w, b, loss, mae = np_fedavg_round([(x, y), (x, y)], 0.0, 0.0, lr=0.02, batch_size=1)
  kernel, bias = process.get_model_weights(state).trainable
  np.testing.assert_allclose(np.asarray(kernel), [[w]], atol=1e-5)
  np.testing.assert_allclose(np.asarray(bias), [b], atol=1e-5)
  assert w == pytest.approx(0.936064) and b == pytest.approx(0.415488)  # by hand
  train = metrics["client_work"]["train"]
  assert float(train["loss"]) == pytest.approx(loss, rel=1e-5)
  assert float(train["mean_absolute_error"]) == pytest.approx(mae, rel=1e-5)


# ------------------------------------------- Dense on a single feature

def _line_clients(sizes, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for n in sizes:
    x = rng.uniform(0.0, 3.0, n).astype(np.float32)
    out.append((x, (2.0 * x + 1.0 + rng.normal(0.0, 0.1, n)).astype(np.float32)))
  return out


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("form", ["dict", "tensor"])
def test_dense_on_one_batched_feature_matches_numpy(backend, form):
  clients = _line_clients([10, 7])
  if form == "dict":
    data = [Dataset.from_tensor_slices(({"x": x}, {"y": y})).batch(4) for x, y in clients]
    assert str(data[0].element_spec) == "<<x=float32[?]>,<y=float32[?]>>"
  else:
    data = [Dataset.from_tensor_slices((x, y)).batch(4) for x, y in clients]

  def model_fn():
    return fedjit.learning.from_keras_model(
        keras.Sequential([keras.layers.Dense(1, kernel_initializer="zeros")]),
        input_spec=data[0].element_spec, loss=keras.losses.MeanSquaredError(),
        metrics=[keras.metrics.MeanAbsoluteError()])

  with BACKENDS[backend]():
    process = build_weighted_fed_avg(model_fn, lambda: keras.optimizers.SGD(0.05))
    state = process.initialize()
    w = b = 0.0
    for _ in range(3):
      out = process.next(state, data)
      state = out.state
      ref = [(x.astype(np.float64), y.astype(np.float64)) for x, y in clients]
      w, b, loss, mae = np_fedavg_round(ref, w, b, lr=0.05, batch_size=4)
      train = out.metrics["client_work"]["train"]
      assert float(train["loss"]) == pytest.approx(loss, rel=1e-4)
      assert float(train["mean_absolute_error"]) == pytest.approx(mae, rel=1e-4)
      assert int(train["num_examples"]) == 17 and int(train["num_batches"]) == 3 + 2
    kernel, bias = process.get_model_weights(state).trainable
    assert np.asarray(kernel).shape == (1, 1)
    np.testing.assert_allclose(np.asarray(kernel), [[w]], rtol=1e-4)
    np.testing.assert_allclose(np.asarray(bias), [b], rtol=1e-4)


def test_predictions_of_one_example_have_a_batch_axis_of_one():
  data = Dataset.from_tensor_slices(({"x": [1.0, 2.0]}, {"y": [2.0, 4.0]}))
  keras_model = keras.Sequential([keras.layers.Dense(1, kernel_initializer="ones")])
  model = fedjit.learning.from_keras_model(keras_model, input_spec=data.element_spec,
                                           loss=keras.losses.MeanSquaredError())
  preds = model.predict_on_batch(model.initial_weights, {"x": np.float32(3.0)})
  np.testing.assert_allclose(np.asarray(preds), [[3.0]])
  batch = data.as_elements()[1]  # ({'x': 2.0}, {'y': 4.0}): (2 - 4)² = 4
  out = model.forward_pass(model.initial_weights, batch, np.float32(1.0))
  assert float(out.loss) == pytest.approx(4.0) and int(out.num_examples) == 1


# ------------------------------- functional models with named dict inputs

def _two_feature_clients(sizes, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for n in sizes:
    a, c = rng.normal(size=(2, n)).astype(np.float32)
    out.append(({"a": a, "c": c}, {"y": (3.0 * a - c + 0.5).astype(np.float32)}))
  return out


def _functional(inputs_as):
  ia = keras.Input(shape=(1,), name="a")
  ic = keras.Input(shape=(1,), name="c")
  out = keras.layers.Dense(1, kernel_initializer="zeros")(keras.layers.Concatenate()([ia, ic]))
  inputs = {"a": ia, "c": ic} if inputs_as == "dict" else [ia, ic]
  return keras.Model(inputs, out)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("inputs_as", ["dict", "list"])
def test_functional_model_with_named_inputs_trains_on_dict_features(backend, inputs_as):
  clients = _two_feature_clients([12, 8, 5])
  data = [Dataset.from_tensor_slices(c).batch(4) for c in clients]
  assert str(data[0].element_spec) == "<<a=float32[?],c=float32[?]>,<y=float32[?]>>"

  def model_fn():
    return fedjit.learning.from_keras_model(
        _functional(inputs_as), input_spec=data[0].element_spec,
        loss=keras.losses.MeanSquaredError(), metrics=[keras.metrics.MeanAbsoluteError()])

  with BACKENDS[backend](), warnings.catch_warnings():
    warnings.simplefilter("error", UserWarning)  # Keras warns when inputs do not match
    process = build_weighted_fed_avg(model_fn, lambda: keras.optimizers.SGD(0.1))
    state = process.initialize()
    out = process.next(state, data)
    # NumPy: per client, SGD over batches of 4 of [a, c] @ w + b, weighted mean.
    results = []
    for (f, l), n in zip(clients, [12, 8, 5]):
      x = np.stack([f["a"], f["c"]], axis=1).astype(np.float64)
      y = l["y"].astype(np.float64)
      w, b = np.zeros(2), 0.0
      for i in range(0, n, 4):
        r = x[i:i + 4] @ w + b - y[i:i + 4]
        w, b = w - 0.1 * 2 * (r @ x[i:i + 4]) / len(r), b - 0.1 * 2 * r.mean()
      results.append((w, b, n))
    expected_w = sum(w * n for w, _, n in results) / 25
    expected_b = sum(b * n for _, b, n in results) / 25
    kernel, bias = process.get_model_weights(out.state).trainable
    np.testing.assert_allclose(np.asarray(kernel)[:, 0], expected_w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(bias), [expected_b], rtol=1e-4, atol=1e-6)
    losses = [float(out.metrics["client_work"]["train"]["loss"])]
    state = out.state
    for _ in range(5):
      out = process.next(state, data)
      state = out.state
      losses.append(float(out.metrics["client_work"]["train"]["loss"]))
  assert all(b < a for a, b in zip(losses, losses[1:])), losses
  assert losses[-1] < 0.1 * losses[0], losses


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_functional_model_trains_on_unbatched_dict_examples(backend):
  clients = _two_feature_clients([6, 4], seed=1)
  data = [Dataset.from_tensor_slices(c) for c in clients]
  assert str(data[0].element_spec) == "<<a=float32,c=float32>,<y=float32>>"

  def model_fn():
    return fedjit.learning.from_keras_model(
        _functional("dict"), input_spec=data[0].element_spec,
        loss=keras.losses.MeanSquaredError())

  with BACKENDS[backend]():
    process = build_weighted_fed_avg(model_fn, lambda: keras.optimizers.SGD(0.05))
    state = process.initialize()
    losses = []
    for _ in range(4):
      out = process.next(state, data)
      state = out.state
      train = out.metrics["client_work"]["train"]
      assert int(train["num_examples"]) == 10 and int(train["num_batches"]) == 10
      losses.append(float(train["loss"]))
  assert all(b < a for a, b in zip(losses, losses[1:])), losses


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_unbatched_classification_examples_train_and_evaluate(backend):
  rng = np.random.default_rng(3)
  x = rng.normal(size=(16, 3)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int32)
  data = [Dataset.from_tensor_slices(({"features": x[:10]}, {"label": y[:10]})),
          Dataset.from_tensor_slices(({"features": x[10:]}, {"label": y[10:]}))]
  assert str(data[0].element_spec) == "<<features=float32[3]>,<label=int32>>"

  def model_fn():
    return fedjit.learning.from_keras_model(
        keras.Sequential([keras.layers.Dense(2, kernel_initializer="zeros")]),
        input_spec=data[0].element_spec,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()])

  with BACKENDS[backend]():
    process = build_weighted_fed_avg(model_fn, lambda: keras.optimizers.SGD(0.5))
    state = process.initialize()
    first = process.next(state, data)
    train = first.metrics["client_work"]["train"]
    assert float(train["loss"]) < np.log(2.0)  # the first example's loss is log 2
    assert int(train["num_examples"]) == 16
    state = first.state
    for _ in range(3):
      state = process.next(state, data).state
    evaluator = build_fed_eval(model_fn)
    eval_state = evaluator.set_model_weights(evaluator.initialize(),
                                             process.get_model_weights(state))
    metrics = evaluator.next(eval_state, data).metrics["client_work"]["eval"]
    current = metrics["current_round_metrics"]
  assert int(current["num_examples"]) == 16
  assert float(current["sparse_categorical_accuracy"]) >= 0.8


# -------------------------------------------------------- clear errors

def _one_line_error(exc_type, fn):
  with pytest.raises(exc_type) as e:
    fn()
  message = str(e.value)
  assert "\n" not in message, message
  return message


def test_features_that_do_not_fit_the_model_fail_in_one_line():
  spec = Dataset.from_tensor_slices(({"a": [1.0], "c": [2.0]}, {"y": [1.0]})).element_spec
  message = _one_line_error(ValueError, lambda: fedjit.learning.from_keras_model(
      keras.Sequential([keras.layers.Dense(1)]), input_spec=spec,
      loss=keras.losses.MeanSquaredError()))
  assert "['a', 'c']" in message and "keras.Input" in message and "Dataset.map" in message

  ix = keras.Input(shape=(1,), name="x")
  iz = keras.Input(shape=(1,), name="z")
  model = keras.Model({"x": ix, "z": iz},
                      keras.layers.Dense(1)(keras.layers.Concatenate()([ix, iz])))
  message = _one_line_error(ValueError, lambda: fedjit.learning.from_keras_model(
      model, input_spec=spec, loss=keras.losses.MeanSquaredError()))
  assert "named ['x', 'z']" in message and "keys ['a', 'c']" in message

  two_labels = Dataset.from_tensor_slices(
      ({"a": [1.0]}, {"y": [1.0], "w": [2.0]})).element_spec
  message = _one_line_error(ValueError, lambda: fedjit.learning.from_keras_model(
      keras.Sequential([keras.layers.Dense(1)]), input_spec=two_labels,
      loss=keras.losses.MeanSquaredError()))
  assert "one label tensor" in message and "y['label']" in message

  message = _one_line_error(TypeError, lambda: fedjit.learning.from_keras_model(
      keras.Sequential([keras.layers.Dense(1)]),
      input_spec=Dataset.from_tensor_slices({"a": [1.0], "b": [1.0], "c": [1.0]}).element_spec,
      loss=keras.losses.MeanSquaredError()))
  assert "(x, y)" in message

  message = _one_line_error(TypeError, lambda: fedjit.learning.from_keras_model(
      keras.Sequential([keras.layers.Dense(1)]), input_spec=([1.0, 2.0], [2.0, 4.0]),
      loss=keras.losses.MeanSquaredError()))
  assert "element_spec" in message and "1.0" in message


def test_input_spec_accepts_client_data_datasets_and_keras_input_specs():
  from fedjit.learning.models import input_spec_type
  data = fedjit.simulation.datasets.TestClientData({"a": ([1.0, 2.0], [3.0, 4.0])})
  assert str(input_spec_type(data)) == "<float32,float32>"
  assert input_spec_type(data.create_tf_dataset_for_client("a")) == data.element_spec
  spec = (keras.InputSpec(shape=(None, 1)), keras.InputSpec(shape=(None,), dtype="int32"))
  assert str(input_spec_type(spec)) == "<float32[?,1],int32[?]>"

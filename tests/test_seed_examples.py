"""The seed 003 (TFF's front-page Keras program), seed 004 (Keras linear
regression) and seed 001 (three-client CNN) examples run, print the seeds'
lines, learn, and compute what the seeds compute; and the seeds' programs
(003, 004, 002 the Federated Core tutorial, 001) run in their TFF form with
only spelling changes (the SEED_xxx strings below)."""

import re

import jax
import numpy as np
import pytest

from conftest import load_example

import fedjit  # before keras: fedjit selects Keras's JAX backend
import keras

_NUMBER = r"(?:np\.\w+\()?([-+0-9.e]+)\)?"


def _printed(line, name):
  """The value of metric `name` in a printed metrics dict."""
  return float(re.search(rf"'{name}': {_NUMBER}", line).group(1))


# ---------------------------------------- seed 003: TFF's front-page program

def test_emnist_keras_fedavg_prints_accuracy_and_learns(capsys):
  example = load_example("emnist_keras_fedavg")
  history = example.main(rounds=4, repeat=1)
  lines = capsys.readouterr().out.splitlines()
  # The seed prints metrics['client_work']['train']['accuracy'] once a round.
  assert len(lines) == len(history) == 4
  for line, (accuracy, _) in zip(lines, history):
    assert float(line) == pytest.approx(accuracy, rel=1e-6)
  accuracies, losses = zip(*history)
  assert all(b < a for a, b in zip(losses, losses[1:])), losses
  assert accuracies[-1] > accuracies[0] + 0.15, accuracies  # chance is 0.1


def test_emnist_keras_fedavg_data_is_the_seeds_pipeline():
  """Three clients of `.repeat(10).batch(20)` over flattened 784-pixel images."""
  example = load_example("emnist_keras_fedavg")
  assert str(example.client_data(0).element_spec) == "<float32[?,784],int32[?]>"
  source = example.source
  for n in range(3):
    raw = source.create_tf_dataset_for_client(source.client_ids[n]).numpy()
    batches = list(example.client_data(n))
    assert [len(y) for _, y in batches[:-1]] == [20] * (len(batches) - 1)
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    np.testing.assert_array_equal(x, np.tile(raw["pixels"].reshape(-1, 784), (10, 1)))
    np.testing.assert_array_equal(y, np.tile(raw["label"], 10))


# ------------------------------------------------- seed 004: linear regression

def test_linear_regression_learns_and_prints_seed_lines(capsys):
  example = load_example("linear_regression_keras")
  with pytest.warns(DeprecationWarning, match="build_federated_averaging_process"):
    history = example.main(rounds=5)
  lines = capsys.readouterr().out.splitlines()
  assert len(history) == len(lines) == 5
  for k, (line, (mae, loss)) in enumerate(zip(lines, history), start=1):
    assert re.fullmatch(
        rf"round {k}: metrics=\{{'distributor': \(\), 'client_work': \{{'train': "
        rf"\{{.*\}}\}}, 'aggregator': .*\}}", line), line
    assert _printed(line, "loss") == pytest.approx(loss, rel=1e-6)
    assert _printed(line, "mean_absolute_error") == pytest.approx(mae, rel=1e-6)
    assert _printed(line, "num_examples") == 3 * 60
  maes, losses = zip(*history)
  assert all(b < a for a, b in zip(losses, losses[1:])), losses
  assert all(b < a for a, b in zip(maes, maes[1:])), maes
  assert losses[-1] < 0.1 * losses[0] and maes[-1] < 0.3 * maes[0], history


def test_linear_regression_round_matches_numpy_fedavg():
  """One round of the seed's process equals FedAvg of SGD(0.02) written in NumPy."""
  example = load_example("linear_regression_keras")
  with pytest.warns(DeprecationWarning):
    process = fedjit.learning.build_federated_averaging_process(
        example.model_fn,
        client_optimizer_fn=lambda: keras.optimizers.SGD(learning_rate=0.02))
  data = example.federated_train_data
  state, metrics = process.next(process.initialize(), data)

  clients, loss_sum, abs_sum, count = [], 0.0, 0.0, 0
  for batches in data:
    w, b = 0.0, 0.0  # the zero-initialized kernel; Keras biases start at zero
    for x, y in batches:
      x, y = x[:, 0].astype(np.float64), y[:, 0].astype(np.float64)
      r = w * x + b - y
      loss_sum, abs_sum, count = loss_sum + np.sum(r**2), abs_sum + np.sum(abs(r)), count + len(r)
      w, b = w - 0.02 * 2 * np.mean(r * x), b - 0.02 * 2 * np.mean(r)
    clients.append((w, b, sum(len(y) for _, y in batches)))
  n = sum(c[2] for c in clients)
  expected_w = sum(c[0] * c[2] for c in clients) / n
  expected_b = sum(c[1] * c[2] for c in clients) / n

  kernel, bias = process.get_model_weights(state).trainable
  np.testing.assert_allclose(np.asarray(kernel), [[expected_w]], rtol=1e-5)
  np.testing.assert_allclose(np.asarray(bias), [expected_b], rtol=1e-5, atol=1e-7)
  train = metrics["client_work"]["train"]
  assert float(train["loss"]) == pytest.approx(loss_sum / count, rel=1e-5)
  assert float(train["mean_absolute_error"]) == pytest.approx(abs_sum / count, rel=1e-5)


# ------------------------------------------------------- seed 001: three-client CNN

def test_cnn_three_clients_learns_and_prints_seed_lines(capsys):
  example = load_example("cnn_three_clients")
  history = example.main(rounds=4)
  losses, accuracies = zip(*history)
  lines = capsys.readouterr().out.splitlines()
  assert lines[:2] == ["Train shape: (288, 32, 32, 3), (288, 10)",
                       "Test shape: (500, 32, 32, 3), (500, 10)"]
  expected = []
  for k, accuracy in enumerate(accuracies, start=1):
    expected += [f"Round {k}/4", f"Global model accuracy after round {k}: {accuracy:.4f}"]
  assert lines[2:] == expected
  assert len(accuracies) == 4
  assert accuracies[-1] >= 0.3, accuracies  # chance is 0.1
  assert accuracies[-1] > accuracies[0] + 0.15, accuracies
  # The seed's `global_model.evaluate` loss: about ln(10) = 2.30 at chance.
  assert all(b < a for a, b in zip(losses, losses[1:])), losses
  assert losses[-1] < losses[0] - 0.2, losses


def _one_round_against_keras_fits(example, process, keras_optimizer_fn):
  """Max |fedjit - seed| per weight after one round on three clients of 80
  examples (batches of 32, 32, 16), where the seed's round is: each client
  fits a copy of the global Keras model for one unshuffled epoch, and the
  new global weights are the mean of the clients' weights."""
  keras.utils.set_random_seed(0)
  x, y = example.make_cifar10_like(3 * 80, seed=0)
  client_data = example.split_data(x, y, 3)
  state = process.initialize()
  initial = [np.asarray(w) for w in process.get_model_weights(state).trainable]
  state, _ = process.next(state, [example.batches(cx, cy) for cx, cy in client_data])
  got = process.get_model_weights(state).trainable

  local_weights = []
  for cx, cy in client_data:
    local_model = example.create_model()
    local_model.compile(optimizer=keras_optimizer_fn(), loss="categorical_crossentropy")
    local_model.set_weights(initial)
    local_model.fit(cx, cy, epochs=1, batch_size=32, shuffle=False, verbose=0)
    local_weights.append(local_model.get_weights())
  averaged = [np.mean([w[i] for w in local_weights], axis=0) for i in range(len(initial))]
  moved = max(np.max(np.abs(a - w0)) for a, w0 in zip(averaged, initial))
  assert moved > 1e-4  # the round really changed the weights
  return [float(np.max(np.abs(np.asarray(g) - a))) for g, a in zip(got, averaged)]


def test_cnn_round_is_mean_of_keras_fits_with_sgd():
  """Masking, loss and unweighted averaging reproduce the seed's Keras loop."""
  example = load_example("cnn_three_clients")
  sgd = lambda: keras.optimizers.SGD(learning_rate=0.05)
  process = fedjit.learning.algorithms.build_unweighted_fed_avg(
      example.model_fn(), client_optimizer_fn=sgd,
      server_optimizer_fn=keras.optimizers.SGD(learning_rate=1.0))
  differences = _one_round_against_keras_fits(example, process, sgd)
  assert max(differences) < 1e-6, differences


def test_cnn_round_is_mean_of_keras_fits_with_the_seeds_adam():
  example = load_example("cnn_three_clients")
  process = example.build_process(example.model_fn())
  differences = _one_round_against_keras_fits(example, process, keras.optimizers.Adam)
  assert max(differences) < 1e-6, differences


# ============================================ the seeds' programs, run as written
#
# Each SEED_xxx below is a seed's program with only spelling changes, each
# marked by a trailing `# spelling: ...` comment; the other marks are
# `# data: ...` (a local stand-in for a download), `# speed: ...` (fewer
# rounds or examples), `# port: ...` (TensorFlow code with no JAX spelling),
# `# notebook: ...` (a notebook's displayed value printed) and `# fix: ...`.

def emnist_like(num_clients, per_client=30, seed=0):
  """A stand-in for `tff.simulation.datasets.emnist.load_data()`'s ClientData:
  clients of `{'pixels': float32[n, 28, 28], 'label': int32[n]}` examples,
  each its class's fixed prototype image (the same for every `seed`) plus
  Gaussian noise, so a linear softmax model can learn them."""
  prototypes = np.random.default_rng(1234).random((10, 28, 28)).astype(np.float32)
  rng = np.random.default_rng(seed)
  clients = {}
  for i in range(num_clients):
    labels = rng.integers(0, 10, per_client).astype(np.int32)
    pixels = prototypes[labels] + rng.normal(0.0, 0.3, (per_client, 28, 28))
    clients[f"f{i:04d}_{seed:02d}"] = {"pixels": pixels.astype(np.float32), "label": labels}
  return fedjit.simulation.datasets.TestClientData(clients)


def _exec_seed(source, name, capsys, **names):
  """Runs a seed's program in a fresh namespace; its namespace and printed lines."""
  namespace = {"__name__": name, **names}
  exec(compile(source, f"{name}.py", "exec"), namespace)
  return namespace, capsys.readouterr().out.splitlines()


# ------------------------------------------ seed 003: TFF's front-page program

SEED_003 = '''
import collections
import keras  # spelling: import tensorflow as tf -> import keras (after fedjit)
import fedjit as tff  # spelling: import tensorflow_federated as tff -> import fedjit as tff
import jax.numpy as jnp  # spelling: tf.reshape -> jnp.reshape

# Load simulation data.
source, _ = emnist_like(num_clients=3), None  # data: emnist.load_data() -> 3 local clients of 30 examples
def client_data(n):
  return source.create_tf_dataset_for_client(source.client_ids[n]).map(
      lambda e: (jnp.reshape(e['pixels'], [-1]), e['label'])  # spelling: tf.reshape -> jnp.reshape
  ).repeat(10).batch(20)

# Pick a subset of client devices to participate in training.
train_data = [client_data(n) for n in range(3)]

# Wrap a Keras model for use with TFF.
keras_model = keras.models.Sequential([  # spelling: tf.keras -> keras
  keras.layers.Dense(  # spelling: tf.keras -> keras
    10, keras.activations.softmax, input_shape=(784,), kernel_initializer='zeros')  # spelling: tf.nn.softmax -> keras.activations.softmax
])
tff_model = tff.learning.models.functional_model_from_keras(
      keras_model,
      loss_fn=keras.losses.SparseCategoricalCrossentropy(),  # spelling: tf.keras -> keras
      input_spec=train_data[0].element_spec,
      metrics_constructor=collections.OrderedDict(
        accuracy=keras.metrics.SparseCategoricalAccuracy))  # spelling: tf.keras -> keras

# Simulate a few rounds of training with the selected client devices.
trainer = tff.learning.algorithms.build_weighted_fed_avg(
  tff_model,
  client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.1))
state = trainer.initialize()
for _ in range(5):
  result = trainer.next(state, train_data)
  state = result.state
  metrics = result.metrics
  print(metrics['client_work']['train']['accuracy'])
'''


def test_seed_003_runs_as_written_and_learns(capsys):
  namespace, lines = _exec_seed(SEED_003, "seed_003", capsys, emnist_like=emnist_like)
  assert str(namespace["train_data"][0].element_spec) == "<float32[?,784],int32[?]>"
  assert len(lines) == 5
  accuracies = [float(line) for line in lines]  # one bare number a round
  assert all(0.0 <= a <= 1.0 for a in accuracies), accuracies
  assert accuracies[-1] > accuracies[0] + 0.15, accuracies  # chance is 0.1
  train = namespace["metrics"]["client_work"]["train"]
  assert float(train["accuracy"]) == pytest.approx(accuracies[-1], rel=1e-6)


# ------------------------------------------------- seed 004: linear regression
#
# tests/learning/test_keras_features.py holds the seed's program as SEED_004
# and checks it under both backends; here it runs once more from that string.

def test_seed_004_runs_as_written_and_prints_the_seeds_metrics(capsys):
  from learning.test_keras_features import SEED_004
  with pytest.warns(DeprecationWarning, match="build_federated_averaging_process"):
    namespace, lines = _exec_seed(SEED_004, "seed_004", capsys)
  assert len(lines) == 2
  for k, line in enumerate(lines, start=1):
    assert re.fullmatch(
        rf"round {k}: metrics=\{{'distributor': \(\), 'client_work': \{{'train': "
        rf"\{{.*\}}\}}, 'aggregator': .*\}}", line), line
  losses = [_printed(line, "loss") for line in lines]
  maes = [_printed(line, "mean_absolute_error") for line in lines]
  assert losses[1] < losses[0] and maes[1] < maes[0], (losses, maes)
  assert "mean_absolute_error" in namespace["metrics"]["client_work"]["train"]


# ----------------------------- seed 002: "Building your own FL algorithm" (FC)

SEED_002 = '''
# import nest_asyncio  # port: Colab's event-loop patch; not installed, not needed
# nest_asyncio.apply()  # port: Colab's event-loop patch; not installed, not needed
import numpy as np  # spelling: tf.float32 -> np.float32
import fedjit as tff  # spelling: import tensorflow_federated as tff -> import fedjit as tff
import keras  # spelling: import tensorflow as tf -> import keras (after fedjit)
import jax.numpy as jnp  # spelling: tf.reshape, tf.add -> jnp.reshape, jnp.add
import jax  # port: GradientTape -> jax.grad + optax inside reduce
import optax  # port: GradientTape -> jax.grad + optax inside reduce
from fedjit.learning import ModelWeights  # port: GradientTape -> jax.grad + optax inside reduce

emnist_train, emnist_test = emnist_like(10, 40, seed=0), emnist_like(10, 40, seed=1)  # data: emnist.load_data() -> 10 local clients of 40 examples each

NUM_CLIENTS = 10
BATCH_SIZE = 20

def preprocess(dataset):

  def batch_format_fn(element):
    """Flatten a batch of EMNIST data and return a (features, label) tuple."""
    return (jnp.reshape(element['pixels'], [-1, 784]),  # spelling: tf.reshape -> jnp.reshape
            jnp.reshape(element['label'], [-1, 1]))  # spelling: tf.reshape -> jnp.reshape

  return dataset.batch(BATCH_SIZE).map(batch_format_fn)

client_ids = sorted(emnist_train.client_ids)[:NUM_CLIENTS]
federated_train_data = [preprocess(emnist_train.create_tf_dataset_for_client(x))
  for x in client_ids
]

def create_keras_model():
  initializer = keras.initializers.GlorotNormal(seed=0)  # spelling: tf.keras -> keras
  return keras.models.Sequential([  # spelling: tf.keras -> keras
      keras.layers.Input(shape=(784,)),  # spelling: tf.keras -> keras
      keras.layers.Dense(10, kernel_initializer=initializer),  # spelling: tf.keras -> keras
      keras.layers.Softmax(),  # spelling: tf.keras -> keras
  ])

def model_fn():
  keras_model = create_keras_model()
  return tff.learning.from_keras_model(
      keras_model,
      input_spec=federated_train_data[0].element_spec,
      loss=keras.losses.SparseCategoricalCrossentropy(),  # spelling: tf.keras -> keras
      metrics=[keras.metrics.SparseCategoricalAccuracy()])  # spelling: tf.keras -> keras

def initialize_fn():
  model = model_fn()
  return model.trainable_variables

def next_fn(server_weights, federated_dataset):
  # Broadcast the server weights to the clients.
  server_weights_at_client = broadcast(server_weights)

  # Each client computes their updated weights.
  client_weights = client_update(federated_dataset, server_weights_at_client)

  # The server averages these updates.
  mean_client_weights = mean(client_weights)

  # The server updates its model.
  server_weights = server_update(mean_client_weights)

  return server_weights

def client_update(model, dataset, server_weights, client_optimizer):  # spelling: @tf.function -> (none: traced by jax_computation)
  """Performs training (using the server model weights) on the client's dataset."""
  # Initialize the client model with the current server weights.
  client_weights = server_weights  # port: GradientTape -> jax.grad + optax inside reduce (no variables to assign)

  # Use the client_optimizer to update the local model.
  def step(state, batch):  # port: GradientTape -> jax.grad + optax inside reduce
    weights, opt_state = state  # port: GradientTape -> jax.grad + optax inside reduce
    # Compute a forward pass on the batch of data, and the corresponding gradient
    grads = jax.grad(lambda w: model.forward_pass(ModelWeights(w, []), batch).loss)(weights)  # port: GradientTape -> jax.grad + optax inside reduce
    # Apply the gradient using a client optimizer.
    updates, opt_state = client_optimizer.update(grads, opt_state, weights)  # port: GradientTape -> jax.grad + optax inside reduce
    return optax.apply_updates(weights, updates), opt_state  # port: GradientTape -> jax.grad + optax inside reduce
  client_weights, _ = dataset.reduce(  # port: GradientTape -> jax.grad + optax inside reduce
      (client_weights, client_optimizer.init(client_weights)), step)  # port: GradientTape -> jax.grad + optax inside reduce

  return client_weights

def server_update(model, mean_client_weights):  # spelling: @tf.function -> (none: traced by jax_computation)
  """Updates the server model weights as the average of the client model weights."""
  model_weights = model.trainable_variables
  # Assign the mean client weights to the server model.
  model_weights = jax.tree_util.tree_map(lambda x, y: y,  # spelling: tf.nest.map_structure(lambda x, y: x.assign(y)) -> jax.tree_util.tree_map(lambda x, y: y)
                                         model_weights, mean_client_weights)
  return model_weights

federated_float_on_clients = tff.FederatedType(np.float32, tff.CLIENTS)  # spelling: tf.float32 -> np.float32

print(str(federated_float_on_clients))  # notebook: displayed value -> print

@tff.federated_computation(tff.FederatedType(np.float32, tff.CLIENTS))  # spelling: tf.float32 -> np.float32
def get_average_temperature(client_temperatures):
  return tff.federated_mean(client_temperatures)

print(str(get_average_temperature.type_signature))  # notebook: displayed value -> print

print(get_average_temperature([68.5, 70.3, 69.8]))  # notebook: displayed value -> print

@tff.jax_computation(np.float32)  # spelling: tff.tf_computation(tf.float32) -> tff.jax_computation(np.float32)
def add_half(x):
  return jnp.add(x, 0.5)  # spelling: tf.add -> jnp.add

print(str(add_half.type_signature))  # notebook: displayed value -> print

@tff.federated_computation(tff.FederatedType(np.float32, tff.CLIENTS))  # spelling: tf.float32 -> np.float32
def add_half_on_clients(x):
  return tff.federated_map(add_half, x)

print(str(add_half_on_clients.type_signature))  # notebook: displayed value -> print

@tff.jax_computation  # spelling: tff.tf_computation -> tff.jax_computation
def server_init():
  model = model_fn()
  return model.trainable_variables

@tff.federated_computation
def initialize_fn():
  return tff.federated_value(server_init(), tff.SERVER)

whimsy_model = model_fn()
tf_dataset_type = tff.SequenceType(whimsy_model.input_spec)

print(str(tf_dataset_type))  # notebook: displayed value -> print

model_weights_type = server_init.type_signature.result

print(str(model_weights_type))  # notebook: displayed value -> print

@tff.jax_computation(tf_dataset_type, model_weights_type)  # spelling: tff.tf_computation -> tff.jax_computation
def client_update_fn(tf_dataset, server_weights):
  model = model_fn()
  client_optimizer = optax.sgd(learning_rate=0.01)  # port: tf.keras.optimizers.SGD(learning_rate=0.01) -> optax.sgd(learning_rate=0.01), for the optax update in client_update
  return client_update(model, tf_dataset, server_weights, client_optimizer)

@tff.jax_computation(model_weights_type)  # spelling: tff.tf_computation -> tff.jax_computation
def server_update_fn(mean_client_weights):
  model = model_fn()
  return server_update(model, mean_client_weights)

federated_server_type = tff.FederatedType(model_weights_type, tff.SERVER)
federated_dataset_type = tff.FederatedType(tf_dataset_type, tff.CLIENTS)

@tff.federated_computation(federated_server_type, federated_dataset_type)
def next_fn(server_weights, federated_dataset):
  # Broadcast the server weights to the clients.
  server_weights_at_client = tff.federated_broadcast(server_weights)

  # Each client computes their updated weights.
  client_weights = tff.federated_map(
      client_update_fn, (federated_dataset, server_weights_at_client))

  # The server averages these updates.
  mean_client_weights = tff.federated_mean(client_weights)

  # The server updates its model.
  server_weights = tff.federated_map(server_update_fn, mean_client_weights)

  return server_weights

federated_algorithm = tff.templates.IterativeProcess(
    initialize_fn=initialize_fn,
    next_fn=next_fn
)

print(str(federated_algorithm.initialize.type_signature))  # notebook: displayed value -> print

print(str(federated_algorithm.next.type_signature))  # notebook: displayed value -> print

central_emnist_test = emnist_test.create_tf_dataset_from_all_clients()
central_emnist_test = preprocess(central_emnist_test)

def evaluate(server_state):
  keras_model = create_keras_model()
  keras_model.compile(
      loss=keras.losses.SparseCategoricalCrossentropy(),  # spelling: tf.keras -> keras
      metrics=[keras.metrics.SparseCategoricalAccuracy()]  # spelling: tf.keras -> keras
  )
  keras_model.set_weights(server_state)
  keras_model.evaluate(central_emnist_test.as_keras_dataset())  # spelling: Dataset -> Dataset.as_keras_dataset() for Keras 3

server_state = federated_algorithm.initialize()
evaluate(server_state)

for round in range(15):
  server_state = federated_algorithm.next(server_state, federated_train_data)
evaluate(server_state)
'''

SEED_002_TYPES = [
    "{float32}@CLIENTS",
    "({float32}@CLIENTS -> float32@SERVER)",
    "(float32 -> float32)",
    "({float32}@CLIENTS -> {float32}@CLIENTS)",
    "<float32[?,784],int32[?,1]>*",
    "<float32[784,10],float32[10]>",
    "( -> <float32[784,10],float32[10]>@SERVER)",
    "(<server_weights=<float32[784,10],float32[10]>@SERVER,federated_dataset="
    "{<float32[?,784],int32[?,1]>*}@CLIENTS> -> <float32[784,10],float32[10]>@SERVER)",
]


def _check_seed_002_output(lines):
  printed = [line for line in lines if line.strip()]
  assert printed[:2] + printed[3:9] == SEED_002_TYPES, printed[:9]
  assert float(printed[2]) == pytest.approx(69.53334, rel=1e-6)
  # Keras's `evaluate` before the 15 rounds, and after them.
  losses = [float(m[1]) for m in re.findall(r"(?<!\d)(\d+)/\1(?!\d)[^\n]*?loss: ([0-9.]+)",
                                            "\n".join(printed[9:]))]
  assert len(losses) == 2, printed[9:]
  assert losses[1] < losses[0], losses


# The seed as written calls `model_fn()` inside its `jax_computation`s, so
# Keras creates the model's and its metrics' variables while JAX traces the
# computation: their values stay traced (the test failed before that, with
# jax.errors.TracerArrayConversionError from the metrics' initial state).
def test_seed_002_runs_as_written_prints_the_seeds_types_and_learns(capsys):
  _, lines = _exec_seed(SEED_002, "seed_002", capsys, emnist_like=emnist_like)
  _check_seed_002_output(lines)


# ------------------------------------------------------- seed 001: three-client CNN

def cifar10_like_load_data(num_train, num_test):
  """A stand-in for `keras.datasets.cifar10.load_data()` in its format
  (uint8 images [n, 32, 32, 3], int labels [n, 1]) from examples/
  cnn_three_clients.py's learnable CIFAR-10-shaped data."""
  example = load_example("cnn_three_clients")
  def split(n, seed):
    x, y = example.make_cifar10_like(n, seed=seed)
    return (np.round(x * 255).astype(np.uint8),
            np.argmax(y, axis=1).astype(np.uint8).reshape(-1, 1))
  return split(num_train, 0), split(num_test, 1)


SEED_001 = '''
import keras  # spelling: import tensorflow as tf -> import keras
from keras import layers, models  # spelling: tensorflow.keras -> keras
import numpy as np
import warnings
warnings.filterwarnings('ignore')
# Load CIFAR-10 dataset
(x_train, y_train), (x_test, y_test) = cifar10_like_load_data(288, 200)  # data: cifar10.load_data() -> local CIFAR-10-shaped uint8 images; speed: 288 train, 200 test examples
# Normalize images to the range [0, 1]
x_train = x_train.astype('float32') / 255.0
x_test = x_test.astype('float32') / 255.0
# One-hot encode labels
y_train = keras.utils.to_categorical(y_train, 10)  # spelling: tf.keras -> keras
y_test = keras.utils.to_categorical(y_test, 10)  # spelling: tf.keras -> keras
print(f"Train shape: {x_train.shape}, {y_train.shape}")
print(f"Test shape: {x_test.shape}, {y_test.shape}")
def split_data(x, y, num_clients):
    client_data = []
    shard_size = len(x) // num_clients
    for i in range(num_clients):
        start = i * shard_size
        end = start + shard_size
        client_data.append((x[start:end], y[start:end]))
    return client_data
# Split data for 3 clients
num_clients = 3
client_data = split_data(x_train, y_train, num_clients)
def create_model():
    model = models.Sequential([
        layers.Conv2D(32, (3, 3), activation='relu', input_shape=(32, 32, 3)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation='relu'),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(64, activation='relu'),
        layers.Dense(10, activation='softmax')
    ])
    model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
    return model
global_model = create_model()  # fix: the seed never creates global_model
# Number of rounds for federated learning
num_rounds = 2  # speed: 10 -> 2 rounds
for round_num in range(num_rounds):
    print(f"Round {round_num + 1}/{num_rounds}")
    local_weights = []
    # Train on each client
    for client_id in range(num_clients):
        print(f"Training on client {client_id + 1}")
        # Create local model and set global weights
        local_model = create_model()
        local_model.set_weights(global_model.get_weights())
        # Get client data
        X, y = client_data[client_id]
        # Train local model
        local_model.fit(X, y, epochs=1, batch_size=32, verbose=0)
        # Collect local model weights
        local_weights.append(local_model.get_weights())
    # Federated averaging: Aggregate local weights
    averaged_weights = [np.mean([local_weights[j][i] for j in range(num_clients)], axis=0)
                        for i in range(len(local_weights[0]))]
    # Update global model weights
    global_model.set_weights(averaged_weights)
    # Evaluate the global model
    loss, accuracy = global_model.evaluate(x_test, y_test, verbose=0)
    print(f"Global model accuracy after round {round_num + 1}: {accuracy:.4f}")
'''


def test_seed_001_runs_as_written_in_keras_and_prints_the_seeds_lines(capsys):
  namespace, lines = _exec_seed(SEED_001, "seed_001", capsys,
                                cifar10_like_load_data=cifar10_like_load_data)
  assert lines[:2] == ["Train shape: (288, 32, 32, 3), (288, 10)",
                       "Test shape: (200, 32, 32, 3), (200, 10)"]
  accuracies = []
  body = lines[2:]
  assert len(body) == 2 * 5, body
  for k in range(1, 3):
    block = body[5 * (k - 1):5 * k]
    assert block[:4] == [f"Round {k}/2"] + [f"Training on client {i}" for i in (1, 2, 3)]
    m = re.fullmatch(rf"Global model accuracy after round {k}: (0\.\d{{4}}|1\.0000)", block[4])
    assert m, block[4]
    accuracies.append(float(m.group(1)))
  _, accuracy = namespace["global_model"].evaluate(
      namespace["x_test"], namespace["y_test"], verbose=0)
  assert f"{accuracy:.4f}" == f"{accuracies[-1]:.4f}"
  assert accuracies[-1] > 0.1, accuracies  # better than chance (0.1)

"""Tracing, composition, calling from Python, and misuse errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fedjit
from fedjit import (CLIENTS, SERVER, FederatedType, SequenceType, StructType,
                    TensorType)

F32_CLIENTS = FederatedType(np.float32, CLIENTS)
F32_SERVER = FederatedType(np.float32, SERVER)


@fedjit.jax_computation(np.float32)
def add_half(x):
  return x + 0.5


def test_seed_temperature_example(any_backend):
  @fedjit.federated_computation(F32_CLIENTS)
  def get_average_temperature(client_temperatures):
    return fedjit.federated_mean(client_temperatures)

  assert str(get_average_temperature.type_signature) == "({float32}@CLIENTS -> float32@SERVER)"
  result = get_average_temperature([68.5, 70.3, 69.8])
  assert isinstance(result, np.float32)
  # Independent: the mean in float64, compared at float32 precision.
  np.testing.assert_allclose(result, np.mean([68.5, 70.3, 69.8]), rtol=1e-6)


def test_seed_temperature_prints_as_in_tff():
  @fedjit.federated_computation(F32_CLIENTS)
  def get_average_temperature(client_temperatures):
    return fedjit.federated_mean(client_temperatures)
  assert str(get_average_temperature([68.5, 70.3, 69.8])) == "69.53334"


def test_add_half_signatures_and_results(any_backend):
  assert str(add_half.type_signature) == "(float32 -> float32)"

  @fedjit.federated_computation(F32_CLIENTS)
  def add_half_on_clients(x):
    return fedjit.federated_map(add_half, x)

  assert str(add_half_on_clients.type_signature) == "({float32}@CLIENTS -> {float32}@CLIENTS)"
  out = add_half_on_clients([1.0, 2.0, 3.0])
  assert isinstance(out, list)
  np.testing.assert_allclose(out, [1.5, 2.5, 3.5])
  # The leading-client-axis form is accepted too.
  np.testing.assert_allclose(add_half_on_clients(np.array([1.0, 2.0], np.float32)), [1.5, 2.5])
  assert add_half(2.0) == np.float32(2.5)


def test_jax_computation_without_arguments_infers_its_result_type():
  @fedjit.jax_computation
  def server_init():
    return [jnp.zeros((784, 10)), jnp.zeros((10,))]

  assert str(server_init.type_signature.result) == "<float32[784,10],float32[10]>"
  assert str(server_init.type_signature) == "( -> <float32[784,10],float32[10]>)"

  @fedjit.federated_computation
  def initialize_fn():
    return fedjit.federated_value(server_init(), SERVER)

  assert str(initialize_fn.type_signature) == "( -> <float32[784,10],float32[10]>@SERVER)"
  w, b = initialize_fn()
  assert w.shape == (784, 10) and b.shape == (10,)


def test_multiple_parameters_are_named():
  @fedjit.jax_computation(np.float32, TensorType(np.int32, [None]))
  def f(scale, values):
    return scale * values.astype(jnp.float32)
  assert str(f.type_signature) == "(<scale=float32,values=int32[?]> -> float32[?])"
  np.testing.assert_allclose(f(2.0, np.array([1, 2, 3], np.int32)), [2.0, 4.0, 6.0])


def test_federated_computations_compose(any_backend):
  @fedjit.federated_computation(F32_CLIENTS)
  def shift(x):
    return fedjit.federated_map(add_half, x)

  @fedjit.federated_computation(F32_CLIENTS)
  def shifted_mean(x):
    return fedjit.federated_mean(shift(x))

  assert str(shifted_mean.type_signature) == "({float32}@CLIENTS -> float32@SERVER)"
  np.testing.assert_allclose(shifted_mean([1.0, 2.0, 6.0]), 3.5, rtol=1e-6)


def test_jax_computations_call_each_other():
  @fedjit.jax_computation(np.float32)
  def twice_add_half(x):
    return add_half(add_half(x))

  @fedjit.federated_computation(F32_SERVER)
  def on_server(x):
    return fedjit.federated_map(twice_add_half, x)

  assert on_server(1.0) == np.float32(2.0)


def test_plain_python_function_in_federated_map_is_typed_from_its_argument():
  @fedjit.federated_computation(F32_CLIENTS)
  def squares(x):
    return fedjit.federated_map(lambda v: v * v, x)
  assert str(squares.type_signature) == "({float32}@CLIENTS -> {float32}@CLIENTS)"
  np.testing.assert_allclose(squares([2.0, 3.0]), [4.0, 9.0])


def test_traced_once_not_rerun_per_call():
  calls = []

  @fedjit.federated_computation(F32_CLIENTS)
  def counted(x):
    calls.append(1)
    return fedjit.federated_sum(x)

  for _ in range(3):
    counted([1.0, 2.0])
  assert len(calls) == 1


def test_vectorized_compiles_once_per_shape():
  traces = []

  @fedjit.jax_computation(np.float32)
  def traced(x):
    traces.append(1)
    return x * 2.0

  @fedjit.federated_computation(F32_CLIENTS)
  def doubled(x):
    return fedjit.federated_sum(fedjit.federated_map(traced, x))

  with fedjit.backend("vectorized"):
    doubled([1.0, 2.0])
    after_first = len(traces)
    assert after_first > 0
    for values in ([3.0, 4.0], [5.0, 6.0]):
      doubled(values)
    assert len(traces) == after_first      # same shape: no retrace
    doubled([1.0, 2.0, 3.0])
    assert len(traces) > after_first       # a new number of clients: traced again


# ------------------------------------------------------------------ misuse


def test_server_value_to_federated_mean_fails_while_tracing():
  with pytest.raises(fedjit.PlacementError) as e:
    @fedjit.federated_computation(F32_SERVER)
    def bad(x):
      return fedjit.federated_mean(x)
  message = str(e.value)
  assert "{T}@CLIENTS" in message and "float32@SERVER" in message
  assert isinstance(e.value, TypeError)


def test_clients_value_to_jax_computation_says_use_federated_map():
  with pytest.raises(fedjit.PlacementError) as e:
    @fedjit.federated_computation(F32_CLIENTS)
    def bad(x):
      return add_half(x)
  message = str(e.value)
  assert "expects an argument of the unplaced type float32" in message  # expected
  assert "but was given {float32}@CLIENTS" in message                   # given
  assert "federated_map(add_half, value)" in message                    # what to do


def test_clients_value_to_jax_computation_with_two_parameters_names_the_parameter():
  @fedjit.jax_computation(np.float32, TensorType(np.float32, [2]))
  def scale(a, v):
    return a * v

  with pytest.raises(fedjit.PlacementError) as e:
    @fedjit.federated_computation(F32_SERVER, FederatedType(TensorType(np.float32, [2]),
                                                            CLIENTS))
    def bad(a, v):
      return scale(a, v)
  message = str(e.value)
  assert "its argument 'a' of the unplaced type float32" in message
  assert "but was given float32@SERVER" in message
  assert "federated_map(scale, value)" in message


def test_clients_value_to_polymorphic_jax_computation_names_the_member_type():
  @fedjit.jax_computation
  def double(x):
    return 2 * x

  with pytest.raises(fedjit.PlacementError) as e:
    @fedjit.federated_computation(F32_CLIENTS)
    def bad(x):
      return double(x)
  message = str(e.value)
  assert "an unplaced value (such as float32)" in message
  assert "but was given {float32}@CLIENTS" in message
  assert "federated_map(double, value)" in message


@pytest.mark.parametrize("attribute", ["shape", "dtype", "sum"])
def test_attribute_of_a_placed_value_says_move_it_into_jax_computation(attribute):
  with pytest.raises(fedjit.FederatedOperationError) as e:
    fedjit.federated_computation(F32_SERVER)(lambda x: getattr(x, attribute))
  message = str(e.value)
  assert f"`.{attribute}`" in message and "float32@SERVER" in message
  assert "Move the JAX/NumPy code into a @fedjit.jax_computation" in message
  assert isinstance(e.value, TypeError)


def test_struct_fields_and_type_of_a_placed_value_still_work(any_backend):
  pair = FederatedType(StructType([("w", np.float32), ("n", np.int32)]), SERVER)

  @fedjit.federated_computation(pair)
  def fields(p):
    assert str(p.type_signature) == "<w=float32,n=int32>@SERVER"
    assert not hasattr(p, "shape")  # hasattr() works: the error is an AttributeError too
    return p.w, p["n"]

  w, n = fields({"w": np.float32(1.5), "n": np.int32(4)})
  assert float(w) == 1.5 and int(n) == 4
  with pytest.raises(fedjit.FederatedOperationError, match=r"its fields are \['w', 'n'\]"):
    fedjit.federated_computation(pair)(lambda p: p.weights)


@pytest.mark.parametrize("operation, named", [
    (lambda x: jnp.add(x, 1.0), "JAX/NumPy"),
    (lambda x: jnp.mean(x), "JAX/NumPy"),
    (lambda x: jax.nn.relu(x), "JAX/NumPy"),
    (lambda x: np.mean(x), "numpy.mean"),
    (lambda x: np.sqrt(x), "numpy.sqrt"),
    (lambda x: x * 2.0, "`*`"),
    (lambda x: -x, "`-`"),
])
def test_jax_or_numpy_on_federated_value_says_move_it_into_jax_computation(operation, named):
  with pytest.raises(fedjit.FederatedOperationError) as e:
    fedjit.federated_computation(F32_CLIENTS)(operation)
  message = str(e.value)
  assert named in message
  assert "{float32}@CLIENTS" in message
  assert "jax_computation" in message and "federated_map" in message
  assert isinstance(e.value, TypeError)


def test_python_control_flow_on_federated_value_fails():
  def bad(x):
    if x:
      return x
    return x
  with pytest.raises(fedjit.FederatedOperationError, match="control flow"):
    fedjit.federated_computation(F32_CLIENTS)(bad)


def test_argument_types_must_match_declared_signature_when_traced():
  @fedjit.federated_computation(F32_CLIENTS)
  def inner(x):
    return fedjit.federated_sum(x)

  with pytest.raises(fedjit.FederatedTypeError) as e:
    @fedjit.federated_computation(FederatedType(np.int32, CLIENTS))
    def outer(x):
      return inner(x)
  assert "{float32}@CLIENTS" in str(e.value) and "{int32}@CLIENTS" in str(e.value)

  with pytest.raises(fedjit.PlacementError) as e:
    @fedjit.federated_computation(F32_SERVER)
    def outer2(x):
      return inner(x)
  assert "{float32}@CLIENTS" in str(e.value) and "float32@SERVER" in str(e.value)

  with pytest.raises(fedjit.FederatedTypeError) as e:
    @fedjit.federated_computation(FederatedType(TensorType(np.float32, [2]), CLIENTS))
    def outer3(x):
      return fedjit.federated_map(add_half, x)
  assert "float32[2]" in str(e.value) and "expects an argument of type float32" in str(e.value)


def test_argument_types_must_match_declared_signature_when_called():
  @fedjit.federated_computation(FederatedType(TensorType(np.float32, [2]), CLIENTS))
  def total(x):
    return fedjit.federated_sum(x)

  with pytest.raises(fedjit.FederatedTypeError) as e:
    total([np.zeros(3, np.float32)])
  assert "float32[2]" in str(e.value) and "float32[3]" in str(e.value)
  assert "client 0" in str(e.value)
  with pytest.raises(fedjit.FederatedTypeError, match="cannot be safely cast"):
    total([np.zeros(2, np.complex64)])
  with pytest.raises(TypeError, match="takes 1 argument"):
    total()
  with pytest.raises(fedjit.FederatedTypeError, match="one .* per client"):
    total("nonsense")


def test_mismatched_number_of_clients_fails():
  @fedjit.federated_computation(F32_CLIENTS, F32_CLIENTS)
  def pair(a, b):
    return fedjit.federated_sum(a), fedjit.federated_sum(b)
  with pytest.raises(fedjit.FederatedTypeError, match="different numbers of clients"):
    pair([1.0, 2.0], [1.0])


def test_federated_computation_without_types_is_polymorphic():
  traces = []

  @fedjit.federated_computation
  def untyped(x):
    traces.append(x.type)
    return x

  with pytest.raises(TypeError, match="declared without parameter types"):
    untyped.type_signature
  assert untyped(np.float32(1.5)) == np.float32(1.5)
  assert untyped(np.float32(2.5)) == np.float32(2.5)  # same type: not traced again
  assert untyped(np.int32(3)) == 3
  assert [str(t) for t in traces] == ["float32", "int32"]
  assert str(untyped.fn_for_argument_type(np.int32).type_signature) == "(int32 -> int32)"

  @fedjit.federated_computation(F32_CLIENTS)
  def outer(v):
    return untyped(v)  # traced with the placed type of the value
  assert str(outer.type_signature) == "({float32}@CLIENTS -> {float32}@CLIENTS)"


def test_intrinsics_outside_federated_computation_fail_clearly():
  with pytest.raises(RuntimeError, match="inside a @fedjit.federated_computation"):
    fedjit.federated_mean([1.0])


def test_iterating_a_sequence_in_python_is_rejected_with_guidance():
  with pytest.raises(TypeError, match="reduce"):
    @fedjit.jax_computation(SequenceType(TensorType(np.float32, [None])))
    def bad(ds):
      total = 0.0
      for batch in ds:
        total += batch.sum()
      return total


def test_backend_context_manager_is_visible_and_restores():
  default = fedjit.get_backend()
  assert default.name == "vectorized"
  with fedjit.backend("reference") as b:
    assert fedjit.get_backend() is b and b.name == "reference"
  assert fedjit.get_backend() is default
  with pytest.raises(ValueError, match="Unknown backend"):
    with fedjit.backend("gpu-magic"):
      pass
  with pytest.raises(ValueError, match="client_map"):
    fedjit.VectorizedBackend(client_map="sideways")


def test_ordinary_mistakes_in_traced_function_keep_their_own_message():
  with pytest.raises(TypeError, match="missing 1 required positional argument") as e:
    @fedjit.federated_computation(F32_CLIENTS)
    def forgot_argument(x):
      return fedjit.federated_map(x)
  assert not isinstance(e.value, fedjit.FederatedOperationError)


def test_client_values_of_different_shapes_on_vectorized_say_what_to_do():
  @fedjit.federated_computation(FederatedType(TensorType(np.float32, [None]), CLIENTS))
  def total(x):
    return fedjit.federated_sum(fedjit.federated_map(lambda v: jnp.sum(v), x))

  data = [np.ones(2, np.float32), np.ones(2, np.float32), np.ones(3, np.float32)]
  with fedjit.backend("reference"):
    np.testing.assert_allclose(total(data), 7.0)  # 2 + 2 + 3
  with fedjit.backend("vectorized"):
    with pytest.raises(fedjit.FederatedTypeError) as e:
      total(data)
  message = str(e.value)
  assert "{float32[?]}@CLIENTS" in message
  assert "client 0 has shape [2] and client 2 has shape [3]" in message
  assert "SequenceType" in message and "fedjit.backend('reference')" in message


def test_client_structures_of_different_shapes_name_the_part():
  member = StructType([TensorType(np.float32, [2]), TensorType(np.float32, [None])])

  @fedjit.federated_computation(FederatedType(member, CLIENTS))
  def first(x):
    return fedjit.federated_sum(fedjit.federated_map(lambda a, b: a, x))

  with fedjit.backend("vectorized"):
    with pytest.raises(fedjit.FederatedTypeError) as e:
      first([(np.ones(2, np.float32), np.ones(1, np.float32)),
             (np.ones(2, np.float32), np.ones(4, np.float32))])
  assert "client 0 has shape [1] and client 1 has shape [4] (its float32[?] part)" in str(
      e.value)


# ------------------------------------------------------------ 64-bit types


@pytest.mark.parametrize("declared", [
    FederatedType(np.int64, CLIENTS),
    FederatedType(SequenceType(TensorType(np.float64, [None, 2])), CLIENTS),
    FederatedType(StructType([np.float32, np.int64]), SERVER),
])
def test_64_bit_types_without_x64_mode_fail_with_guidance(declared):
  assert not jax.config.jax_enable_x64
  with pytest.raises(fedjit.FederatedTypeError) as e:
    @fedjit.federated_computation(declared)
    def total(x):
      return x
  message = str(e.value)
  assert str(declared) in message and "64-bit" in message
  assert "jax.config.update('jax_enable_x64', True)" in message
  assert "JAX_ENABLE_X64=1" in message and "np.int32" in message
  with pytest.raises(fedjit.FederatedTypeError, match="jax_enable_x64"):
    @fedjit.jax_computation(np.float64)
    def double(x):
      return 2 * x


def test_python_and_float64_values_still_fit_32_bit_types(any_backend):
  @fedjit.federated_computation(F32_CLIENTS, F32_SERVER)
  def shifted_mean(x, s):
    return fedjit.federated_mean(x), s

  mean, s = shifted_mean(np.array([1.0, 2.0, 4.5]), 3)  # float64 array, Python int
  assert isinstance(mean, np.float32) and isinstance(s, np.float32)
  np.testing.assert_allclose(mean, 2.5)
  assert s == 3.0

  @fedjit.jax_computation
  def double(x):
    return 2 * x
  assert np.asarray(double(np.array([1.5, 2.5]))).dtype == np.float32  # inferred: 32-bit


_X64_PROGRAM = """
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np, fedjit
from fedjit import CLIENTS, FederatedType

@fedjit.federated_computation(FederatedType(np.int64, CLIENTS))
def total(x):
  return fedjit.federated_sum(x)

@fedjit.federated_computation(FederatedType(np.float64, CLIENTS),
                              FederatedType(np.float64, CLIENTS))
def means(x, w):
  scaled = fedjit.federated_map(lambda v: v * 3.0, x)
  return fedjit.federated_mean(x, w), fedjit.federated_mean(scaled, w)

for name in ("reference", "vectorized"):
  with fedjit.backend(name):
    t = total([2 ** 40, 1])
    m, s = means([1.0, 1e-9], [1.0, 3.0])
    print(name, repr(int(t)), np.asarray(t).dtype, repr(float(m)), repr(float(s)),
          np.asarray(m).dtype)
"""


def test_64_bit_types_are_exact_in_x64_mode(tmp_path):
  import subprocess
  import sys
  script = tmp_path / "x64.py"
  script.write_text(_X64_PROGRAM)
  out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr
  lines = out.stdout.strip().split("\n")
  assert len(lines) == 2, out.stdout
  for name, line in zip(("reference", "vectorized"), lines):
    fields = line.split()
    assert fields[0] == name
    assert int(fields[1]) == 2 ** 40 + 1 and fields[2] == "int64"
    # (1 + 3e-9) / 4 and three times that: beyond float32's precision.
    np.testing.assert_allclose(float(fields[3]), (1.0 + 3e-9) / 4.0, rtol=1e-14)
    np.testing.assert_allclose(float(fields[4]), 3.0 * (1.0 + 3e-9) / 4.0, rtol=1e-14)
    assert fields[5] == "float64"


# ---------------------------------------------------- function-typed parameters

_SCALE = fedjit.FunctionType(np.float32, np.float32)


@fedjit.federated_computation(_SCALE, F32_CLIENTS)
def _map_then_sum(f, x):
  return fedjit.federated_sum(fedjit.federated_map(f, x))


@fedjit.jax_computation(np.float32)
def _triple(x):
  return 3.0 * x


def test_function_parameter_applied_with_federated_map(any_backend):
  assert str(_map_then_sum.type_signature) == (
      "(<f=(float32 -> float32),x={float32}@CLIENTS> -> float32@SERVER)")
  # 3 * (1 + 2 + 4) and 0.5 more per client for add_half.
  np.testing.assert_allclose(_map_then_sum(_triple, [1.0, 2.0, 4.0]), 21.0)
  np.testing.assert_allclose(_map_then_sum(add_half, [1.0, 2.0, 4.0]), 8.5)
  np.testing.assert_allclose(_map_then_sum(lambda v: v * v, [1.0, 2.0, 4.0]), 21.0)


def test_function_parameter_compiles_once_per_function():
  @fedjit.federated_computation(_SCALE, F32_CLIENTS)
  def map_then_mean(f, x):
    return fedjit.federated_mean(fedjit.federated_map(f, x))

  with fedjit.backend("vectorized") as b:
    for data in ([1.0, 2.0], [3.0, 5.0]):
      map_then_mean(_triple, data)
    assert b.compilations(map_then_mean._bound({0: _triple})) == 1


def test_function_parameter_passed_on_through_nested_computations(any_backend):
  @fedjit.federated_computation(_SCALE, F32_CLIENTS)
  def outer(g, x):
    return _map_then_sum(g, fedjit.federated_map(g, x))

  @fedjit.federated_computation(F32_CLIENTS)
  def with_triple(x):
    return outer(_triple, x)

  np.testing.assert_allclose(outer(_triple, [1.0, 2.0]), 27.0)   # 9 * (1 + 2)
  np.testing.assert_allclose(with_triple([1.0, 2.0]), 27.0)


def test_function_parameter_misuse_says_what_was_expected():
  with pytest.raises(fedjit.FederatedTypeError, match=r"expects a function of type \(float32 -> float32\)"):
    _map_then_sum(fedjit.jax_computation(np.int32)(lambda v: v), [1.0])
  with pytest.raises(fedjit.FederatedTypeError, match="not the federated computation"):
    _map_then_sum(_map_then_sum, [1.0])
  with pytest.raises(fedjit.FederatedOperationError, match="can only be called or passed"):
    fedjit.federated_computation(_SCALE)(lambda f: f)
  with pytest.raises(fedjit.FederatedTypeError, match="must be unplaced"):
    fedjit.federated_computation(fedjit.FunctionType(F32_CLIENTS, F32_SERVER))(lambda f: 1)


def test_returning_none_is_a_value_error():
  with pytest.raises(ValueError, match="returned None"):
    fedjit.federated_computation(F32_CLIENTS)(lambda x: None)


_INT_SEQ_CLIENTS = FederatedType(SequenceType(np.int32), CLIENTS)


@fedjit.federated_computation(fedjit.FunctionType([np.float32, np.int32], np.float32),
                              fedjit.FunctionType(np.int32, np.int32), _INT_SEQ_CLIENTS)
def _sequence_ops_with_function_parameters(op, f, data):
  mapped = fedjit.sequence_map(f, data)
  zero = fedjit.federated_value(np.float32(0.5), CLIENTS)
  return fedjit.sequence_reduce(mapped, zero, op), fedjit.sequence_sum(mapped)


def test_function_parameters_in_sequence_intrinsics(any_backend):
  data = [[1, 2, 3], [], [4]]
  weighted, total = _sequence_ops_with_function_parameters(
      lambda acc, x: acc + 2.0 * x.astype(jnp.float32), lambda x: x * 10, data)
  # By hand: 0.5 + 2 * (10 + 20 + 30) = 120.5; 0.5; 0.5 + 2 * 40 = 80.5.
  np.testing.assert_allclose(weighted, [120.5, 0.5, 80.5])
  assert [int(t) for t in total] == [60, 0, 40]
  with pytest.raises(fedjit.FederatedTypeError, match="expects a function of type"):
    _sequence_ops_with_function_parameters(lambda a, x: a, lambda x: x * 1.5, data)


# Declaring and calling computations as in TFF (see also
# tests/compat/test_computation_wrapper.py and test_function_utils.py).

@pytest.mark.parametrize("decorator", [fedjit.jax_computation, fedjit.federated_computation])
def test_struct_parameter_calling_conventions(decorator):
  mul = fedjit.jax_computation(lambda a, b: a * b)

  @decorator([("a", np.int32), ("b", np.float32)])
  def f(a, b):
    return mul(a, b)

  assert str(f.type_signature.parameter) == "<a=int32,b=float32>"
  # 2 * 1.5 = 3, by hand, however the argument is given.
  for result in (f(2, 1.5), f((2, 1.5)), f(a=2, b=1.5), f(b=1.5, a=2), f(2, b=1.5),
                 f({"a": 2, "b": 1.5})):
    assert result == np.float32(3.0)
  with pytest.raises(TypeError, match="takes 2 argument.*given 3"):
    f(2, 1.5, 7)
  with pytest.raises(TypeError, match="missing the argument 'b'"):
    f(a=2)
  with pytest.raises(TypeError, match="twice"):
    f(2, a=2)
  with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['c'\]"):
    f(2, 1.5, c=1)
  with pytest.raises(TypeError, match="expects 2 arguments"):
    f(np.int32(2))


def test_separate_types_name_the_struct_after_the_parameters():
  @fedjit.jax_computation(np.int32, np.float32)
  def f(x, y):
    return x * y
  assert str(f.type_signature) == "(<x=int32,y=float32> -> float32)"
  assert f(y=0.5, x=4) == np.float32(2.0)


def test_one_parameter_function_gets_the_whole_struct():
  @fedjit.jax_computation([("a", np.int32), ("b", np.int32)])
  def f(pair):
    return pair.a - pair.b
  assert str(f.type_signature) == "(<a=int32,b=int32> -> int32)"
  assert f(5, 3) == 2 and f(b=3, a=5) == 2 and f((5, 3)) == 2


def test_declaration_errors_say_what_to_do():
  with pytest.raises(TypeError, match="element 1 'y' where the function's parameter is 'z'"):
    fedjit.jax_computation(lambda x, z: x, [("x", np.int32), ("y", np.int32)])
  with pytest.raises(TypeError, match="default value"):
    fedjit.federated_computation(np.int32)(lambda x=1: x)
  with pytest.raises(TypeError, match=r"\*args"):
    fedjit.jax_computation(np.int32)(lambda *args: args)
  with pytest.raises(TypeError, match=r"\*\*kw"):
    fedjit.jax_computation(lambda **kw: kw)
  with pytest.raises(TypeError, match="Cannot interpret 10"):
    fedjit.federated_computation(10)
  with pytest.raises(TypeError, match="decorates a Python function"):
    fedjit.jax_computation(np.int32)(99)


def test_one_parameter_called_by_name():
  assert add_half(x=1.0) == np.float32(1.5)


def test_partial_with_keyword_binds_the_remaining_parameters():
  import functools
  f = fedjit.jax_computation(functools.partial(lambda x, y: x + y, y=np.int32(1)), np.int32)
  assert str(f.type_signature) == "(int32 -> int32)"
  assert f(2) == 3  # 2 + 1, by hand

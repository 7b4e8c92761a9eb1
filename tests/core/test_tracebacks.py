"""Errors at the user's line: JAX's tracer errors keep their class with
fedjit's context added, and tracebacks of errors leaving fedjit's API show
the user's frames, not fedjit's (FEDJIT_TRACEBACK_FILTERING=off shows all)."""

import os
import subprocess
import sys
import textwrap
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fedjit

FEDJIT_DIR = os.path.dirname(os.path.abspath(fedjit.__file__))


def _frames(error):
  return [f.filename for f in traceback.extract_tb(error.__traceback__)]


def _text(error):
  return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def test_python_if_on_a_traced_value_keeps_jaxs_error_and_adds_context():
  with pytest.raises(jax.errors.TracerBoolConversionError) as info:
    @fedjit.jax_computation(np.float32)
    def absolute(x):
      if x > 0:
        return x
      return -x
  text = _text(info.value)
  assert "_error_repr" not in text
  assert "While tracing jax_computation 'absolute' with float32" in text
  assert "jnp.where" in text and "jax.lax.cond" in text


def test_float_of_a_traced_value_keeps_its_class():
  with pytest.raises(jax.errors.ConcretizationTypeError) as info:
    @fedjit.jax_computation(np.float32)
    def to_float(x):
      return jnp.float32(float(x) + 1.0)
  assert "to_float" in _text(info.value)


def test_an_ordinary_error_in_the_body_keeps_its_class_and_message():
  with pytest.raises(KeyError, match="missing") as info:
    @fedjit.jax_computation(np.float32)
    def lookup(x):
      return {"present": x}["missing"]
  assert "While tracing jax_computation 'lookup'" in _text(info.value)


def test_a_keras_model_built_inside_a_computation_returns_its_variables():
  """Seed 002's server_init: `return model.trainable_variables`."""
  keras = pytest.importorskip("keras")

  @fedjit.jax_computation
  def server_init():
    model = keras.models.Sequential([keras.layers.Input(shape=(784,)),
                                     keras.layers.Dense(10), keras.layers.Softmax()])
    return model.trainable_variables

  assert str(server_init.type_signature) == "( -> <float32[784,10],float32[10]>)"
  kernel, bias = server_init()
  assert kernel.shape == (784, 10) and np.all(bias == 0) and np.std(kernel) > 0.01


def test_type_errors_point_at_the_users_lines_not_fedjits():
  with pytest.raises(fedjit.PlacementError) as info:
    @fedjit.federated_computation(fedjit.FederatedType(np.float32, fedjit.SERVER))
    def mean_of_server_value(x):
      return fedjit.federated_mean(x)
  frames = _frames(info.value)
  assert frames and all(not f.startswith(FEDJIT_DIR) for f in frames), frames
  assert frames[-1] == __file__  # the federated_mean line in this test
  assert "FEDJIT_TRACEBACK_FILTERING=off" in _text(info.value)


def test_errors_from_calling_a_computation_point_at_the_call():
  @fedjit.federated_computation(fedjit.FederatedType(np.float32, fedjit.CLIENTS))
  def mean(x):
    return fedjit.federated_mean(x)

  with pytest.raises(fedjit.FederatedTypeError) as info:
    mean([[1.0, 2.0], [3.0]])
  frames = _frames(info.value)
  assert frames == [__file__], frames


def test_the_environment_variable_shows_every_frame():
  program = textwrap.dedent("""
      import traceback, numpy as np, fedjit
      try:
        @fedjit.federated_computation(fedjit.FederatedType(np.float32, fedjit.SERVER))
        def f(x):
          return fedjit.federated_mean(x)
      except fedjit.PlacementError as e:
        files = [f.filename for f in traceback.extract_tb(e.__traceback__)]
        print(sum('fedjit' in f and '<string>' not in f for f in files))
  """)
  counts = {}
  for value in ("on", "off"):
    env = dict(os.environ, FEDJIT_TRACEBACK_FILTERING=value, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    counts[value] = int(out.split()[-1])
  assert counts["on"] == 0 and counts["off"] >= 5, counts


def test_fedjit_error_classes_print_as_public_names():
  assert fedjit.PlacementError.__module__ == "fedjit"
  assert fedjit.FederatedTypeError.__module__ == "fedjit"

"""How a Python function's parameters meet a computation's declared types,
and how call arguments are packed into them (TFF's `function_utils`).

A fedjit computation has one parameter type (or none). A Python function
with several parameters gets one element of a struct parameter each; a
function with one parameter gets the whole value. Calls may give the
struct's elements as positional or keyword arguments, or the whole value.
"""

from __future__ import annotations

import collections.abc
import inspect
from typing import Any, Callable

import numpy as np

from fedjit.core import _ir
from fedjit.core._structure import Struct, name_list_with_nones, to_elements
from fedjit.core._types import (StructType, Type, build_container, struct_fields,
                                to_type)

__all__ = ["fn_name", "python_parameters", "declared_parameter_types",
           "is_argument_struct", "unpack_args_from_struct", "pack_args_into_struct",
           "pack_args", "pack_call_args"]


def fn_name(fn: Callable, default: str = "computation") -> str:
  """The name of `fn` for messages (a `functools.partial` has none of its own)."""
  name = getattr(fn, "__name__", None)
  if name is None and hasattr(fn, "func"):
    name = getattr(fn.func, "__name__", None)
  return name or default


def python_parameters(fn: Callable, declared: bool) -> list[str]:
  """The names of the parameters a computation binds in `fn`.

  Raises a TypeError (as TFF does) for `*args` and `**kwargs`, keyword-only
  parameters without defaults, and, when types are `declared`, default
  values. Keyword-only parameters with defaults (those a `functools.partial`
  fixes by name) are not bound.

  Example:
    >>> python_parameters(lambda x, y: x + y, declared=True)
    ['x', 'y']
    >>> python_parameters(functools.partial(lambda x, y: x + y, y=1), declared=True)
    ['x']
  """
  name = fn_name(fn)
  try:
    sig = inspect.signature(fn)
  except (TypeError, ValueError):
    return []
  names = []
  for p in sig.parameters.values():
    if p.kind == p.VAR_POSITIONAL:
      raise TypeError(
          f"'{name}' takes *{p.name}, but a fedjit computation needs a fixed list "
          f"of parameters (one per element of its parameter type). Name the "
          f"parameters, e.g. def {name}(x, y), or take one struct parameter.")
    if p.kind == p.VAR_KEYWORD:
      raise TypeError(
          f"'{name}' takes **{p.name}, but a fedjit computation needs a fixed list "
          f"of parameters. Name the parameters, e.g. def {name}(x, y).")
    if p.kind == p.KEYWORD_ONLY and p.default is not p.empty:
      continue  # Fixed already, as by functools.partial(fn, b=2): not bound.
    if p.kind == p.KEYWORD_ONLY:
      raise TypeError(
          f"'{name}' has the keyword-only parameter '{p.name}'; fedjit computations "
          f"bind parameters by position. Move it before the '*'.")
    if declared and p.default is not p.empty:
      raise TypeError(
          f"'{name}' gives the parameter '{p.name}' a default value "
          f"({p.default!r}); a computation with declared types always receives "
          f"every argument, so the default would never apply. Remove the default.")
    names.append(p.name)
  return names


def declared_parameter_types(name: str, names: list[str], types: list[Type]) -> list[Type]:
  """One type per Python parameter, from the types given to the decorator.

  `types` may hold one type per parameter, or one struct type whose elements
  are unpacked into the parameters (their names, where given, must be the
  parameters' names), or one type for a one-parameter function.
  """
  if len(types) == len(names):
    return types
  if len(types) == 1 and isinstance(types[0], StructType) and len(types[0]) == len(names) \
      and names:
    st = types[0]
    for i, (elem_name, pname) in enumerate(zip(st.names(), names)):
      if elem_name is not None and elem_name != pname:
        raise TypeError(
            f"'{name}' takes the parameters ({', '.join(names)}), but the declared "
            f"type {st} names its element {i} '{elem_name}' where the function's "
            f"parameter is '{pname}'. Rename the parameter or the element so that "
            f"they match (or take the whole struct as one parameter).")
    return list(st.types())
  raise TypeError(
      f"'{name}' takes {len(names)} parameter(s) ({', '.join(names) or 'none'}) "
      f"but the decorator declares {len(types)} type(s): "
      f"{', '.join(str(t) for t in types) or 'none'}. Declare one type per "
      f"parameter, or one struct type with one element per parameter.")


def is_argument_struct(t: Any) -> bool:
  """True if `t` is a struct type whose unnamed elements all precede the named
  ones (so it can be filled from positional then keyword arguments).

  Example:
    >>> is_argument_struct(fedjit.to_type([np.int32, ('b', np.int32)]))
    True
    >>> is_argument_struct(fedjit.to_type([('a', np.int32), np.int32]))
    False
  """
  names = _element_names(t)
  if names is None:
    return False
  named = [i for i, n in enumerate(names) if n is not None]
  unnamed = [i for i, n in enumerate(names) if n is None]
  return not named or not unnamed or max(unnamed) < min(named)


def _element_names(x: Any) -> list | None:
  """The element names of a Struct value or of a struct type (spec), or None."""
  if isinstance(x, Struct):
    return name_list_with_nones(x)
  if x is None:
    return None
  if not isinstance(x, Type):
    x = to_type(x)
  return list(x.names()) if isinstance(x, StructType) else None


def unpack_args_from_struct(struct_with_args: Any) -> tuple[list, dict]:
  """Splits a Struct value or a struct type into positional and keyword parts
  (its unnamed and named elements), as TFF's `function_utils` does.

  Example:
    >>> unpack_args_from_struct(fedjit.structure.Struct([(None, 1), ('a', 2)]))
    ([1], {'a': 2})
  """
  if not is_argument_struct(struct_with_args):
    raise TypeError(f"Expected a struct whose unnamed elements all precede its named "
                    f"ones, got {struct_with_args}.")
  if isinstance(struct_with_args, Struct):
    elements = to_elements(struct_with_args)
  else:
    elements = list(to_type(struct_with_args).items())
  args = [v for n, v in elements if n is None]
  kwargs = {n: v for n, v in elements if n is not None}
  return args, kwargs


def _fill(name: str, st: StructType, args, kwargs) -> list:
  """The element values of struct type `st` from positional then keyword
  arguments, as in a Python call."""
  values = []
  used = set()
  for index, (elem_name, elem_type) in enumerate(st.items()):
    if index < len(args):
      if elem_name is not None and elem_name in kwargs:
        raise TypeError(f"'{name}' was given the argument '{elem_name}' twice "
                        f"(by position and by name).")
      values.append(args[index])
    elif elem_name is not None and elem_name in kwargs:
      values.append(kwargs[elem_name])
      used.add(elem_name)
    elif elem_name is not None:
      raise TypeError(f"'{name}' is missing the argument '{elem_name}' of type "
                      f"{elem_type} (its parameter type is {st}).")
    else:
      raise TypeError(f"'{name}' is missing the argument at position {index}, of "
                      f"type {elem_type} (its parameter type is {st}).")
  if len(args) > len(st):
    raise TypeError(f"'{name}' takes {len(st)} argument(s) (its parameter type is "
                    f"{st}), but was given {len(args)} positional argument(s).")
  unused = [k for k in kwargs if k not in used]
  if unused:
    raise TypeError(f"'{name}' got unexpected keyword argument(s) {unused}; its "
                    f"parameter type {st} names the elements "
                    f"{[n for n in st.names() if n is not None]}.")
  return values


def pack_args_into_struct(args, kwargs, type_spec: Any = None):
  """Packs positional and keyword arguments into a `fedjit.structure.Struct`
  (TFF's `function_utils.pack_args_into_struct`).

  Without `type_spec`, the positional arguments come first, then the keyword
  ones in their order. With a struct `type_spec`, they fill its elements as
  in a Python call (by position, then by name).

  Example:
    >>> pack_args_into_struct([1], {'y': True}, [('x', np.int32), ('y', np.bool_)])
    Struct([('x', 1), ('y', True)])
  """
  if type_spec is None:
    return Struct([(None, a) for a in args] + list(kwargs.items()))
  st = to_type(type_spec)
  if not is_argument_struct(st):
    raise TypeError(f"The parameter type {st} is not a struct whose unnamed elements "
                    f"all precede its named ones, so it cannot be filled from "
                    f"positional and keyword arguments; build the struct value instead.")
  values = _fill("the call", st, args, kwargs)
  return Struct(list(zip(st.names(), values)))


def pack_args(parameter_type: Any, args, kwargs):
  """The call's arguments as one value of `parameter_type` (TFF's
  `function_utils.pack_args`): None for no parameter, the single positional
  argument itself, or a Struct filled from several arguments.

  Example:
    >>> str(pack_args([('x', np.int32), ('y', np.bool_)], [1], {'y': True}))
    '<x=1,y=True>'
  """
  if parameter_type is None:
    if args or kwargs:
      raise TypeError(f"Expected no arguments, got {len(args)} positional and "
                      f"{len(kwargs)} keyword argument(s).")
    return None
  parameter_type = to_type(parameter_type)
  if not args and not kwargs:
    raise TypeError(f"Declared a parameter of type {parameter_type}, but got no "
                    f"arguments.")
  if len(args) == 1 and not kwargs:
    return args[0]
  if not isinstance(parameter_type, StructType):
    raise TypeError(f"The parameter type {parameter_type} takes a single positional "
                    f"argument, but got {len(args)} positional and {len(kwargs)} "
                    f"keyword argument(s).")
  return pack_args_into_struct(args, kwargs, parameter_type)


def _is_whole_value(value: Any) -> bool:
  """True if a single call argument can be the whole struct (not a tensor)."""
  if isinstance(value, _ir.FederatedValue):
    return isinstance(value.type, StructType)
  return not (hasattr(value, "shape") or isinstance(
      value, (int, float, complex, bool, str, bytes, np.generic)))


def _split(t: StructType, value: Any) -> list[Any]:
  if isinstance(value, _ir.FederatedValue):
    return [value[i] for i in range(len(t))]
  return struct_fields(t, value)


def pack_call_args(name: str, parameter_type: Type | None, param_names: list[str],
                   args: tuple, kwargs: dict) -> tuple:
  """The call's arguments as one value per Python parameter of a computation.

  As TFF's `function_utils.pack_args`: a single positional argument is the
  whole parameter; several positional and keyword arguments fill a struct
  parameter's elements in order, then by name.

  Args:
    name: the computation's name, for messages.
    parameter_type: its parameter type (None: it takes no argument).
    param_names: the parameters its Python function binds: the struct's
      elements are passed one per parameter when there are several.
    args: the call's positional arguments.
    kwargs: the call's keyword arguments.

  Returns:
    A tuple of `num_params` values.

  Example:
    >>> t = fedjit.to_type([('x', np.int32), ('y', np.bool_)])
    >>> pack_call_args('f', t, ['x', 'y'], (1,), {'y': True})
    (1, True)
  """
  if parameter_type is None:
    if args or kwargs:
      raise TypeError(f"'{name}' takes no arguments, but was given "
                      f"{len(args)} positional and {len(kwargs)} keyword argument(s).")
    return ()
  if not args and not kwargs:
    n = len(param_names)
    raise TypeError(f"'{name}' takes {n if n > 1 else 1} argument{'s' if n > 1 else ''} "
                    f"(its parameter type is {parameter_type}), but was called with "
                    f"no arguments.")
  num_params = len(param_names)
  st = parameter_type if isinstance(parameter_type, StructType) else None
  if len(args) == 1 and not kwargs:
    value = args[0]
    if num_params <= 1:
      return (value,)
    if not _is_whole_value(value):
      raise TypeError(
          f"'{name}' expects {num_params} arguments (or one structure of them, of "
          f"type {parameter_type}), but was given one value of Python type "
          f"{type(value).__name__}.")
    try:
      fields = _split(st, value)
    except TypeError as e:
      raise TypeError(
          f"'{name}' was called with one value as its whole argument of type "
          f"{parameter_type}, but it does not fit: {e} Pass the {num_params} "
          f"elements as separate arguments, or a structure of them.") from None
    return tuple(fields)
  if num_params == 1 and not args and list(kwargs) == param_names and (
      st is None or param_names[0] not in st.names()):
    return (kwargs[param_names[0]],)  # f(x=1) for def f(x)
  if st is None:
    raise TypeError(
        f"'{name}' has the parameter type {parameter_type}, which takes a single "
        f"positional argument, but was given {len(args)} positional and "
        f"{len(kwargs)} keyword argument(s).")
  if not is_argument_struct(st):
    raise TypeError(
        f"'{name}' has the parameter type {st}, whose named elements do not all "
        f"follow its unnamed ones, so it cannot be filled from several positional "
        f"and keyword arguments; build the struct value and pass it as one argument.")
  values = _fill(name, st, args, kwargs)
  if num_params == len(st) and num_params > 1:
    return tuple(values)
  return (build_container(st, values),)

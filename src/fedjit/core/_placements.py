"""Placements: where a federated value lives (TFF's `placements` module).

There are two placement literals, `SERVER` (a single coordinator) and
`CLIENTS` (the population of devices). They print as TFF prints them:

  >>> import fedjit
  >>> str(fedjit.CLIENTS), repr(fedjit.SERVER)
  ('CLIENTS', "PlacementLiteral('server')")
"""

from __future__ import annotations

__all__ = ["PlacementLiteral", "Placement", "SERVER", "CLIENTS",
           "uri_to_placement_literal"]


class PlacementLiteral:
  """One of the placement literals, `fedjit.SERVER` or `fedjit.CLIENTS`.

  Literals compare and hash by their `uri`, and are usable as dict keys.
  `Placement` is the same class under fedjit's earlier name.

  Attributes:
    name: the name, as printed: `'SERVER'`, `'CLIENTS'`.
    uri: the identifier used in serialized computations: `'server'`,
      `'clients'`.
    default_all_equal: the `all_equal` a `FederatedType` at this placement
      gets when none is given (True at SERVER, False at CLIENTS).

  Example:
    >>> import fedjit
    >>> fedjit.CLIENTS.name, fedjit.CLIENTS.uri, fedjit.CLIENTS.default_all_equal
    ('CLIENTS', 'clients', False)
    >>> {fedjit.SERVER: 1}[fedjit.uri_to_placement_literal('server')]
    1
  """

  __slots__ = ("_name", "_uri", "_default_all_equal", "_description")

  def __init__(self, name: str, uri: str, default_all_equal: bool, description: str = ""):
    self._name = name
    self._uri = uri
    self._default_all_equal = bool(default_all_equal)
    self._description = description

  @property
  def name(self) -> str:
    """The printed name (`'CLIENTS'`)."""
    return self._name

  @property
  def uri(self) -> str:
    """The identifier in serialized computations (`'clients'`)."""
    return self._uri

  @property
  def default_all_equal(self) -> bool:
    """Whether a federated type placed here is all-equal by default."""
    return self._default_all_equal

  @property
  def description(self) -> str:
    """A one-line description of the participants."""
    return self._description

  def __str__(self) -> str:
    return self._name

  def __repr__(self) -> str:
    return f"PlacementLiteral('{self._uri}')"

  def __eq__(self, other) -> bool:
    if self is other:
      return True
    if not isinstance(other, PlacementLiteral):
      return NotImplemented
    return other._uri == self._uri

  def __hash__(self) -> int:
    return hash(self._uri)

  def __reduce__(self):
    # Unpickling gives back the module's literal itself.
    return (uri_to_placement_literal, (self._uri,))


# fedjit's earlier name for the class.
Placement = PlacementLiteral

CLIENTS = PlacementLiteral("CLIENTS", "clients", default_all_equal=False,
                           description="The collective of all client devices.")
SERVER = PlacementLiteral("SERVER", "server", default_all_equal=True,
                          description="The single top-level central coordinator.")


def uri_to_placement_literal(uri: str) -> PlacementLiteral:
  """The placement literal whose `uri` is `uri` (TFF's function of that name).

  Args:
    uri: `'server'` or `'clients'`.

  Returns:
    `fedjit.SERVER` or `fedjit.CLIENTS` (the objects themselves).

  Raises:
    ValueError: there is no placement with that uri.

  Example:
    >>> import fedjit
    >>> fedjit.uri_to_placement_literal('clients') is fedjit.CLIENTS
    True
  """
  for literal in (CLIENTS, SERVER):
    if uri == literal.uri:
      return literal
  raise ValueError(f"There is no placement literal with uri {uri!r}; expected "
                   f"'server' or 'clients'.")


# The name serialization uses.
_placement_by_uri = uri_to_placement_literal

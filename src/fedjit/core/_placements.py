"""Placements: where a federated value lives."""

from __future__ import annotations

__all__ = ["Placement", "SERVER", "CLIENTS"]


class Placement:
  """A group of participants that hold a federated value.

  There are two placements, `SERVER` (a single coordinator) and `CLIENTS`
  (the population of devices). They print as TFF prints them.

  Example:
    >>> import fedjit
    >>> str(fedjit.CLIENTS)
    'CLIENTS'
  """

  __slots__ = ("uri",)

  def __init__(self, uri: str):
    self.uri = uri

  def __str__(self) -> str:
    return self.uri.upper()

  def __repr__(self) -> str:
    return f"fedjit.{self.uri.upper()}"

  def __eq__(self, other) -> bool:
    return isinstance(other, Placement) and other.uri == self.uri

  def __hash__(self) -> int:
    return hash(("placement", self.uri))

  def __reduce__(self):
    return (_placement_by_uri, (self.uri,))


SERVER = Placement("server")
CLIENTS = Placement("clients")


def _placement_by_uri(uri: str) -> Placement:
  for p in (SERVER, CLIENTS):
    if p.uri == uri:
      return p
  raise ValueError(f"Unknown placement {uri!r}; expected 'server' or 'clients'.")

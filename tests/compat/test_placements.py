"""Port of TFF's placement literal tests (`placements_test.py`).

Source: google-parfait/federated-language,
federated_language/types/placements_test.py

Spelling: `placements.CLIENTS` / `placements.SERVER` -> `fedjit.CLIENTS` /
`fedjit.SERVER`; `placements.uri_to_placement_literal` ->
`fedjit.uri_to_placement_literal`; absltest asserts -> plain `assert`
(`assertIs` -> `is`, `assertNotEqual` -> `!=`).

Left out: nothing (all three tests are ported).
"""

import fedjit


def test_something():
  assert str(fedjit.CLIENTS) != str(fedjit.SERVER)
  for literal in [fedjit.CLIENTS, fedjit.SERVER]:
    assert fedjit.uri_to_placement_literal(literal.uri) is literal


def test_comparators_and_hashing():
  assert fedjit.CLIENTS == fedjit.CLIENTS
  assert fedjit.CLIENTS != fedjit.SERVER
  assert hash(fedjit.CLIENTS) == hash(fedjit.CLIENTS)
  assert hash(fedjit.CLIENTS) != hash(fedjit.SERVER)
  foo = {fedjit.CLIENTS: 10, fedjit.SERVER: 20}
  assert foo[fedjit.CLIENTS] == 10
  assert foo[fedjit.SERVER] == 20


def test_comparison_to_none():
  assert fedjit.CLIENTS != None  # noqa: E711  (TFF's assertNotEqual(x, None))
  assert fedjit.SERVER != None  # noqa: E711
  assert None != fedjit.CLIENTS  # noqa: E711
  assert None != fedjit.SERVER  # noqa: E711

"""No import cycles inside `fedjit` (issue 14).

The import graph of `fedjit` is built with `grimp` (installed with
import-linter), which counts every import statement, function-level ones
included: an import moved into a function only hides a cycle, so it still
counts. A cycle is a strongly connected component of that graph (modules
that reach each other through imports); the test lists each one with a
chain that closes it.
"""

from __future__ import annotations

import grimp

# Cycles allowed for now, each the frozenset of the modules in one strongly
# connected component, with a comment saying who owns it and why it is left.
# Empty: fedjit has no import cycles. Do not add to it to make a new cycle
# pass; break the cycle (move what both sides need into a lower module).
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()


def _graph() -> grimp.ImportGraph:
  return grimp.build_graph("fedjit", cache_dir=None)


def _strongly_connected(graph: grimp.ImportGraph) -> list[frozenset[str]]:
  """The components of more than one module (Tarjan's algorithm, iterative)."""
  index: dict[str, int] = {}
  low: dict[str, int] = {}
  on_stack: set[str] = set()
  stack: list[str] = []
  components: list[frozenset[str]] = []
  counter = 0
  for root in sorted(graph.modules):
    if root in index:
      continue
    work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
    index[root] = low[root] = counter
    counter += 1
    stack.append(root)
    on_stack.add(root)
    while work:
      module, children = work[-1]
      child = next(children, None)
      if child is not None:
        if child not in index:
          index[child] = low[child] = counter
          counter += 1
          stack.append(child)
          on_stack.add(child)
          work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
        elif child in on_stack:
          low[module] = min(low[module], index[child])
        continue
      work.pop()
      if work:
        parent = work[-1][0]
        low[parent] = min(low[parent], low[module])
      if low[module] == index[module]:
        component = set()
        while True:
          m = stack.pop()
          on_stack.discard(m)
          component.add(m)
          if m == module:
            break
        if len(component) > 1:
          components.append(frozenset(component))
  return components


def _describe(graph: grimp.ImportGraph, component: frozenset[str]) -> str:
  """The component's modules and one closed chain through it, with the lines
  of each import."""
  first = min(component)
  succ = min(m for m in graph.find_modules_directly_imported_by(first) if m in component)
  back = graph.find_shortest_chain(importer=succ, imported=first) or (succ, first)
  chain = (first,) + tuple(back)
  steps = []
  for a, b in zip(chain, chain[1:]):
    lines = sorted(d["line_number"] for d in graph.get_import_details(importer=a, imported=b))
    steps.append(f"  {a} -> {b} (line {', '.join(map(str, lines)) or '?'})")
  return f"{sorted(component)}:\n" + "\n".join(steps)


def test_no_import_cycles_inside_fedjit():
  graph = _graph()
  cycles = [c for c in _strongly_connected(graph) if c not in KNOWN_CYCLES]
  assert not cycles, (
      "Import cycles inside fedjit (function-level imports count). Break each by "
      "moving what both sides need into a lower module:\n"
      + "\n".join(_describe(graph, c) for c in cycles))


def test_known_cycles_are_still_there():
  # An allowance that no longer matches a cycle is stale: remove it.
  present = set(_strongly_connected(_graph()))
  assert not [c for c in KNOWN_CYCLES if c not in present], (
      "KNOWN_CYCLES lists cycles that are gone; remove them from the allowance.")


def test_the_cycle_check_sees_function_level_imports(tmp_path, monkeypatch):
  # A package whose only cycle runs through an import inside a function.
  pkg = tmp_path / "cyclepkg"
  pkg.mkdir()
  (pkg / "__init__.py").write_text("")
  (pkg / "a.py").write_text("from cyclepkg import b\n")
  (pkg / "b.py").write_text("def f():\n  from cyclepkg import a\n  return a\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  graph = grimp.build_graph("cyclepkg", cache_dir=None)
  components = _strongly_connected(graph)
  assert components == [frozenset({"cyclepkg.a", "cyclepkg.b"})]
  assert "cyclepkg.b -> cyclepkg.a (line 2)" in _describe(graph, components[0])

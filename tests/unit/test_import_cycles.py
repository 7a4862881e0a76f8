"""No module of the project is part of an import cycle.

import-linter's `acyclic_siblings` contract (in `make lint`) covers the modules of each package;
this also covers a package and its own modules (a package's __init__ importing a module that
imports the package back), counting imports inside functions. Imports under TYPE_CHECKING are left
out: they never run, so they cannot leave a module half-imported; they only name a type.
"""

from __future__ import annotations

import grimp

ROOTS = ("services", "shared", "gateway", "deploy")


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, imported = work[-1]
            for other in imported:
                if other not in index:
                    index[other] = low[other] = len(index)
                    stack.append(other)
                    on_stack.add(other)
                    work.append(
                        (other, iter(sorted(graph.find_modules_directly_imported_by(other))))
                    )
                    break
                if other in on_stack:
                    low[module] = min(low[module], index[other])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def test_the_cycle_finder_finds_a_cycle_through_a_package_and_its_module(tmp_path, monkeypatch):
    package = tmp_path / "loopy"
    package.mkdir()
    (package / "__init__.py").write_text("def start():\n    from loopy import pages\n")
    (package / "pages.py").write_text("import loopy\n")
    (package / "alone.py").write_text("import json\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles(grimp.build_graph("loopy")) == [["loopy", "loopy.pages"]]


def test_no_module_is_part_of_an_import_cycle():
    graph = grimp.build_graph(*ROOTS, exclude_type_checking_imports=True)
    assert import_cycles(graph) == []

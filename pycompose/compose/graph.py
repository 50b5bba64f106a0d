"""The service dependency graph (networkx), built beside the model, never inside it.

An edge ``a -> b`` means "a needs b": from depends_on, links, ``network_mode: service:b``
and ``volumes_from: b``. ``up`` walks it dependencies first; ``down`` in reverse. networkx
is imported here only, so commands that never orchestrate (``config``) never pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pycompose.compose.checks import service_edges

if TYPE_CHECKING:
    import networkx as nx

    from pycompose.compose.model import Project


def dependency_graph(project: Project) -> nx.DiGraph:
    """A DiGraph with one node per service and an edge per reference, labelled by kind."""
    import networkx as nx

    graph = nx.DiGraph()
    for name in project.services:
        graph.add_node(name)
    for name, service in project.services.items():
        for kind, other, _path in service_edges(service.config):
            if other in project.services:
                condition = None
                if kind == "depends_on":
                    condition = service.depends_on[other].condition
                graph.add_edge(name, other, kind=kind, condition=condition)
    return graph


def start_order(project: Project) -> list[str]:
    """Services ordered so that each comes after everything it needs (ties by name)."""
    import networkx as nx

    graph = dependency_graph(project)
    return list(nx.lexicographical_topological_sort(graph.reverse(copy=False)))

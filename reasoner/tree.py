"""The step tree every strategy grows: nodes are steps, paths from the root are step chains."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import networkx as nx


@dataclass
class Node:
    """One reasoning step (the root holds the prompt and has no step text)."""

    id: int
    parent: int | None
    depth: int
    text: str = ""  # the step's text, delimiter stripped
    token_ids: list[int] = field(default_factory=list)  # ids as generated (delimiter/eos included)
    logprob: float = 0.0  # summed policy log-probability of token_ids
    prm_score: float | None = None  # PRM score of this step given its chain
    visits: int = 0
    value_sum: float = 0.0
    prior: float | None = None
    terminal: bool = False  # the policy ended the solution here (EOS) or a cap cut it
    answer: str | None = None  # the extracted final answer, for terminal nodes
    truncated: bool = False  # the step ran past the step-length cap without a delimiter
    children: list[int] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class StepTree:
    """A tree of steps for one problem, with JSON round-trip and a networkx export."""

    def __init__(
        self, problem_text: str, prompt_ids: list[int] | None = None, problem_id: str = ""
    ):
        self.problem_text = problem_text
        self.problem_id = problem_id
        self.prompt_ids = list(prompt_ids or [])
        self.nodes: list[Node] = [Node(id=0, parent=None, depth=0)]

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, node_id: int) -> Node:
        return self.nodes[node_id]

    def add_child(self, parent: Node | int, **fields: Any) -> Node:
        """Append a step under `parent` and return the new node."""
        parent_node = self.nodes[parent] if isinstance(parent, int) else parent
        node = Node(
            id=len(self.nodes), parent=parent_node.id, depth=parent_node.depth + 1, **fields
        )
        self.nodes.append(node)
        parent_node.children.append(node.id)
        return node

    def children(self, node: Node | int) -> list[Node]:
        node = self.nodes[node] if isinstance(node, int) else node
        return [self.nodes[c] for c in node.children]

    def path(self, node: Node | int) -> list[Node]:
        """Nodes from the first step down to `node` (the root excluded)."""
        current = self.nodes[node] if isinstance(node, int) else node
        chain = []
        while current.parent is not None:
            chain.append(current)
            current = self.nodes[current.parent]
        return chain[::-1]

    def steps(self, node: Node | int) -> list[str]:
        return [n.text for n in self.path(node)]

    def prefix_ids(self, node: Node | int) -> list[int]:
        """Token ids of the prompt followed by every step of the chain, exactly as generated."""
        ids = list(self.prompt_ids)
        for n in self.path(node):
            ids.extend(n.token_ids)
        return ids

    def leaves(self) -> list[Node]:
        return [n for n in self.nodes if not n.children and n.parent is not None]

    def terminals(self) -> list[Node]:
        return [n for n in self.nodes if n.terminal]

    def distinct_tokens(self) -> int:
        """Tokens stored in the tree (prompt once, each step once): the floor for model compute."""
        return len(self.prompt_ids) + sum(len(n.token_ids) for n in self.nodes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem_text": self.problem_text,
            "problem_id": self.problem_id,
            "prompt_ids": self.prompt_ids,
            "nodes": [n.to_dict() for n in self.nodes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepTree:
        tree = cls(data["problem_text"], data.get("prompt_ids"), data.get("problem_id", ""))
        tree.nodes = [Node(**n) for n in data["nodes"]]
        return tree

    def to_networkx(self):
        """A networkx DiGraph (parent -> child) with every node field as attributes."""

        graph = nx.DiGraph(problem=self.problem_text, problem_id=self.problem_id)
        for n in self.nodes:
            attrs = n.to_dict()
            attrs.pop("children")
            attrs.pop("id")
            graph.add_node(n.id, **attrs)
            if n.parent is not None:
                graph.add_edge(n.parent, n.id)
        return graph

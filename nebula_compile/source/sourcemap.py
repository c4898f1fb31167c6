"""SourceMap: from a value path back to file:line:col.

The parsed node trees are the position tree. A path is walked through them
only when a diagnostic needs a position, so a clean compile pays nothing. A
path segment that names nothing in the source (a missing key, or a tag that
pydantic adds for a union member) is skipped, so the answer is the closest
ancestor that does exist, which is where the user has to look.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from nebula_compile.diagnostics import Path, Span
from nebula_compile.source.parse import MERGE, node_span


@dataclass(slots=True)
class Merged:
    """A mapping or list whose entries come from several files (via include:)."""

    file: str
    node: Node | None
    entries: dict[str | int, Entry] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Entry:
    file: str
    key: Node | None
    value: Union[Node, Merged]


@dataclass(frozen=True, slots=True)
class Located:
    span: Span
    path: Path
    """The part of the asked-for path that exists in the source."""


class SourceMap:
    def __init__(self, root: Merged) -> None:
        self._root = root
        self._index: dict[int, dict[str, tuple[Node, Node]]] = {}

    def _mapping_index(self, node: MappingNode) -> dict[str, tuple[Node, Node]]:
        index = self._index.get(id(node))
        if index is None:
            index = {}
            merges: list[Node] = []
            for key_node, value_node in node.value:
                if key_node.tag == MERGE:
                    merges.append(value_node)
                elif isinstance(key_node, ScalarNode):
                    index.setdefault(key_node.value, (key_node, value_node))
            for merge in merges:
                sources = merge.value if isinstance(merge, SequenceNode) else [merge]
                for source in sources:
                    if isinstance(source, MappingNode):
                        for name, pair in self._mapping_index(source).items():
                            index.setdefault(name, pair)
            self._index[id(node)] = index
        return index

    def locate(self, path: Path, *, key: bool | None = None) -> Located | None:
        """Where `path` is written, else its closest ancestor.

        `key=True` points at the key that names the value, `key=False` at the value.
        By default a scalar points at itself and a mapping or list at its key, so a
        problem with a whole block is shown on the line that names the block.
        """
        current: Node | Merged = self._root
        file = self._root.file
        found: list[str | int] = []
        key_node: Node | None = None
        for segment in path:
            step = self._step(current, segment)
            if step is None:
                continue
            step_file, key_node, current = step
            file = step_file or file
            found.append(segment)
        if key is None:
            key = isinstance(current, Merged | MappingNode | SequenceNode)
        target: Node | None
        if key and key_node is not None:
            target = key_node
        elif isinstance(current, Merged):
            target = current.node
            file = current.file
        else:
            target = current
        if target is None:
            return None
        return Located(node_span(file, target), tuple(found))

    def span(self, path: Path, *, key: bool | None = None) -> Span | None:
        located = self.locate(path, key=key)
        return located.span if located else None

    def _step(self, current: Node | Merged | None, segment: str | int) -> tuple[str, Node | None, Node | Merged] | None:
        if isinstance(current, Merged):
            entry = current.entries.get(segment)
            if entry is None:
                # a single file's tree needs no merged entries: read its node directly
                return self._step(current.node, segment) if current.node is not None and not current.entries else None
            return entry.file, entry.key, entry.value
        if isinstance(current, MappingNode):
            pair = self._mapping_index(current).get(str(segment))
            if pair is None:
                return None
            return "", pair[0], pair[1]
        if isinstance(current, SequenceNode) and isinstance(segment, int) and 0 <= segment < len(current.value):
            return "", None, current.value[segment]
        return None

"""load: a root nebula.yaml (and the files it includes) -> one Document.

`include:` takes a path or a list of paths and globs, relative to the file that
names them; matches are taken in sorted order so the result never depends on
the file system. Included files hold top-level sections. Named sections
(environments, connections, projects, roles) merge entry by entry, lists
(bindings) concatenate, and single sections (platform, auth) may be written
once. A name defined twice, an include cycle and a glob that matches nothing
are errors, each pointing at the line responsible.
"""

from __future__ import annotations

import glob as _glob
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from nebula_compile.diagnostics import Diagnostic, Span
from nebula_compile.source.parse import MERGE, Parsed, node_span, parse
from nebula_compile.source.sourcemap import Entry, Merged, SourceMap

NAMED_SECTIONS = frozenset({"environments", "connections", "projects", "roles"})
LIST_SECTIONS = frozenset({"bindings"})

Read = Callable[[str], str]
Glob = Callable[[str], list[str]]


@dataclass(frozen=True, slots=True)
class Document:
    """The merged configuration: plain values, where each came from, and the texts."""

    value: dict[str, Any] | None
    sourcemap: SourceMap
    sources: dict[str, str]
    root: str
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return self.value is not None and not any(d.is_error for d in self.diagnostics)


def _read_file(path: str) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def _glob_files(pattern: str) -> list[str]:
    return [p for p in _glob.glob(pattern, recursive=True) if os.path.isfile(p)]


def _has_magic(path: str) -> bool:
    return any(c in path for c in "*?[")


def _key_node(node: Node | None, name: str) -> tuple[Node | None, Node | None]:
    return _pairs(node).get(name, (None, None))


def _pairs(node: Node | None) -> dict[str, tuple[Node | None, Node | None]]:
    """Key text -> (key node, value node) of a mapping node; the first wins, as in the value."""
    pairs: dict[str, tuple[Node | None, Node | None]] = {}
    if isinstance(node, MappingNode):
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                merges.append(value_node)
            elif isinstance(key_node, ScalarNode):
                pairs.setdefault(key_node.value, (key_node, value_node))
        for merge in merges:  # keys written in the mapping win over merged ones
            for source in merge.value if isinstance(merge, SequenceNode) else [merge]:
                for name, pair in _pairs(source).items():
                    pairs.setdefault(name, pair)
    return pairs


def _span(file: str, node: Node | None) -> Span:
    return node_span(file, node) if node is not None else Span(file, 1, 1, 1, 1)


class _Loader:
    def __init__(self, root: str, read: Read, glob: Glob) -> None:
        self.root_dir = os.path.dirname(os.path.normpath(root))
        self.read = read
        self.glob = glob
        self.sources: dict[str, str] = {}
        self.parsed: list[Parsed] = []
        self.seen: set[str] = set()
        self.diagnostics: list[Diagnostic] = []

    def visit(self, file: str, stack: tuple[str, ...], via: Span | None) -> None:
        key = os.path.normpath(file)
        if key in stack:
            chain = " -> ".join(os.path.relpath(p, self.root_dir or ".") for p in (*stack[stack.index(key) :], key))
            self.diagnostics.append(
                Diagnostic("NEB107", f"include cycle: {chain}", via, "remove one of the include: entries in the cycle")
            )
            return
        if key in self.seen:
            return  # a file reached twice through different includes is read once
        self.seen.add(key)
        try:
            text = self.read(file)
        except FileNotFoundError:
            what = "included file" if via else "configuration file"
            hint = (
                "check the path; it is relative to the file that includes it"
                if via
                else "run 'nebula init' to write one"
            )
            self.diagnostics.append(Diagnostic("NEB100", f"{what} '{file}' does not exist", via, hint))
            return
        except UnicodeDecodeError as err:
            self.diagnostics.append(
                Diagnostic("NEB100", f"'{file}' is not UTF-8 text (byte {err.start})", via, "save the file as UTF-8")
            )
            return
        except (OSError, ValueError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            self.diagnostics.append(Diagnostic("NEB100", f"cannot read '{file}': {reason}", via))
            return
        self.sources[file] = text
        parsed = parse(text, file)
        self.diagnostics.extend(parsed.diagnostics)
        if parsed.value is None and parsed.diagnostics:
            return
        if not isinstance(parsed.value, dict):
            self.diagnostics.append(
                Diagnostic(
                    "NEB108",
                    "the top level of a configuration file must be a mapping of sections",
                    _span(file, parsed.node),
                    "start with keys such as 'platform:', 'projects:' or 'include:'",
                )
            )
            return
        self.parsed.append(parsed)
        include = parsed.value.get("include")
        if include is None:
            return
        _, value_node = _key_node(parsed.node, "include")
        entries = include if isinstance(include, list) else [include]
        items = getattr(value_node, "value", None) if isinstance(include, list) else None
        for index, entry in enumerate(entries):
            item_node = items[index] if isinstance(items, list) and index < len(items) else value_node
            where = _span(file, item_node)
            if not isinstance(entry, str) or not entry:
                self.diagnostics.append(
                    Diagnostic(
                        "NEB106",
                        "an include: entry must be a file path or glob",
                        where,
                        "e.g. include: [projects/*.yaml]",
                    )
                )
                continue
            if os.path.isabs(entry):
                self.diagnostics.append(
                    Diagnostic(
                        "NEB106",
                        f"include path '{entry}' is absolute",
                        where,
                        "write it relative to this file so the repository works on any machine",
                    )
                )
                continue
            target = os.path.normpath(os.path.join(os.path.dirname(file), entry))
            if _has_magic(entry):
                # the folder part is literal even if it holds glob characters, like repo[1]/
                pattern = os.path.join(_glob.escape(os.path.dirname(file)), entry)
                matches = sorted(
                    m for m in (os.path.normpath(p) for p in self.glob(pattern)) if m != os.path.normpath(file)
                )
                if not matches:
                    self.diagnostics.append(
                        Diagnostic("NEB106", f"include pattern '{entry}' matches no file", where, "check the pattern")
                    )
                for match in matches:
                    self.visit(match, (*stack, key), where)
            else:
                self.visit(target, (*stack, key), where)

    def merge(self) -> tuple[dict[str, Any], Merged]:
        root = self.parsed[0]
        value: dict[str, Any] = {}
        tree = Merged(root.file, root.node)
        owners: dict[tuple[str, ...], tuple[str, Node | None]] = {}
        for parsed in self.parsed:
            assert isinstance(parsed.value, dict)
            pairs = _pairs(parsed.node)
            for section, content in parsed.value.items():
                key_node, value_node = pairs.get(str(section), (None, None))
                if section == "include" and parsed is not root:
                    continue
                if content is None and section in NAMED_SECTIONS:
                    content = {}  # `projects:` with nothing under it yet
                elif content is None and section in LIST_SECTIONS:
                    content = []
                if section in NAMED_SECTIONS and isinstance(content, dict) and isinstance(value.get(section, {}), dict):
                    self._merge_named(parsed, section, content, key_node, value_node, value, tree, owners)
                elif (
                    section in LIST_SECTIONS and isinstance(content, list) and isinstance(value.get(section, []), list)
                ):
                    self._merge_list(parsed, section, content, key_node, value_node, value, tree, owners)
                elif section in value:
                    if value[section] == content and section == "version":
                        continue
                    first_file, first_node = owners.get((str(section),), (root.file, None))
                    shape = "mapping" if section in NAMED_SECTIONS else "list" if section in LIST_SECTIONS else None
                    message = (
                        f"section '{section}' must be a {shape} in every file"
                        if shape
                        else f"section '{section}' is defined in two files"
                    )
                    self.diagnostics.append(
                        Diagnostic(
                            "NEB108",
                            message,
                            _span(parsed.file, key_node),
                            f"it is first defined in {self.shown(first_file)}; "
                            + ("use the same form in both" if shape else "keep one definition"),
                            notes=(("first defined here", _span(first_file, first_node)),),
                        )
                    )
                else:
                    value[section] = content
                    owners[(str(section),)] = (parsed.file, key_node)
                    tree.entries[section] = Entry(
                        parsed.file, key_node, value_node if value_node is not None else Merged(parsed.file, None)
                    )
        return value, tree

    def shown(self, file: str) -> str:
        return os.path.relpath(file, self.root_dir or ".")

    def _merge_list(
        self,
        parsed: Parsed,
        section: str,
        content: list[Any],
        key_node: Node | None,
        value_node: Node | None,
        value: dict[str, Any],
        tree: Merged,
        owners: dict[tuple[str, ...], tuple[str, Node | None]],
    ) -> None:
        entry = tree.entries.get(section)
        if entry is None or not isinstance(entry.value, Merged):
            merged_tree = Merged(parsed.file, value_node)
            tree.entries[section] = Entry(parsed.file, key_node, merged_tree)
            owners[(section,)] = (parsed.file, key_node)
        else:
            merged_tree = entry.value
        items = list(value.get(section, []))
        nodes = value_node.value if isinstance(value_node, SequenceNode) else []
        for offset, item in enumerate(content):
            node = nodes[offset] if offset < len(nodes) else Merged(parsed.file, value_node)
            merged_tree.entries[len(items)] = Entry(parsed.file, None, node)
            items.append(item)
        value[section] = items

    def _merge_named(
        self,
        parsed: Parsed,
        section: str,
        content: dict[str, Any],
        key_node: Node | None,
        value_node: Node | None,
        value: dict[str, Any],
        tree: Merged,
        owners: dict[tuple[str, ...], tuple[str, Node | None]],
    ) -> None:
        entry = tree.entries.get(section)
        if entry is None or not isinstance(entry.value, Merged):
            merged_tree = Merged(parsed.file, value_node)
            tree.entries[section] = Entry(parsed.file, key_node, merged_tree)
            value[section] = {}
            owners[(section,)] = (parsed.file, key_node)
        else:
            merged_tree = entry.value
        target: dict[str, Any] = value[section]
        pairs = _pairs(value_node)
        for name, item in content.items():
            item_key, item_value = pairs.get(str(name), (None, None))
            if name in target:
                first_file, first_node = owners[(section, str(name))]
                kind = section[:-1] if section.endswith("s") else section
                self.diagnostics.append(
                    Diagnostic(
                        "NEB108",
                        f"{kind} '{name}' is defined in two files",
                        _span(parsed.file, item_key),
                        f"it is first defined in {self.shown(first_file)}; rename one or remove the duplicate",
                        notes=(("first defined here", _span(first_file, first_node)),),
                    )
                )
                continue
            target[name] = item
            owners[(section, str(name))] = (parsed.file, item_key)
            merged_tree.entries[name] = Entry(
                parsed.file, item_key, item_value if item_value is not None else Merged(parsed.file, None)
            )


def load(path: str, *, read: Read = _read_file, glob: Glob = _glob_files) -> Document:
    """Read `path` and everything it includes; never raises for a user mistake."""
    loader = _Loader(path, read, glob)
    loader.visit(path, (), None)
    if not loader.parsed or loader.parsed[0].file != path:
        return Document(None, SourceMap(Merged(path, None)), loader.sources, path, tuple(loader.diagnostics))
    value, tree = loader.merge()
    return Document(value, SourceMap(tree), loader.sources, path, tuple(loader.diagnostics))


def load_text(text: str, file: str = "nebula.yaml") -> Document:
    """Load a configuration held in memory (tests, editors, `nebula plan` at a revision)."""

    def read(path: str) -> str:
        if os.path.normpath(path) == os.path.normpath(file):
            return text
        raise FileNotFoundError(path)

    return load(file, read=read, glob=lambda _pattern: [])

"""parse: one YAML text -> a plain value plus the node tree that locates it.

Safe YAML only, with YAML 1.2 core-schema scalars: `yes`, `on`, `0123`,
`2024-01-01` and `12:30` stay strings. The composed node tree is kept as the
position tree; positions are looked up lazily, only when a diagnostic needs one.
Aliases reuse the value built for their anchor, and the size an alias would
expand to is counted, so an expansion bomb stops fast instead of reaching the
validator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
import yaml.cyaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from nebula_compile.diagnostics import Diagnostic, Span

MAX_BYTES = 16 * 1024 * 1024
"""Largest single file accepted; a config this big is a mistake, not a platform."""

MAX_EXPANDED = 2_000_000
"""Largest number of values a document may expand to once aliases are followed."""

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
MERGE = "tag:yaml.org,2002:merge"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"


_INT = re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+|0o[0-7]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_WORDS = {
    "true": BOOL, "True": BOOL, "TRUE": BOOL, "false": BOOL, "False": BOOL, "FALSE": BOOL,
    "~": NULL, "null": NULL, "Null": NULL, "NULL": NULL, "": NULL, "<<": MERGE,
}  # fmt: skip
_NUMBER_START = frozenset("-+0123456789.")


class _CoreResolver(yaml.resolver.BaseResolver):
    """YAML 1.2 core schema: no timestamps, no yes/no/on/off, no sexagesimal, no octal 0123.

    One dictionary lookup and at most two regular expressions per plain scalar;
    PyYAML's generic resolver walks a list of patterns for every scalar.
    """

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if not implicit[0]:
                return STR
            tag = _WORDS.get(value)
            if tag is not None:
                return tag
            if value[:1] in _NUMBER_START:
                if _INT.match(value):
                    return INT
                if _FLOAT.match(value):
                    return FLOAT
            return STR
        if kind is SequenceNode:
            return SEQ
        return MAP


_LIBYAML = bool(getattr(yaml, "__with_libyaml__", False))

if _LIBYAML:  # pragma: no branch - libyaml ships in PyYAML wheels

    class _Composer(yaml.cyaml.CParser, _CoreResolver):  # type: ignore[misc,name-defined]
        def __init__(self, text: str) -> None:
            yaml.cyaml.CParser.__init__(self, text)  # type: ignore[attr-defined]
            _CoreResolver.__init__(self)

else:  # pragma: no cover

    class _Composer(  # type: ignore[no-redef]
        yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer, _CoreResolver
    ):
        def __init__(self, text: str) -> None:
            yaml.reader.Reader.__init__(self, text)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            _CoreResolver.__init__(self)


@dataclass(frozen=True, slots=True)
class Parsed:
    file: str
    value: Any
    node: Node | None
    diagnostics: tuple[Diagnostic, ...]


def node_span(file: str, node: Node) -> Span:
    start, end = node.start_mark, node.end_mark
    end_line, end_col = end.line + 1, end.column + 1
    if end_line > start.line + 1 and end.column == 0:
        # a block node ends at the start of the next line; point at the node's own line
        end_line, end_col = start.line + 1, start.column + 2
    return Span(file, start.line + 1, start.column + 1, end_line, end_col)


class _Stop(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def _float(text: str) -> float:
    low = text.lower()
    if low.endswith(".inf"):
        return float("-inf") if low.startswith("-") else float("inf")
    if low == ".nan":
        return float("nan")
    return float(text)


def _int(text: str) -> int:
    if text.startswith("0x"):
        return int(text[2:], 16)
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text)


class _Builder:
    """Builds plain values from nodes in one walk; aliases share their anchor's value."""

    __slots__ = ("active", "built", "diagnostics", "expanded", "file", "sizes")

    def __init__(self, file: str) -> None:
        self.file = file
        self.built: dict[int, Any] = {}
        self.sizes: dict[int, int] = {}
        self.active: set[int] = set()
        self.expanded = 0
        self.diagnostics: list[Diagnostic] = []

    def build(self, node: Node) -> Any:
        key = id(node)
        if key in self.built:
            # an alias: the value exists already; count what it would expand to
            self.expanded += self.sizes[key]
            self._check_budget(node)
            return self.built[key]
        if key in self.active:
            raise _Stop(
                Diagnostic(
                    "NEB103",
                    "this anchored node contains an alias to itself",
                    node_span(self.file, node),
                    "a recursive structure cannot describe a platform; copy the values instead",
                )
            )
        before = self.expanded
        if isinstance(node, ScalarNode):
            value = self._scalar(node)
            self.expanded += 1
        elif isinstance(node, MappingNode):
            self.active.add(key)
            value = self._mapping(node)
            self.active.discard(key)
            self.expanded += 1
        elif isinstance(node, SequenceNode):
            self.active.add(key)
            if node.tag != SEQ:
                self._bad_tag(node)
            value = [self.build(item) for item in node.value]
            self.active.discard(key)
            self.expanded += 1
        else:  # pragma: no cover - the composer makes only these three
            raise TypeError(type(node))
        self._check_budget(node)
        self.built[key] = value
        self.sizes[key] = self.expanded - before
        return value

    def _check_budget(self, node: Node) -> None:
        if self.expanded > MAX_EXPANDED:
            raise _Stop(
                Diagnostic(
                    "NEB103",
                    f"aliases expand this document past {MAX_EXPANDED:,} values (the expansion overflowed at this anchor)",
                    node_span(self.file, node),
                    "this looks like an alias expansion bomb; use fewer nested aliases",
                )
            )

    def _bad_tag(self, node: Node) -> None:
        raise _Stop(
            Diagnostic(
                "NEB104",
                f"unsupported YAML tag '{node.tag}'",
                node_span(self.file, node),
                "nebula.yaml takes plain YAML values only; remove the tag",
            )
        )

    def _scalar(self, node: ScalarNode) -> Any:
        tag, text = node.tag, node.value
        if tag in (STR, MERGE):  # a '<<' outside a key position is just text
            return text
        try:
            if tag == INT:
                return _int(text)
            if tag == FLOAT:
                return _float(text)
            if tag == BOOL:
                return text.lower() == "true"
            if tag == NULL:
                return None
        except ValueError:
            raise _Stop(
                Diagnostic("NEB101", f"'{text}' is not a valid {tag.rsplit(':', 1)[-1]}", node_span(self.file, node))
            ) from None
        self._bad_tag(node)
        return None  # pragma: no cover

    def _mapping(self, node: MappingNode) -> dict[Any, Any]:
        if node.tag != MAP:
            self._bad_tag(node)
        out: dict[Any, Any] = {}
        seen: dict[Any, Node] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                merged.update(self._merge_sources(value_node))
                continue
            if not isinstance(key_node, ScalarNode):
                raise _Stop(
                    Diagnostic(
                        "NEB101",
                        "a mapping key must be a plain scalar",
                        node_span(self.file, key_node),
                        "write the key as a string",
                    )
                )
            # every key of the language is a name or a field: `1:` or `2024:` stays text
            key = key_node.value
            if key_node.tag not in (STR, INT, FLOAT, BOOL, NULL):
                self._bad_tag(key_node)
            first = seen.get(key)
            if first is not None:
                first_span = node_span(self.file, first)
                self.diagnostics.append(
                    Diagnostic(
                        "NEB102",
                        f"duplicate key '{key}'",
                        node_span(self.file, key_node),
                        f"the first '{key}' is at line {first_span.line}; remove or rename one of them",
                        notes=(("first defined here", first_span),),
                    )
                )
                continue
            seen[key] = key_node
            out[key] = self.build(value_node)
        if merged:
            # explicit keys win over merged ones, as YAML's merge key specifies
            for key, value in merged.items():
                out.setdefault(key, value)
        return out

    def _merge_sources(self, node: Node) -> dict[Any, Any]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        result: dict[Any, Any] = {}
        for source in reversed(sources):  # earlier sources win
            value = self.build(source)
            if not isinstance(value, dict):
                raise _Stop(
                    Diagnostic(
                        "NEB101",
                        "a merge key '<<' takes a mapping or a list of mappings",
                        node_span(self.file, source),
                    )
                )
            result.update(value)
        return result


def _reader_error(file: str, text: str, err: yaml.reader.ReaderError) -> Diagnostic:
    # libyaml reports a byte offset into the UTF-8 text, the pure-Python reader a character offset
    position = err.position
    if _LIBYAML:
        position = len(text.encode("utf-8")[:position].decode("utf-8", "ignore"))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    character = err.character if isinstance(err.character, str) else chr(err.character)
    return Diagnostic(
        "NEB101",
        f"invalid YAML: character U+{ord(character):04X} is not allowed in YAML text",
        Span(file, line, column, line, column + 1),
        "remove the control character; an editor's 'show invisibles' view finds it",
    )


def _mark_span(file: str, mark: Any) -> Span:
    return Span(file, mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 2)


# For these, the place where the parser gave up is far from the mistake; the place
# where the construct opened (the bracket, the quote, the key) is where to look.
_OPENED_AT = {
    "while parsing a flow mapping": ("this '{' is never closed", "close it with '}' or finish the entries on one line"),
    "while parsing a flow sequence": ("this '[' is never closed", "close it with ']' or finish the list on one line"),
    "while scanning a quoted scalar": ("this quoted string is never closed", "add the closing quote"),
    "while scanning a simple key": (
        "this key has no ':' after it",
        "write 'key: value', or indent it under the key above",
    ),
}


def _yaml_error(file: str, text: str, err: yaml.YAMLError) -> Diagnostic:
    if isinstance(err, yaml.reader.ReaderError):
        return _reader_error(file, text, err)
    problem_mark = getattr(err, "problem_mark", None)
    context_mark = getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None) or ""
    if "expected a single document" in str(err):
        return Diagnostic(
            "NEB101",
            "nebula.yaml holds one YAML document; found a second one",
            _mark_span(file, problem_mark) if problem_mark else None,
            "remove the '---' separator, or move the second document into a file listed under include:",
        )
    if "duplicate anchor" in context and problem_mark is not None:
        first = _mark_span(file, context_mark) if context_mark else None
        return Diagnostic(
            "NEB101",
            "this anchor name is already used",
            _mark_span(file, problem_mark),
            "give each '&anchor' its own name",
            notes=(("first defined here", first),) if first else (),
        )
    if context in _OPENED_AT and context_mark is not None:
        message, fix = _OPENED_AT[context]
        notes = (("the parser gave up here", _mark_span(file, problem_mark)),) if problem_mark else ()
        return Diagnostic("NEB101", f"invalid YAML: {message}", _mark_span(file, context_mark), fix, notes=notes)
    mark = problem_mark or context_mark
    hint: str | None = None
    if context:
        hint = context if context.startswith("while") else f"while {context}"
    if mark is not None:
        lines = text.splitlines()
        if mark.line < len(lines) and "\t" in lines[mark.line][: mark.column + 1]:
            hint = "YAML indents with spaces, not tabs"
    return Diagnostic("NEB101", f"invalid YAML: {problem}", _mark_span(file, mark) if mark else None, hint)


def parse(text: str, file: str) -> Parsed:
    """Parse one YAML document into a plain value and its node tree."""
    if len(text) > MAX_BYTES:
        return Parsed(
            file,
            None,
            None,
            (
                Diagnostic(
                    "NEB105",
                    f"file is {len(text):,} characters; the limit is {MAX_BYTES:,}",
                    Span(file, 1, 1, 1, 1),
                    "split the configuration into several files with include:",
                ),
            ),
        )
    try:
        node = _Composer(text).get_single_node()
    except yaml.YAMLError as err:
        return Parsed(file, None, None, (_yaml_error(file, text, err),))
    except RecursionError:
        return Parsed(
            file, None, None, (Diagnostic("NEB101", "the YAML is nested too deeply", Span(file, 1, 1, 1, 1)),)
        )
    if node is None:
        return Parsed(file, {}, None, ())
    builder = _Builder(file)
    try:
        value = builder.build(node)
    except _Stop as stop:
        return Parsed(file, None, node, (*builder.diagnostics, stop.diagnostic))
    except RecursionError:
        return Parsed(file, None, node, (Diagnostic("NEB101", "the YAML is nested too deeply", node_span(file, node)),))
    return Parsed(file, value, node, tuple(builder.diagnostics))

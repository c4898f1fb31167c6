"""validate: a loaded Document -> a typed Spec, or diagnostics that point at lines.

pydantic does the checking; this pass translates each of its errors into a
diagnostic with a stable code, a message in the language's own words, the
position of the offending key or value, and a hint (the closest valid name,
the allowed values, or how to write a secret reference).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Tag, ValidationError

from nebula_compile.diagnostics import Diagnostic, Path, did_you_mean, format_path, one_of
from nebula_compile.source.load import Document
from nebula_compile.source.sourcemap import SourceMap
from nebula_compile.spec import types as value_types
from nebula_compile.spec.models import Spec

_KINDS = {
    "projects": "project",
    "environments": "environment",
    "connections": "connection",
    "roles": "role",
    "datasets": "dataset",
    "preprocessing": "preprocessing step",
    "notebooks": "notebook",
    "models": "model",
    "deployments": "deployment",
    "variants": "variant",
    "alerts": "alert",
    "columns": "column",
    "keys": "API key",
    "overrides": "override for project",
    "bindings": "binding",
}

_HINTS = {
    "duration": "write a number and a unit: 30s, 5m, 1h, 7d (units ms, s, m, h, d, w)",
    "quantity": "write CPU as cores (2, 0.5) or millicores (500m), memory as 512Mi or 4Gi",
    "gate": "write METRIC OP NUMBER, e.g. 'roc_auc >= 0.8'",
    "split": "test and validation are fractions of the rows; together they must stay below 1, e.g. 0.2 and 0.1",
    "permission": "write RESOURCE:ACTION; resources: "
    + ", ".join(value_types.RESOURCES)
    + "; actions: "
    + ", ".join(value_types.ACTIONS),
}


_FORMS = {
    "subject": "write user:EMAIL, group:NAME or serviceaccount:NAME",
    "region": "an AWS region such as eu-west-1",
    "account_id": '12 digits, quoted: "123456789012"',
    "zone": "a DNS zone such as ml.example.com",
    "issuer": "an https:// URL",
    "idp_metadata_url": "an https:// URL",
    "url": "an ldap:// or ldaps:// URL",
    "bucket": "3 to 63 lowercase letters, digits, '.' and '-'",
    "env": "an environment variable name such as DATABASE_URL",
    "secret": "a secret name in lowercase letters, digits, '-', '.', '/' and '_'",
    "owners": "an e-mail address",
}


def anchor(path: Path) -> tuple[str, Path]:
    """(`model 'churn-gb'`, rest of the path) for a path inside that model."""
    for index in range(len(path) - 2, -1, -1):
        section = path[index]
        if isinstance(section, str) and section in _KINDS:
            item = path[index + 1]
            named = f"#{item + 1}" if isinstance(item, int) else f"'{item}'"
            return f"{_KINDS[section]} {named}", path[index + 2 :]
    if len(path) > 1 and isinstance(path[0], str):
        return f"section '{path[0]}'", path[1:]
    return "the top level", path


def describe(path: Path) -> str:
    return anchor(path)[0]


def _unwrap(tp: Any) -> list[Any]:
    """Concrete alternatives of a type: Annotated, Optional and Union removed."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        out: list[Any] = []
        for arg in typing.get_args(tp):
            out.extend(_unwrap(arg))
        return out
    return [tp]


def _tagged(tp: Any, tag: str) -> Any | None:
    """The union member annotated with pydantic `Tag(tag)`, if any."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        inner, *meta = typing.get_args(tp)
        if any(isinstance(m, Tag) and m.tag == tag for m in meta):
            return inner
        return _tagged(inner, tag)
    if origin is typing.Union or origin is types.UnionType:
        for arg in typing.get_args(tp):
            found = _tagged(arg, tag)
            if found is not None:
                return found
    return None


def _field(model: type[BaseModel], name: str) -> Any | None:
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias):
            return info.annotation
    return None


def _step(tp: Any, segment: str | int) -> Any | None:
    if isinstance(segment, str):
        tagged = _tagged(tp, segment)
        if tagged is not None:
            return tagged
    for alt in _unwrap(tp):
        origin = typing.get_origin(alt)
        if origin is dict and isinstance(segment, str):
            return typing.get_args(alt)[1]
        if origin is list and isinstance(segment, int):
            return typing.get_args(alt)[0]
        if isinstance(alt, type) and issubclass(alt, BaseModel) and isinstance(segment, str):
            found = _field(alt, segment)
            if found is not None:
                return found
            literal = alt.model_fields.get("type")
            if literal is not None and segment in typing.get_args(literal.annotation):
                return alt
    return None


def keys_at(loc: Sequence[str | int]) -> list[str]:
    """The keys the language accepts at a pydantic error location."""
    tp: Any = Spec
    for segment in loc:
        tp = _step(tp, segment)
        if tp is None:
            return []
    keys: list[str] = []
    for alt in _unwrap(tp):
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            keys.extend(info.alias or name for name, info in alt.model_fields.items())
    return sorted(set(keys))


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string '{value}'"
    return f"{type(value).__name__} {value}"


def _expected(ctx: dict[str, Any]) -> list[str]:
    """The choices of a Literal, from pydantic's "'a', 'b' or 3" rendering."""
    text = str(ctx.get("expected", ""))
    return [part.strip().strip("'") for part in re.split(r",\s*|\s+or\s+", text) if part.strip()]


def tags_at(loc: Sequence[str | int]) -> list[str]:
    """The `type:` values a discriminated union accepts at a pydantic error location."""
    tp: Any = Spec
    for segment in loc:
        tp = _step(tp, segment)
        if tp is None:
            return []
    tags: list[str] = []
    for alt in _unwrap(tp):
        if isinstance(alt, type) and issubclass(alt, BaseModel) and "type" in alt.model_fields:
            tags.extend(str(t) for t in typing.get_args(alt.model_fields["type"].annotation))
    return tags


def _diagnostic(error: Any, sourcemap: SourceMap) -> Diagnostic:
    kind: str = error["type"]
    loc: tuple[str | int, ...] = tuple(error["loc"])
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    located = sourcemap.locate(loc, key=True if kind in ("extra_forbidden", "missing", "union_tag_not_found") else None)
    span = located.span if located else None
    path = located.path if located else loc
    name = str(loc[-1]) if loc else ""
    # for a missing key, the path ends at the object that lacks it
    where, rest = anchor(path if kind != "missing" or path != loc else path[:-1])
    label = format_path(rest) or "value"
    if kind == "extra_forbidden":
        allowed = keys_at(loc[:-1])
        parent_where, parent_rest = anchor(path[:-1])
        parent = f"'{format_path(parent_rest)}' of {parent_where}" if parent_rest else parent_where
        hint: str | None
        if allowed in (["env"], ["key", "secret"]):
            hint = "a secret reference is either {secret: NAME} (with an optional key: PROPERTY) or {env: VAR}"
        else:
            hint = did_you_mean(name, allowed) or (f"allowed keys: {one_of(allowed, 40)}" if allowed else None)
        return Diagnostic("NEB201", f"unknown key '{name}' in {parent}", span, hint, path=path)
    owner = f"'{label}' of {where}" if rest else where
    if kind == "missing":
        return Diagnostic("NEB202", f"{owner} is missing required key '{name}'", span, f"add '{name}:'", path=path)
    if kind == "union_tag_not_found":
        tags = tags_at(loc)
        return Diagnostic(
            "NEB202", f"{owner} is missing required key 'type'", span, f"set type: to one of {one_of(tags)}", path=path
        )
    if kind == "union_tag_invalid":
        tags = tags_at(loc)
        tag = str(ctx.get("tag", ""))
        written = value.get("type") if isinstance(value, dict) else None
        if not isinstance(written, str):
            located_type = sourcemap.locate((*loc, "type"))
            return Diagnostic(
                "NEB203",
                f"'type' of {where} must be a string, not {_shown(written)}",
                located_type.span if located_type else span,
                f"one of {one_of(tags)}",
                path=path,
            )
        located_type = sourcemap.locate((*loc, "type"))
        return Diagnostic(
            "NEB205",
            f"unknown type '{tag}' for {where}",
            located_type.span if located_type else span,
            did_you_mean(tag, tags) or f"one of {one_of(tags)}",
            path=path,
        )
    if kind in ("literal_error", "enum"):
        choices = _expected(ctx)
        if len(path) >= 2 and path[-2] == "columns" and not rest:
            label = "column type"
        if isinstance(value, str) and value in choices:
            hint = f"write {value} without quotes: it is a number here"
        else:
            hint = (did_you_mean(value, choices) if isinstance(value, str) else None) or f"one of {one_of(choices)}"
        return Diagnostic("NEB205", f"{_shown(value)} is not a valid '{label}' for {where}", span, hint, path=path)
    if kind == "literal_secret":
        return Diagnostic(
            "NEB204",
            f"'{label}' of {where} is a literal secret; secrets are written by reference",
            span,
            f"write {label}: {{secret: NAME}} to read it from the secret store, or {label}: {{env: VAR}} "
            "to read it from an environment variable; then remove the value from git history",
            path=path,
        )
    if kind in _HINTS:
        return Diagnostic("NEB203", f"{error['msg']} ('{label}' of {where})", span, _HINTS[kind], path=path)
    if kind == "string_pattern_mismatch":
        field = next((str(p) for p in reversed(path) if isinstance(p, str)), name)
        hint = _FORMS.get(field) or _FORMS.get(name) or f"expected the form {ctx.get('pattern')}"
        return Diagnostic("NEB203", f"{_shown(value)} is not a valid '{label}' for {where}", span, hint, path=path)
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return Diagnostic("NEB203", f"'{label}' of {where} must be a mapping, not {_shown(value)}", span, path=path)
    if kind == "list_type":
        return Diagnostic("NEB203", f"'{label}' of {where} must be a list, not {_shown(value)}", span, path=path)
    message = str(error["msg"])
    message = message[0].lower() + message[1:] if message else message
    return Diagnostic("NEB203", f"'{label}' of {where}: {message}, got {_shown(value)}", span, path=path)


_SCALAR_TYPES = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
}
_MEMBER_TAGS = ("<", "str", "int", "float", "bool")


def _place(error: Any) -> tuple[str, ...]:
    return tuple(str(p) for p in error["loc"] if not str(p).startswith(_MEMBER_TAGS))


def _merge_scalar_unions(errors: list[Any]) -> list[Any]:
    """`str | int | float | bool` fails once per member; say it once, naming all of them."""
    groups: dict[tuple[str, ...], list[Any]] = {}
    for error in errors:
        if error["type"] in _SCALAR_TYPES:
            groups.setdefault(_place(error), []).append(error)
    merged: list[Any] = []
    done: set[tuple[str, ...]] = set()
    for error in errors:
        group = groups.get(_place(error), []) if error["type"] in _SCALAR_TYPES else []
        if len(group) < 2:
            merged.append(error)
        elif _place(error) not in done:
            done.add(_place(error))
            kinds = [name for kind, name in _SCALAR_TYPES.items() if any(e["type"] == kind for e in group)]
            if "a number" in kinds and "an integer" in kinds:
                kinds.remove("an integer")
            text = ", ".join(kinds[:-1]) + f" or {kinds[-1]}"
            merged.append({**error, "msg": f"Input should be {text}"})
    return merged


def validate(document: Document) -> tuple[Spec | None, tuple[Diagnostic, ...]]:
    """The schema pass. Never raises for a user mistake."""
    if document.value is None:
        return None, ()
    try:
        return Spec.model_validate(document.value), ()
    except ValidationError as err:
        seen: set[tuple[str, str | None, str]] = set()
        out: list[Diagnostic] = []
        for error in _merge_scalar_unions(err.errors(include_url=False)):
            diagnostic = _diagnostic(error, document.sourcemap)
            key = (diagnostic.code, str(diagnostic.span), format_path(diagnostic.path))
            if key not in seen:
                seen.add(key)
                out.append(diagnostic)
        return None, tuple(out)

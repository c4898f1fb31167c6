"""Derived-feature expressions of preprocessing: `charges_per_month: total_charges / (tenure_months + 1)`.

A small, closed arithmetic language over column names, parsed with Python's own
parser and then checked node by node, so nothing but arithmetic ever runs: numbers,
columns, `+ - * / // % **`, unary minus, comparisons (true is 1.0), parentheses and
the functions in FUNCTIONS. `validate` uses `parse` to point at a bad expression
before anything runs; the runtime evaluates the same tree over whole columns.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

FUNCTIONS: dict[str, int] = {
    "log": 1,
    "log1p": 1,
    "exp": 1,
    "sqrt": 1,
    "abs": 1,
    "round": 1,
    "minimum": 2,
    "maximum": 2,
}
"""Function name -> number of arguments."""

_BINARY = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_COMPARE = (ast.Gt, ast.GtE, ast.Lt, ast.LtE, ast.Eq, ast.NotEq)


class ExpressionError(ValueError):
    """What is wrong with an expression, and at which character (0-based) when known."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True)
class Expression:
    text: str
    tree: ast.expr
    columns: tuple[str, ...]
    """The columns it reads, in order of first use."""

    def evaluate(self, column: Callable[[str], Any], functions: Mapping[str, Callable[..., Any]]) -> Any:
        """Evaluate over whatever `column(name)` returns (numpy arrays, pandas Series, numbers)."""
        return _evaluate(self.tree, column, functions)


def parse(text: str) -> Expression:
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as err:
        offset = (err.offset - 1) if err.offset else None
        raise ExpressionError(f"not an expression: {err.msg}", offset) from None
    columns: list[str] = []
    _check(tree, columns)
    return Expression(text, tree, tuple(dict.fromkeys(columns)))


def _check(node: ast.AST, columns: list[str]) -> None:
    where = getattr(node, "col_offset", None)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ExpressionError(f"only numbers may be written as values, not {node.value!r}", where)
    elif isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise ExpressionError(f"'{node.id}' is a function: call it, as {node.id}(...)", where)
        columns.append(node.id)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, _BINARY):
        _check(node.left, columns)
        _check(node.right, columns)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        _check(node.operand, columns)
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], _COMPARE):
        _check(node.left, columns)
        _check(node.comparators[0], columns)
    elif isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(f"unknown function {ast.unparse(node.func)!r}; known: {known}", where)
        if node.keywords or len(node.args) != FUNCTIONS[name]:
            raise ExpressionError(f"{name}() takes {FUNCTIONS[name]} argument(s)", where)
        for arg in node.args:
            _check(arg, columns)
    else:
        raise ExpressionError(f"'{ast.unparse(node)}' is not arithmetic over columns", where)


def _evaluate(node: ast.expr, column: Callable[[str], Any], functions: Mapping[str, Callable[..., Any]]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return column(node.id)
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, column, functions)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left = _evaluate(node.left, column, functions)
        right = _evaluate(node.right, column, functions)
        op = node.op
        if isinstance(op, ast.Add):
            return left + right
        if isinstance(op, ast.Sub):
            return left - right
        if isinstance(op, ast.Mult):
            return left * right
        if isinstance(op, ast.Div):
            return left / right
        if isinstance(op, ast.FloorDiv):
            return left // right
        if isinstance(op, ast.Mod):
            return left % right
        return left**right
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, column, functions)
        right = _evaluate(node.comparators[0], column, functions)
        comparison = node.ops[0]
        if isinstance(comparison, ast.Gt):
            result = left > right
        elif isinstance(comparison, ast.GtE):
            result = left >= right
        elif isinstance(comparison, ast.Lt):
            result = left < right
        elif isinstance(comparison, ast.LtE):
            result = left <= right
        elif isinstance(comparison, ast.Eq):
            result = left == right
        else:
            result = left != right
        return result * 1.0
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return functions[node.func.id](*(_evaluate(arg, column, functions) for arg in node.args))
    raise ExpressionError(f"cannot evaluate {ast.unparse(node)!r}")  # parse() admits nothing else

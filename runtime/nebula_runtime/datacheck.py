"""Check a data file against its dataset's declared format and columns, streaming.

CSV, JSON (JSON Lines, or one array of objects) and Parquet are read in record batches
with pyarrow, so a file of any size is checked in bounded memory at C speed. A problem
names the column, the rule, how many rows break it and the first such row (1-based, the
header not counted; for CSV the line is row + 1). When pyarrow rejects a value it cannot
convert, the file is scanned again in Python to find the row and column at fault.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

# A server's workers are its parallelism: pyarrow's own thread pools would only add
# threads, each with its allocator caches (tens of MB per upload), for no speed here.
pa.set_cpu_count(1)
pa.set_io_thread_count(1)
# The C library's allocator, not jemalloc: a check's buffers are short-lived, and jemalloc
# kept about 15 MB more of them resident per worker (a 1 GiB upload peaked at 159 MB, 144 MB now).
pa.set_memory_pool(pa.system_memory_pool())

MAX_HEADER = 1 << 20
csv.field_size_limit(64 << 20)  # one cell may be long (text, JSON); the default 128 KiB would call it an error
BATCH_BYTES = 256 << 10
"""pyarrow's block: 256 KiB keeps a check's working memory near 20 MB (1 MiB: 60 MB) for 10% more time."""
ARROW_TYPES = {
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "category": pa.string(),
    "datetime": pa.string(),  # parsed below, so "2026-11-01", "...T10:00:00Z" and offsets all pass
    "image": pa.string(),
}
TRUE = ("1", "true", "True", "TRUE")
FALSE = ("0", "false", "False", "FALSE")


@dataclass
class Problem:
    column: str | None
    rule: str
    message: str
    row: int | None = None
    count: int = 1
    value: Any = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["value"] is not None:
            data["value"] = str(data["value"])[:200]
        return data


class DataError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems[:3]))
        self.problems = problems


@dataclass
class _Column:
    name: str
    type: str
    min: float | None = None
    max: float | None = None
    values: list[Any] | None = None
    unique: bool = False
    missing: float = 0.0
    nulls: int = 0
    seen: set[Any] = field(default_factory=set)
    low: Any = None
    high: Any = None


@dataclass
class Report:
    rows: int
    columns: list[dict[str, Any]]
    extra_columns: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": self.columns, "extra_columns": self.extra_columns}


def _columns(declared: Mapping[str, Any]) -> dict[str, _Column]:
    result = {}
    for name, spec in declared.items():
        spec = spec if isinstance(spec, Mapping) else {"type": spec}
        result[name] = _Column(
            name,
            str(spec.get("type", "string")),
            spec.get("min"),
            spec.get("max"),
            spec.get("values"),
            bool(spec.get("unique")),
            float(spec.get("missing") or 0.0),
        )
    return result


def _parse_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _convertible(kind: str, text: str) -> bool:
    """Whether one CSV cell converts to a column type, as pyarrow would take it."""
    if text == "":
        return True  # a missing value; counted against `missing`
    if kind == "integer":
        try:
            int(text)
        except ValueError:
            return False
        return True
    if kind == "float":
        try:
            value = float(text)
        except ValueError:
            return False
        return not math.isnan(value) or text.lower() == "nan"
    if kind == "boolean":
        return text in TRUE or text in FALSE
    if kind == "datetime":
        return _parse_datetime(text)
    return True


# --- readers -------------------------------------------------------------------------------------------


def _csv_batches(source: str | IO[bytes], columns: dict[str, _Column]) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    import pyarrow.csv as pcsv

    if isinstance(source, str):
        header = describe_csv_header(source)
        path: Any = source
    else:  # a stream: read the header line here, then hand pyarrow the header and the rest
        first = source.readline(MAX_HEADER)
        header = _header(first)
        path = _Prefixed(first, source)
    types = {name: pa.string() for name in header}  # undeclared columns are text: no guessing per block
    types.update({c.name: ARROW_TYPES.get(c.type, pa.string()) for c in columns.values()})
    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=BATCH_BYTES, use_threads=False),
        convert_options=pcsv.ConvertOptions(
            column_types=types,
            strings_can_be_null=False,
            true_values=list(TRUE),
            false_values=list(FALSE),
        ),
    )
    return list(reader.schema.names), iter(reader)


class _Prefixed(io.RawIOBase):
    """Bytes already read, then the rest of a stream."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        self.prefix = prefix
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.prefix:
            n = min(len(view), len(self.prefix))
            view[:n] = self.prefix[:n]
            self.prefix = self.prefix[n:]
            return n
        data = self.rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def _locate_csv(path: str, columns: dict[str, _Column]) -> Problem | None:
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        positions = [(i, columns[name]) for i, name in enumerate(header) if name in columns]
        for row, cells in enumerate(reader, start=1):
            if len(cells) != len(header):
                return Problem(
                    None,
                    "shape",
                    f"row {row} (line {reader.line_num}) has {len(cells)} fields; the header has {len(header)}",
                    row,
                )
            for index, column in positions:
                if not _convertible(column.type, cells[index]):
                    return _type_problem(column, row, cells[index], f" (line {reader.line_num})")
    return None


def _type_problem(column: _Column, row: int, value: Any, where: str = "") -> Problem:
    return Problem(
        column.name,
        "type",
        f"column {column.name!r}: row {row}{where} holds {str(value)[:80]!r}, which is not a{'n' if column.type[0] in 'aeiou' else ''} {column.type}",
        row,
        1,
        value,
    )


def _json_batches(path: str, columns: dict[str, _Column]) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip()
    if head.startswith(b"["):
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise DataError(
                [Problem(None, "shape", "a JSON file holds an array of objects, or one object per line (JSON Lines)")]
            )
        names = sorted({k for item in data for k in item})
        for row, item in enumerate(data, start=1):
            _check_json_row(item, row, columns)
        schema = pa.schema(
            [(n, ARROW_TYPES.get(columns[n].type, pa.string()) if n in columns else pa.string()) for n in names]
        )
        rows = [{n: _json_cell(item.get(n), columns.get(n)) for n in names} for item in data]
        return names, iter(pa.Table.from_pylist(rows, schema=schema).to_batches(max_chunksize=65536))
    import pyarrow.json as pjson

    schema = pa.schema([(c.name, ARROW_TYPES.get(c.type, pa.string())) for c in columns.values()])
    reader = pjson.open_json(
        path,
        read_options=pjson.ReadOptions(block_size=BATCH_BYTES),
        parse_options=pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
    )
    return list(reader.schema.names), iter(reader)


def _json_cell(value: Any, column: _Column | None) -> Any:
    if column is None or value is None:
        return None if value is None else (value if isinstance(value, str) else json.dumps(value))
    if column.type in ("string", "category", "datetime", "image") and not isinstance(value, str):
        return json.dumps(value)
    return value


def _check_json_row(item: Mapping[str, Any], row: int, columns: dict[str, _Column]) -> None:
    for name, column in columns.items():
        value = item.get(name)
        if value is None:
            continue
        ok = {
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
            "datetime": isinstance(value, str) and _parse_datetime(value),
        }.get(column.type, isinstance(value, str))
        if not ok:
            raise DataError([_type_problem(column, row, value)])


def _locate_json_lines(path: str, columns: dict[str, _Column]) -> Problem | None:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for row, line in enumerate(filter(str.strip, handle), start=1):
            try:
                item = json.loads(line)
            except ValueError as err:
                return Problem(None, "syntax", f"row {row} is not JSON: {err}", row)
            if not isinstance(item, dict):
                return Problem(None, "shape", f"row {row} is not a JSON object", row)
            try:
                _check_json_row(item, row, columns)
            except DataError as err:
                return err.problems[0]
    return None


def _parquet_batches(path: str, columns: dict[str, _Column]) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(path)
    schema = handle.schema_arrow
    problems = []
    for column in columns.values():
        if column.name not in schema.names:
            continue
        kind = schema.field(column.name).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        fits = {
            "integer": pa.types.is_integer(kind),
            "float": pa.types.is_integer(kind) or pa.types.is_floating(kind),
            "boolean": pa.types.is_boolean(kind),
            "datetime": pa.types.is_timestamp(kind)
            or pa.types.is_date(kind)
            or pa.types.is_string(kind)
            or pa.types.is_large_string(kind),
        }.get(column.type, pa.types.is_string(kind) or pa.types.is_large_string(kind))
        if not fits:
            problems.append(
                Problem(column.name, "type", f"column {column.name!r} is stored as {kind}, not as {column.type}")
            )
    if problems:
        raise DataError(problems)
    wanted = [n for n in schema.names if n in columns]

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in handle.iter_batches(batch_size=65536, columns=wanted):
            arrays = []
            for name, array in zip(batch.schema.names, batch.columns, strict=True):
                column = columns[name]
                if pa.types.is_dictionary(array.type):
                    array = array.dictionary_decode()
                if column.type == "datetime" and not (
                    pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
                ):
                    array = pc.cast(array, pa.timestamp("us")).cast(pa.string())
                elif column.type == "float":
                    array = pc.cast(array, pa.float64())
                arrays.append(array)
            yield pa.RecordBatch.from_arrays(arrays, names=list(batch.schema.names))

    return list(schema.names), batches()


# --- the checks --------------------------------------------------------------------------------------------


def _first(mask: pa.Array) -> int | None:
    index = pc.index(mask, True).as_py()
    return None if index is None or index < 0 else int(index)


class _Findings:
    def __init__(self) -> None:
        self.found: dict[tuple[str, str], Problem] = {}

    def add(self, column: _Column, rule: str, mask: pa.Array, offset: int, array: pa.Array, describe: str) -> None:
        count = pc.sum(mask).as_py() or 0
        if not count:
            return
        first = _first(mask)
        key = (column.name, rule)
        if key in self.found:
            self.found[key].count += count
            return
        value = array[first].as_py() if first is not None else None
        self.found[key] = Problem(column.name, rule, describe, offset + (first or 0) + 1, count, value)

    def problems(self) -> list[Problem]:
        result = []
        for problem in self.found.values():
            times = f"{problem.count} row{'s' if problem.count != 1 else ''}"
            problem.message = f"column {problem.column!r}: {times} {problem.message}, first at row {problem.row} ({str(problem.value)[:80]!r})"
            result.append(problem)
        return result


def check_batches(names: list[str], batches: Iterator[pa.RecordBatch], columns: dict[str, _Column]) -> Report:
    missing_columns = [c for c in columns if c not in names]
    if missing_columns:
        raise DataError(
            [
                Problem(
                    c, "required", f"column {c!r} is declared but not in the file (it has: {', '.join(names[:20])})"
                )
                for c in missing_columns
            ]
        )
    findings = _Findings()
    rows = 0
    for batch in batches:
        for name, column in columns.items():
            array = batch.column(batch.schema.get_field_index(name))
            column.nulls += array.null_count
            present = pc.is_valid(array)
            if column.type == "datetime":
                parsed = [_parse_datetime(v) if v is not None else True for v in array.to_pylist()]
                bad = pa.array([not ok for ok in parsed])
                findings.add(column, "type", bad, rows, array, "are not dates or times (ISO 8601)")
            if column.min is not None and column.type in ("integer", "float"):
                findings.add(
                    column,
                    "min",
                    pc.fill_null(pc.less(array, column.min), False),
                    rows,
                    array,
                    f"are below the minimum {column.min:g}",
                )
            if column.max is not None and column.type in ("integer", "float"):
                findings.add(
                    column,
                    "max",
                    pc.fill_null(pc.greater(array, column.max), False),
                    rows,
                    array,
                    f"are above the maximum {column.max:g}",
                )
            if column.values is not None:
                allowed = pa.array(
                    [str(v) if column.type in ("string", "category") else v for v in column.values]
                ).cast(array.type)
                outside = pc.and_(present, pc.invert(pc.is_in(array, value_set=allowed)))
                findings.add(
                    column, "values", pc.fill_null(outside, False), rows, array, f"are not one of {column.values}"
                )
            if column.unique:
                values = array.drop_null().to_pylist()
                duplicates = len(values) - len(set(values)) + len(column.seen.intersection(values))
                if duplicates:
                    seen_before = column.seen
                    local: set[Any] = set()
                    mask = []
                    for v in array.to_pylist():
                        dup = v is not None and (v in seen_before or v in local)
                        mask.append(dup)
                        if v is not None:
                            local.add(v)
                    findings.add(column, "unique", pa.array(mask), rows, array, "repeat a value (the column is unique)")
                column.seen.update(values)
            if column.type in ("integer", "float") and len(array) - array.null_count:
                low, high = pc.min_max(array).values()
                column.low = low.as_py() if column.low is None else min(column.low, low.as_py())
                column.high = high.as_py() if column.high is None else max(column.high, high.as_py())
        rows += batch.num_rows
    problems = findings.problems()
    for column in columns.values():
        if rows and column.nulls / rows > column.missing:
            problems.append(
                Problem(
                    column.name,
                    "missing",
                    f"column {column.name!r}: {column.nulls} of {rows} values are missing "
                    f"({column.nulls / rows:.1%}; at most {column.missing:.1%} allowed)",
                    None,
                    column.nulls,
                )
            )
    if problems:
        raise DataError(problems)
    described = [
        {
            "name": c.name,
            "type": c.type,
            "missing": c.nulls,
            **({"min": c.low, "max": c.high} if c.low is not None else {}),
        }
        for c in columns.values()
    ]
    return Report(rows, described, [n for n in names if n not in columns])


def check_file(path: str, fmt: str, declared: Mapping[str, Any]) -> Report:
    """Check the file; a `DataError` lists what is wrong."""
    columns = _columns(declared)
    try:
        if fmt == "csv":
            names, batches = _csv_batches(path, columns)
        elif fmt == "json":
            names, batches = _json_batches(path, columns)
        elif fmt == "parquet":
            names, batches = _parquet_batches(path, columns)
        else:
            raise DataError([Problem(None, "format", f"cannot check the format {fmt!r}")])
        return check_batches(names, batches, columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError, csv.Error) as err:
        located: Problem | None = None
        try:
            if fmt == "csv":
                located = _locate_csv(path, columns)
            elif fmt == "json":
                located = _locate_json_lines(path, columns)
        except (csv.Error, UnicodeDecodeError) as failure:
            located = Problem(None, "syntax", f"the file is not valid {fmt.upper()}: {failure}")
        if located is None:
            located = Problem(None, "syntax", f"the file is not valid {fmt.upper()}: {str(err).splitlines()[0][:300]}")
        raise DataError([located]) from None


def sniff_format(filename: str) -> str | None:
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return {"csv": "csv", "json": "json", "jsonl": "json", "ndjson": "json", "parquet": "parquet", "pq": "parquet"}.get(
        suffix
    )


def describe_csv_header(path: str) -> list[str]:
    with open(path, "rb") as handle:
        return _header(handle.readline(MAX_HEADER))


def _header(first: bytes) -> list[str]:
    """The column names in a CSV file's first line (read with at most MAX_HEADER bytes)."""
    if len(first) >= MAX_HEADER and not first.endswith(b"\n"):
        raise DataError([Problem(None, "shape", f"the header line is longer than {MAX_HEADER} bytes")])
    return next(csv.reader([first.decode("utf-8", "replace")]), [])


class StreamCheck:
    """Check a CSV or JSON Lines file while it is being received.

    The receiver writes each chunk into a pipe; a thread parses the other end with
    pyarrow (which releases the GIL), so checking overlaps receiving and a file is
    read once. Formats that need the whole file (Parquet, a JSON array) and values
    pyarrow rejects are checked from the stored file in `finish`.
    """

    def __init__(self, fmt: str, declared: Mapping[str, Any]) -> None:
        self.fmt = fmt
        self.declared = declared
        read_end, write_end = os.pipe()
        self._reader = io.BufferedReader(io.FileIO(read_end, "rb"), buffer_size=BATCH_BYTES)
        self._writer: IO[bytes] | None = os.fdopen(write_end, "wb", buffering=0)
        self.report: Report | None = None
        self.error: BaseException | None = None
        self.whole_file = fmt == "parquet"
        self._thread = threading.Thread(target=self._run, name="nebula-upload-check", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            columns = _columns(self.declared)
            if self.fmt == "csv":
                names, batches = _csv_batches(self._reader, columns)
            elif self.fmt == "json" and self._reader.peek(1)[:1] not in (b"[", b" ", b"\n", b"\t", b"\r", b""):
                import pyarrow.json as pjson

                schema = pa.schema([(c.name, ARROW_TYPES.get(c.type, pa.string())) for c in columns.values()])
                stream = pjson.open_json(
                    self._reader,
                    read_options=pjson.ReadOptions(block_size=BATCH_BYTES, use_threads=False),
                    parse_options=pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
                )
                names, batches = list(stream.schema.names), iter(stream)
            else:
                self.whole_file = True
                return
            self.report = check_batches(names, batches, columns)
        except BaseException as err:  # reported by finish(); the receiver stops feeding
            self.error = err
        finally:
            self._reader.close()

    def write(self, data: bytes) -> None:
        if self._writer is None or self.error is not None or (self.whole_file and not self._thread.is_alive()):
            return
        try:
            self._writer.write(data)
        except BrokenPipeError:  # the checker stopped early (a problem found, or a whole-file format)
            self.close()

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(BrokenPipeError):
                self._writer.close()
            self._writer = None

    def finish(self, path: str) -> Report:
        """The report for the complete file at `path`; a `DataError` when it breaks the declared columns."""
        self.close()
        self._thread.join()
        if self.whole_file:
            return check_file(path, self.fmt, self.declared)
        if isinstance(self.error, DataError):
            raise self.error
        if self.error is not None:
            return check_file(path, self.fmt, self.declared)  # let the file check find the row at fault
        assert self.report is not None
        return self.report

    def abandon(self) -> None:
        self.close()
        self._thread.join()

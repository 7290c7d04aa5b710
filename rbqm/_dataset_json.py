"""CDISC Dataset-JSON (v1.1, and v1.0 for reading) as polars frames, with the stdlib ``json`` module.

A Dataset-JSON file is one JSON object: dataset metadata (``name``, ``label``,
``records``, ...), ``columns`` (one object per variable with ``itemOID``, ``name``,
``label``, ``dataType`` and optional ``length``) and ``rows`` (one array per record,
values in column order). The NDJSON form (``.ndjson``) puts the metadata object, without
``rows``, on the first line and one row array on each following line; it is read in
batches of lines, so memory holds one batch of Python values at a time.

``dataType`` maps to polars dtypes as follows: ``string``, ``URI``, ``date``, ``datetime``
and ``time`` -> String (dates stay ISO 8601 strings, as SDTM --DTC variables); ``integer``
-> Int64; ``decimal``, ``float`` and ``double`` -> Float64 (a number written as a JSON
string, as Dataset-JSON 1.1 writes decimals, is parsed); ``boolean`` -> Boolean. Any
problem (not JSON, no ``columns`` or ``rows``, a row of the wrong length, a value that is
not of its column's type, fewer rows than ``records`` says) raises ``StudyFormatError``
naming the file and, where there is one, the line, row and column.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import IO, Any

import polars as pl

from rbqm.errors import StudyFormatError

__all__ = ["DATA_TYPES", "read_dataset_json", "write_dataset_json"]

#: polars dtype of each Dataset-JSON ``dataType``.
DATA_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "URI": pl.String(),
    "date": pl.String(),
    "datetime": pl.String(),
    "time": pl.String(),
    "integer": pl.Int64(),
    "decimal": pl.Float64(),
    "float": pl.Float64(),
    "double": pl.Float64(),
    "boolean": pl.Boolean(),
}
_VERSION = "1.1.0"
_BATCH_LINES = 100_000
_INT64_LIMIT = 2.0**63


def read_dataset_json(path: Path, *, n_rows: int | None = None) -> pl.DataFrame:
    """Read a Dataset-JSON file (``.json``) or its NDJSON form (``.ndjson``).

    With ``n_rows``, only the first ``n_rows`` rows (an NDJSON file is read only that far).

    Raises
    ------
    StudyFormatError
        When the file is not valid (Dataset-)JSON; the message names the file and what is wrong.

    Examples
    --------
    >>> import json, tempfile
    >>> doc = {"datasetJSONVersion": "1.1.0", "name": "DM", "records": 1,
    ...        "columns": [{"itemOID": "IT.DM.USUBJID", "name": "USUBJID", "dataType": "string"},
    ...                    {"itemOID": "IT.DM.AGE", "name": "AGE", "dataType": "integer"}],
    ...        "rows": [["S-1", 61]]}
    >>> path = Path(tempfile.mkdtemp()) / "dm.json"
    >>> _ = path.write_text(json.dumps(doc), encoding="utf-8")
    >>> read_dataset_json(path).rows()
    [('S-1', 61)]
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            if path.suffix.lower() == ".ndjson":
                return _read_ndjson(handle, path, n_rows=n_rows)
            try:
                doc = json.load(handle)
            except json.JSONDecodeError as exc:
                raise StudyFormatError(f"{path}: not valid JSON (line {exc.lineno} column {exc.colno}: "
                                       f"{exc.msg}); the file may be truncated") from exc
    except UnicodeDecodeError as exc:
        raise StudyFormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                               "Dataset-JSON must be UTF-8") from exc
    if not isinstance(doc, dict):
        raise StudyFormatError(f"{path}: not Dataset-JSON (the top level is not a JSON object)")
    doc, v1_0 = _from_v1_0(doc, path)
    columns = _columns(doc, path)
    rows = doc.get("rows")
    if not isinstance(rows, list):
        raise StudyFormatError(f"{path}: not Dataset-JSON (no 'rows' array)")
    frame = _frame(rows if n_rows is None else rows[:n_rows], columns, path, first_row=1)
    if n_rows is None:
        _check_records(doc, frame.height, path)
    return frame.drop("ITEMGROUPDATASEQ", strict=False) if v1_0 else frame  # 1.0's record counter


def _read_ndjson(handle: IO[str], path: Path, *, n_rows: int | None) -> pl.DataFrame:
    """Metadata from the first line, then the row arrays in batches of lines."""
    first = handle.readline()
    try:
        meta = json.loads(first)
    except json.JSONDecodeError as exc:
        raise StudyFormatError(f"{path}: line 1 (the metadata) is not valid JSON ({exc.msg})") from exc
    if not isinstance(meta, dict):
        raise StudyFormatError(f"{path}: not Dataset-JSON NDJSON (line 1 is not the metadata object)")
    columns = _columns(meta, path)
    frames, line = [], 2
    for batch, consumed in _batches(handle, min(n_rows or _BATCH_LINES, _BATCH_LINES)):
        frames.append(_frame(_parse_lines(batch, path, first_line=line), columns, path, first_row=line - 1,
                             first_line=line))
        line += consumed
        if n_rows is not None and line - 2 >= n_rows:
            return pl.concat(frames).head(n_rows)
    frame = pl.concat(frames) if frames else _frame([], columns, path, first_row=1)
    if n_rows is None:
        _check_records(meta, frame.height, path)
    return frame


def _batches(handle: IO[str], size: int) -> Iterator[tuple[list[str], int]]:
    """Up to ``size`` lines at a time, without trailing blank lines, and how many were read."""
    while batch := list(islice(handle, size)):
        consumed = len(batch)
        while batch and not batch[-1].strip():
            batch.pop()
        if batch:
            yield batch, consumed


def _parse_lines(lines: list[str], path: Path, *, first_line: int) -> list[Any]:
    """The row arrays of a batch of NDJSON lines, parsed in one ``json.loads`` call."""
    try:
        return json.loads("[" + ",".join(lines) + "]")
    except json.JSONDecodeError:
        pass
    for offset, line in enumerate(lines):  # error path only: name the bad line
        try:
            json.loads(line)
        except json.JSONDecodeError as exc:
            raise StudyFormatError(f"{path}: line {first_line + offset} is not valid JSON ({exc.msg}); "
                                   "the file may be truncated") from exc
    raise StudyFormatError(f"{path}: lines {first_line}-{first_line + len(lines) - 1} do not hold "
                           "one JSON array per line")


def _from_v1_0(doc: dict[str, Any], path: Path) -> tuple[dict[str, Any], bool]:
    """A Dataset-JSON 1.0 document (clinicalData or referenceData -> itemGroupData -> items,
    itemData) in the 1.1 shape, and whether it was 1.0."""
    data = doc.get("clinicalData") or doc.get("referenceData")
    if "columns" in doc or not isinstance(data, dict):
        return doc, False
    groups = data.get("itemGroupData")
    if not isinstance(groups, dict) or len(groups) != 1:
        raise StudyFormatError(f"{path}: Dataset-JSON 1.0 must hold exactly one dataset in itemGroupData")
    group = next(iter(groups.values()))
    items = group.get("items") if isinstance(group, dict) else None
    if not isinstance(items, list) or not isinstance(group.get("itemData"), list):
        raise StudyFormatError(f"{path}: Dataset-JSON 1.0 dataset without 'items' and 'itemData'")
    columns = [{**item, "dataType": item.get("type")} if isinstance(item, dict) else item for item in items]
    return {"records": group.get("records"), "columns": columns, "rows": group["itemData"]}, True


def _columns(meta: dict[str, Any], path: Path) -> list[tuple[str, str]]:
    """(name, dataType) of every column, checked."""
    columns = meta.get("columns")
    if not isinstance(columns, list) or not columns:
        raise StudyFormatError(f"{path}: not Dataset-JSON (no 'columns' list in the metadata)")
    out: list[tuple[str, str]] = []
    for i, column in enumerate(columns, start=1):
        name = column.get("name") if isinstance(column, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise StudyFormatError(f"{path}: column {i} of 'columns' has no name")
        kind = column.get("dataType")
        if kind not in DATA_TYPES:
            raise StudyFormatError(f"{path}: column {name} has dataType {kind!r}; "
                                   f"use one of {', '.join(DATA_TYPES)}")
        out.append((name.strip(), kind))
    names = [n for n, _ in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise StudyFormatError(f"{path}: column(s) {', '.join(twice)} appear more than once in 'columns'")
    return out


def _frame(rows: list[Any], columns: list[tuple[str, str]], path: Path, *, first_row: int,
           first_line: int | None = None) -> pl.DataFrame:
    """The rows (arrays in column order) as a frame of the columns' dtypes."""
    width = len(columns)
    if rows and (set(map(type, rows)) != {list} or set(map(len, rows)) != {width}):
        bad = next(i for i, r in enumerate(rows) if not isinstance(r, list) or len(r) != width)
        where = f"line {first_line + bad}" if first_line else f"row {first_row + bad}"
        got = f"{len(rows[bad])} values" if isinstance(rows[bad], list) else "is not an array"
        raise StudyFormatError(f"{path}: {where} {'has ' if isinstance(rows[bad], list) else ''}{got}, "
                               f"but there are {width} columns")
    values = list(zip(*rows, strict=True)) or [()] * width
    return pl.DataFrame([_series(name, list(vals), kind, path, first_row=first_row)
                         for (name, kind), vals in zip(columns, values, strict=True)])


def _series(name: str, values: list[Any], kind: str, path: Path, *, first_row: int) -> pl.Series:
    """One column: built directly when the JSON values already have the type, else parsed from text."""
    dtype = DATA_TYPES[kind]
    try:
        return pl.Series(name, values, dtype=dtype, strict=True)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        pass
    text = pl.Series(name, values, dtype=pl.String, strict=False)
    if dtype == pl.String:
        return text
    given = pl.col(name).str.strip_chars()
    if dtype == pl.Boolean:
        parsed = given.str.to_lowercase().replace_strict({"true": True, "false": False}, default=None,
                                                          return_dtype=pl.Boolean)
    else:
        number = given.cast(pl.Float64, strict=False)
        parsed = number
        if dtype == pl.Int64:
            whole = pl.when((number % 1 == 0) & (number.abs() < _INT64_LIMIT)).then(number).cast(pl.Int64)
            parsed = pl.coalesce(given.cast(pl.Int64, strict=False), whole)
    frame = pl.DataFrame([text]).with_columns(parsed.alias("parsed"))
    bad = frame.select(pl.arg_where((given != "") & pl.col("parsed").is_null()).first()).item()
    if bad is not None:
        raise StudyFormatError(f"{path}: column {name} is {kind}, "
                               f"but row {first_row + bad} holds {values[bad]!r}")
    return frame["parsed"].alias(name)


def _check_records(meta: dict[str, Any], height: int, path: Path) -> None:
    records = meta.get("records")
    if isinstance(records, int) and not isinstance(records, bool) and records != height:
        raise StudyFormatError(f"{path}: the metadata says records={records}, but the file holds "
                               f"{height} rows; the file may be truncated")


# ---- writing ----

def _data_type(dtype: pl.DataType) -> str | None:
    """The Dataset-JSON dataType of a polars dtype (None for nested types, which it cannot hold)."""
    if dtype.is_nested():
        return None
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "double"
    if dtype.is_decimal():
        return "decimal"
    return {pl.Date: "date", pl.Datetime: "datetime", pl.Time: "time"}.get(dtype.base_type(), "string")


def write_dataset_json(frame: pl.DataFrame, path: Path, *, name: str, label: str,
                       labels: Mapping[str, str] | None = None, ndjson: bool = False) -> None:
    """Write ``frame`` as Dataset-JSON 1.1 (``ndjson=False``) or its NDJSON form.

    ``label`` is the dataset label and ``labels`` the column labels (default: the column
    names). Strings, integers, floats (``double``) and booleans are written as JSON values,
    decimals as strings (as the standard asks), dates and times as ISO 8601 strings. NaN is
    written as null (missing); an infinite float or a nested column raises ``StudyFormatError``.
    """
    path = Path(path)
    kinds = {c: _data_type(t) for c, t in frame.schema.items()}
    nested = [c for c, k in kinds.items() if k is None]
    if nested:
        raise StudyFormatError(f"{path}: column(s) {', '.join(nested)} hold lists or structs, "
                               "which Dataset-JSON cannot store")
    floats = [c for c, t in frame.schema.items() if t.is_float()]
    for col in floats:
        inf = frame.select(pl.arg_where(pl.col(col).is_infinite()).first()).item()
        if inf is not None:
            raise StudyFormatError(f"{path}: column {col} row {inf + 1} holds {frame[col][inf]!r}, "
                                   "which JSON cannot store")
    as_text = [c for c, k in kinds.items()
               if k in ("decimal", "date", "time", "string") and frame.schema[c] != pl.String]
    data = frame.with_columns(pl.col(floats).fill_nan(None), pl.col(as_text).cast(pl.String),
                              pl.col(c for c, k in kinds.items() if k == "datetime")
                              .dt.to_string("%Y-%m-%dT%H:%M:%S%.f"))
    strings = [c for c, k in kinds.items() if k == "string"]
    lengths = dict(zip(strings, data.select(pl.col(strings).str.len_chars().max()).row(0), strict=True)) \
        if strings and data.height else {}
    stem = name.upper()
    labels = labels or {}
    meta = {
        "datasetJSONCreationDateTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        "datasetJSONVersion": _VERSION,
        "originator": "rbqm",
        "sourceSystem": {"name": "rbqm", "version": _rbqm_version()},
        "itemGroupOID": f"IG.{stem}",
        "records": frame.height,
        "name": stem,
        "label": label,
        "columns": [
            {"itemOID": f"IT.{stem}.{c}", "name": c, "label": labels.get(c, c), "dataType": k}
            | ({"length": max(lengths.get(c) or 1, 1)} if k == "string" else {})
            for c, k in kinds.items()
        ],
    }
    # each row as a JSON array, encoded by polars (no loop over rows): ["S-1",61,1.5,null]
    value = [pl.struct(pl.col(c).alias("v")).struct.json_encode().str.slice(len('{"v":')).str.head(-1)
             for c in data.columns]
    with path.open("w", encoding="utf-8", newline="\n") as out:
        head = json.dumps(meta, ensure_ascii=False)
        out.write(head + "\n" if ndjson else head[:-1] + ', "rows": [')
        for i, chunk in enumerate(data.iter_slices(_BATCH_LINES)):
            rows = chunk.select(pl.concat_str([pl.lit("["), pl.concat_str(value, separator=","), pl.lit("]")])
                                .alias("row")).to_series().to_list()
            out.write("\n".join(rows) + "\n" if ndjson else ("," if i else "") + ",".join(rows))
        if not ndjson:
            out.write("]}")


def _rbqm_version() -> str:
    from rbqm import __version__

    return __version__

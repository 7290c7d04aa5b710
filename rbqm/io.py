"""Reading and writing the tables of a study folder in Parquet, CSV or SAS XPORT.

Whatever the file format, a table read back has the documented dtypes
(``rbqm.schema.polars_schema``): strings with empty values as null, integers as
Int64, floats as Float64, dates as ISO 8601 strings. So the same study written as
Parquet, CSV and XPT reads back to identical frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl
import pyreadstat

from rbqm.errors import SchemaError, StudyFormatError
from rbqm.schema import TABLE_NAMES, polars_schema, table

__all__ = ["FORMATS", "Format", "write_table", "read_table", "scan_table", "find_tables", "read_study",
           "scan_study", "conform"]

Format = Literal["parquet", "csv", "xpt"]
FORMATS: tuple[Format, ...] = ("parquet", "csv", "xpt")
_XPT_V5_NAME_LENGTH = 8


def conform(frame: pl.DataFrame, name: str, *, source: str) -> pl.DataFrame:
    """Cast the known columns of table ``name`` to their documented dtypes.

    Empty strings become null; numbers stored as text or as floats (XPT) are cast.
    Unknown columns are kept after the documented ones. ``source`` names the file in
    error messages.

    Raises
    ------
    SchemaError
        When a value cannot be read as its column's type; the message names the
        file, column, row (1-based, as in a spreadsheet without its header) and value.
    """
    schema = polars_schema(name)
    known = [c for c in schema if c in frame.columns]
    extras = [c for c in frame.columns if c not in schema]
    todo = [c for c in known if frame.schema[c] != schema[c] or (schema[c] == pl.String and _untidy(frame, c))]
    out = frame.with_columns(_cast(col, frame.schema[col], schema[col]).alias(col) for col in todo)
    for col in todo:
        if frame.schema[col] == schema[col]:
            continue  # strings only tidied: nothing can fail
        given = pl.col(col).cast(pl.String).str.strip_chars()
        bad = frame.select(
            pl.arg_where(given.is_not_null() & (given != "") & out[col].is_null()).first()
        ).item()
        if bad is not None:
            raise SchemaError(
                f"{source}: column {col} must be {table(name).column(col).type}, "
                f"but row {bad + 1} has {frame[col][bad]!r}"
            )
    return out.select(known + extras)


_INT64_LIMIT = 2.0**63


def _untidy(frame: pl.DataFrame, col: str) -> bool:
    """Whether a string column holds empty or whitespace-padded values (checked without copying strings)."""
    c = pl.col(col)
    return bool(frame.select(((c == "") | c.str.contains(r"^\s|\s$")).any()).item())


def _cast(col: str, given: pl.DataType, wanted: pl.DataType) -> pl.Expr:
    """``col`` cast to ``wanted``; values that cannot be cast become null (``conform`` reports them)."""
    expr = pl.col(col)
    if wanted == pl.String:
        text = expr.cast(pl.String).str.strip_chars()
        return pl.when(text != "").then(text)
    number = expr.str.strip_chars().cast(pl.Float64, strict=False) if given == pl.String else expr.cast(pl.Float64)
    if wanted == pl.Float64:
        return number
    # integers: exact from text where possible; from floats (XPT, "30.0") only when whole and in range
    whole = pl.when((number % 1 == 0) & (number.abs() < _INT64_LIMIT)).then(number).cast(pl.Int64, strict=False)
    exact = expr.str.strip_chars().cast(pl.Int64, strict=False) if given == pl.String else (
        expr.cast(pl.Int64, strict=False) if given.is_integer() else None)
    return whole if exact is None else pl.coalesce(exact, whole)


def write_table(frame: pl.DataFrame | pl.LazyFrame, folder: Path, name: str, fmt: Format) -> Path:
    """Write one table of a study folder as ``folder/name.fmt`` and return the path.

    Documented columns come first, in documented order. XPT files use version 5 when
    every column name fits in 8 characters (SDTM domains) and version 8 otherwise.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.{fmt}"
    if fmt == "parquet":
        lf = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
        lf.sink_parquet(path, compression="zstd")
        return path
    df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    if fmt == "csv":
        df.write_csv(path)
    elif fmt == "xpt":
        df = _xpt_ready(df, path)
        version = 5 if all(len(c) <= _XPT_V5_NAME_LENGTH for c in df.columns) else 8
        pyreadstat.write_xport(df, str(path), table_name=name.upper()[:8] if version == 5 else name,
                               file_format_version=version)
    else:
        raise StudyFormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return path


_XPT_MAX = 7.2e75  # largest magnitude an XPT (IBM 370) double holds


def _xpt_ready(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    """NaN as missing, and an error for floats XPT cannot store (instead of a silent infinity)."""
    floats = [c for c, t in df.schema.items() if t.is_float()]
    for col in floats:
        too_big = df.select(pl.arg_where(pl.col(col).abs() > _XPT_MAX).first()).item()
        if too_big is not None:
            raise StudyFormatError(f"{path}: column {col} row {too_big + 1} holds {df[col][too_big]!r}, "
                                   f"beyond what SAS XPORT can store (+-{_XPT_MAX:g}); use parquet or csv")
    return df.with_columns(pl.col(floats).fill_nan(None))


def read_table(path: Path) -> pl.DataFrame:
    """Read one table file (.parquet, .csv or .xpt) into its documented dtypes.

    The table is named by the file's stem, case-insensitively (``DM.XPT`` is ``dm``).
    """
    path = Path(path)
    name = path.stem.lower()
    suffix = path.suffix.lower().lstrip(".")
    try:
        if suffix == "parquet":
            frame = pl.read_parquet(path)
        elif suffix == "csv":
            frame = pl.read_csv(path, infer_schema=False)
        elif suffix == "xpt":
            frame, _ = pyreadstat.read_xport(str(path), output_format="polars")
        else:
            raise StudyFormatError(f"{path}: unknown file type; use one of {', '.join(FORMATS)}")
    except (OSError, pl.exceptions.PolarsError, pyreadstat.ReadstatError) as exc:
        raise StudyFormatError(f"{path}: cannot be read ({exc})") from exc
    if name in TABLE_NAMES:
        frame = conform(frame, name, source=str(path))
    return frame


def find_tables(folder: Path) -> dict[str, Path]:
    """The table files of a study folder, keyed by table name (known tables only)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StudyFormatError(f"{folder}: not a study folder (no such directory)")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        name, suffix = path.stem.lower(), path.suffix.lower().lstrip(".")
        if path.is_file() and suffix in FORMATS and name in TABLE_NAMES:
            if name in found:
                raise StudyFormatError(f"{folder}: table {name} is present twice ({found[name].name}, {path.name})")
            found[name] = path
    return found


def read_study(folder: Path) -> dict[str, pl.DataFrame]:
    """Read every known table of a study folder; ``dm`` must be present."""
    paths = find_tables(folder)
    if "dm" not in paths:
        raise StudyFormatError(f"{folder}: the required table dm (dm.parquet, dm.csv or dm.xpt) is missing")
    return {name: read_table(path) for name, path in paths.items()}


def scan_table(path: Path) -> pl.LazyFrame:
    """A table as a LazyFrame with its documented dtypes, read only as far as a query needs.

    A Parquet file whose columns already have the documented types is scanned lazily:
    empty strings become null as the query runs, but strings are not stripped of
    surrounding spaces (a typed Parquet file, such as rbqm writes, has none; stripping
    every string would double the cost of an analysis). Any other file is read and checked
    in full by ``read_table`` first, so a bad value still stops with a ``SchemaError``.
    """
    path = Path(path)
    name = path.stem.lower()
    if path.suffix.lower() == ".parquet" and name in TABLE_NAMES:
        try:
            schema = pl.read_parquet_schema(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise StudyFormatError(f"{path}: cannot be read ({exc})") from exc
        wanted = polars_schema(name)
        if all(schema[c] == wanted[c] for c in wanted if c in schema):
            strings = [c for c in wanted if c in schema and wanted[c] == pl.String]
            return pl.scan_parquet(path).with_columns(
                pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in strings)
    return read_table(path).lazy()


def scan_study(folder: Path) -> dict[str, pl.LazyFrame]:
    """``read_study``, lazily where the files allow it (see ``scan_table``)."""
    paths = find_tables(folder)
    if "dm" not in paths:
        raise StudyFormatError(f"{folder}: the required table dm (dm.parquet, dm.csv or dm.xpt) is missing")
    return {name: scan_table(path) for name, path in paths.items()}

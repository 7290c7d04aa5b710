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

__all__ = ["FORMATS", "Format", "write_table", "read_table", "find_tables", "read_study", "conform"]

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
    casts = []
    for col in known:
        dtype = schema[col]
        expr = pl.col(col)
        if dtype == pl.String:
            expr = expr.cast(pl.String).str.strip_chars()
            expr = pl.when(expr == "").then(None).otherwise(expr)
        elif frame.schema[col] == pl.String:
            text = pl.col(col).str.strip_chars()
            expr = pl.when(text == "").then(None).otherwise(text).cast(pl.Float64, strict=False)
        casts.append(expr.alias(col))
    out = frame.with_columns(casts)
    for col in known:
        dtype = schema[col]
        if dtype == pl.String:
            continue
        bad = out.with_row_index("_row").filter(
            frame[col].is_not_null() & (frame[col].cast(pl.String).str.strip_chars() != "") & out[col].is_null()
        )
        if bad.height:
            row = bad["_row"][0]
            raise SchemaError(
                f"{source}: column {col} must be {table(name).column(col).type}, "
                f"but row {row + 1} has {frame[col][row]!r}"
            )
        if dtype == pl.Int64:
            non_integer = out.with_row_index("_row").filter(pl.col(col).cast(pl.Float64) % 1 != 0)
            if non_integer.height:
                row = non_integer["_row"][0]
                raise SchemaError(
                    f"{source}: column {col} must be integer, but row {row + 1} has {out[col][row]!r}"
                )
        out = out.with_columns(pl.col(col).cast(dtype))
    return out.select(known + extras)


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
        version = 5 if all(len(c) <= _XPT_V5_NAME_LENGTH for c in df.columns) else 8
        pyreadstat.write_xport(df, str(path), table_name=name.upper()[:8] if version == 5 else name,
                               file_format_version=version)
    else:
        raise StudyFormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return path


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

"""Reading and writing the tables of a study folder, including SDTM packages as distributed.

Formats
    A table file is Parquet (``.parquet``), CSV (``.csv``, UTF-8), SAS XPORT (``.xpt``),
    SAS7BDAT (``.sas7bdat``, read only) or CDISC Dataset-JSON 1.1 (``.json``, or ``.ndjson``
    with the metadata on the first line and one row array a line; see
    ``rbqm._dataset_json``). SAS files whose text is not UTF-8 are read as Windows-1252
    (SAS's WLATIN1); a CSV file that is not UTF-8 is an error.

Dtypes
    Whatever the file format, a table read back has the documented dtypes
    (``rbqm.schema.polars_schema``): strings with empty values as null, integers as
    Int64, floats as Float64, dates as ISO 8601 strings. So the same study written as
    Parquet, CSV, XPT and Dataset-JSON reads back to identical frames.

Names
    File names and the names of documented columns match case-insensitively: ``DM.XPT``
    is the table ``dm``, and its column ``usubjid`` is read as ``USUBJID``. Other columns
    keep their names.

Split domains and supplemental qualifiers
    ``read_study`` and ``scan_study`` stack the parts of a split domain (``lbch.xpt`` and
    ``lbhe.xpt`` -> ``lb``) and attach the qualifiers of ``suppae.xpt`` and the like to
    their parent table as extra String columns; ``rbqm.sdtm_files`` gives the rules.

Errors
    A file that cannot be read (unknown type, empty, truncated, corrupt, wrong encoding)
    raises ``StudyFormatError`` naming it; a value that does not fit its column raises
    ``SchemaError``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyreadstat

from rbqm._dataset_json import read_dataset_json, write_dataset_json
from rbqm.errors import SchemaError, StudyFormatError
from rbqm.schema import TABLE_NAMES, polars_schema, table
from rbqm.sdtm_files import attach_supp, part_of, supp_parent, tidy_supp

__all__ = ["FORMATS", "WRITE_FORMATS", "READ_FORMATS", "Format", "write_table", "read_table", "read_parts",
           "study_files", "scan_table",
           "find_tables", "find_table_files", "read_study", "scan_study", "conform"]

Format = Literal["parquet", "csv", "xpt", "json", "ndjson"]
#: The formats a whole study is generated in (``rbqm synth --format``); each reads back identically.
FORMATS: tuple[Format, ...] = ("parquet", "csv", "xpt")
#: The formats ``write_table`` writes: FORMATS and Dataset-JSON (``json``, ``ndjson``).
WRITE_FORMATS: tuple[Format, ...] = (*FORMATS, "json", "ndjson")
#: The file types ``read_table`` reads (the file's extension, case-insensitively).
READ_FORMATS: tuple[str, ...] = ("parquet", "csv", "xpt", "sas7bdat", "json", "ndjson")
_XPT_V5_NAME_LENGTH = 8
_SAS_FALLBACK_ENCODING = "WINDOWS-1252"


def conform(frame: pl.DataFrame, name: str, *, source: str) -> pl.DataFrame:
    """Cast the known columns of table ``name`` to their documented dtypes.

    Column names that match a documented column case-insensitively are upper-cased
    (``usubjid`` -> ``USUBJID``). Empty strings become null; numbers stored as text or
    as floats (XPT) are cast; dates and datetimes (SAS date formats) become ISO 8601
    strings. Unknown columns are kept after the documented ones. ``source`` names the
    file in error messages.

    Raises
    ------
    SchemaError
        When a value cannot be read as its column's type, or two columns differ only in
        case; the message names the file, column, row (1-based, as in a spreadsheet
        without its header) and value.

    Examples
    --------
    >>> sites = pl.DataFrame({"siteid": ["1001"], "Country": ["DEU"], "note": [""]})
    >>> conform(sites, "sites", source="sites.csv").columns
    ['SITEID', 'COUNTRY', 'note']
    """
    frame = frame.rename(_canonical_names(frame.columns, name, source=source))
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


def _canonical_names(columns: list[str], name: str, *, source: str) -> dict[str, str]:
    """Renames that upper-case the columns matching a documented column of ``name`` case-insensitively."""
    documented = set(polars_schema(name))
    renames = {c: c.upper() for c in columns if c != c.upper() and c.upper() in documented}
    targets = [renames.get(c, c) for c in columns]
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        clash = [c for c in columns if renames.get(c, c) == twice[0]]
        raise SchemaError(f"{source}: columns {' and '.join(clash)} both name {twice[0]}; keep one")
    return renames


def _untidy(frame: pl.DataFrame, col: str) -> bool:
    """Whether a string column holds empty or whitespace-padded values (checked without copying strings)."""
    c = pl.col(col)
    return bool(frame.select(((c == "") | c.str.contains(r"^\s|\s$")).any()).item())


def _cast(col: str, given: pl.DataType, wanted: pl.DataType) -> pl.Expr:
    """``col`` cast to ``wanted``; values that cannot be cast become null (``conform`` reports them)."""
    expr = pl.col(col)
    if wanted == pl.String:
        text = expr.dt.to_string("%Y-%m-%dT%H:%M:%S") if given == pl.Datetime else expr.cast(pl.String)
        text = text.str.strip_chars()
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

    ``fmt`` is one of ``WRITE_FORMATS``. Documented columns come first, in documented
    order. XPT files use version 5 when every column name fits in 8 characters (SDTM
    domains) and version 8 otherwise. ``json`` and ``ndjson`` write CDISC Dataset-JSON 1.1
    with the table's label and its columns' descriptions as labels.
    """
    if fmt not in WRITE_FORMATS:
        raise StudyFormatError(f"unknown format {fmt!r}; choose one of {', '.join(WRITE_FORMATS)}")
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
        spec = table(name) if name in TABLE_NAMES else None
        write_dataset_json(df, path, name=name, label=spec.label if spec else name,
                           labels={c.name: c.description for c in spec.columns} if spec else None,
                           ndjson=fmt == "ndjson")
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
    """Read one table file (any of ``READ_FORMATS``) into its documented dtypes.

    The table is named by the file's stem, case-insensitively (``DM.XPT`` is ``dm``); a
    file of another name (a part of a split domain, a SUPP-- dataset) is read as it is.

    Raises
    ------
    StudyFormatError
        When the file cannot be read (unknown type, empty, corrupt, not UTF-8 text).
    SchemaError
        When a value does not fit its documented column (see ``conform``).
    """
    path = Path(path)
    return _read_file(path, path.stem.lower())


def _read_file(path: Path, name: str) -> pl.DataFrame:
    """``path`` read and, when ``name`` is a table, conformed to it."""
    frame = _read_raw(path)
    return conform(frame, name, source=str(path)) if name in TABLE_NAMES else frame


def _read_raw(path: Path, *, n_rows: int | None = None) -> pl.DataFrame:
    """The file's columns as the format gives them (all of its rows, or the first ``n_rows``)."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in READ_FORMATS:
        raise StudyFormatError(f"{path}: unknown file type; use one of {', '.join(READ_FORMATS)}")
    try:
        if path.stat().st_size == 0:
            raise StudyFormatError(f"{path}: cannot be read (the file is empty)")
        if suffix == "parquet":
            return pl.read_parquet(path, n_rows=n_rows)
        if suffix == "csv":
            return _read_csv(path, n_rows=n_rows)
        if suffix in ("xpt", "sas7bdat"):
            reader = pyreadstat.read_xport if suffix == "xpt" else pyreadstat.read_sas7bdat
            return _read_sas(reader, path, n_rows=n_rows)
        return read_dataset_json(path, n_rows=n_rows)
    except (OSError, pl.exceptions.PolarsError, pyreadstat.ReadstatError, pyreadstat.PyreadstatError) as exc:
        raise StudyFormatError(f"{path}: cannot be read ({exc})") from exc


def _read_csv(path: Path, *, n_rows: int | None) -> pl.DataFrame:
    try:
        frame = pl.read_csv(path, infer_schema=False, n_rows=n_rows)
    except pl.exceptions.ComputeError as exc:
        if "utf-8" not in str(exc).lower() and "utf8" not in str(exc).lower():
            raise
        raise StudyFormatError(f"{path}: cannot be read: the file is not UTF-8 text ({exc}); "
                               "save it as UTF-8 (in Excel: 'CSV UTF-8')") from exc
    if n_rows is None and frame.height and frame[-1, -1] is None:
        fields = _last_line_fields(path)
        if fields is not None and fields < frame.width:
            raise StudyFormatError(f"{path}: cannot be read: the file looks truncated (its last line has "
                                   f"{fields} of {frame.width} fields and no line end)")
    return frame


_TAIL_BYTES = 65536


def _last_line_fields(path: Path) -> int | None:
    """The number of fields on the last line of a CSV file, or None when the file ends with a line end."""
    with path.open("rb") as handle:
        handle.seek(max(path.stat().st_size - _TAIL_BYTES, 0))
        tail = handle.read()
    if tail.endswith((b"\n", b"\r")):
        return None
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
    return len(next(csv.reader([last]), []))


def _read_sas(reader: Callable[..., Any], path: Path, *, n_rows: int | None) -> pl.DataFrame:
    """A SAS file (XPT or SAS7BDAT) read as UTF-8, else as Windows-1252."""
    options = {"output_format": "polars", "row_limit": n_rows or 0}
    try:
        frame, _ = reader(str(path), **options)
    except UnicodeDecodeError:
        try:
            frame, _ = reader(str(path), encoding=_SAS_FALLBACK_ENCODING, **options)
        except (UnicodeDecodeError, pyreadstat.ReadstatError) as exc:
            raise StudyFormatError(f"{path}: cannot be read: its text is neither UTF-8 nor Windows-1252 "
                                   f"({exc}); export it again as UTF-8") from exc
    return frame


def _scan_file(path: Path, name: str) -> pl.LazyFrame:
    """``scan_table`` of ``path`` as table ``name``."""
    if path.suffix.lower() == ".parquet" and name in TABLE_NAMES:
        try:
            if path.stat().st_size == 0:
                raise StudyFormatError(f"{path}: cannot be read (the file is empty)")
            schema = pl.read_parquet_schema(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise StudyFormatError(f"{path}: cannot be read ({exc})") from exc
        renames = _canonical_names(list(schema), name, source=str(path))
        schema = {renames.get(c, c): dtype for c, dtype in schema.items()}
        wanted = polars_schema(name)
        if all(schema[c] == wanted[c] for c in wanted if c in schema):
            strings = [c for c in wanted if c in schema and wanted[c] == pl.String]
            return pl.scan_parquet(path).rename(renames).with_columns(
                pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in strings)
    return _read_file(path, name).lazy()


def _domain_matches(path: Path, code: str) -> bool:
    """Whether the file's DOMAIN column, if any, holds ``code`` in its first record."""
    first = _read_raw(path, n_rows=1)
    column = next((c for c in first.columns if c.upper() == "DOMAIN"), None)
    if column is None or first.height == 0:
        return True
    value = first[column][0]
    return value is None or str(value).strip().upper() in ("", code.upper())


def _scan_folder(folder: Path) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """The table files (whole or parts) and the SUPP-- files of a study folder, keyed by table."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StudyFormatError(f"{folder}: not a study folder (no such directory)")
    tables: dict[str, dict[str, Path]] = {}  # table -> {stem: path}; stem == table for a whole file
    supps: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.iterdir(), key=lambda p: (p.name.lower(), p.name)):
        stem, suffix = path.stem.lower(), path.suffix.lower().lstrip(".")
        if not path.is_file() or suffix not in READ_FORMATS:
            continue
        if stem in TABLE_NAMES:
            found, name = tables, stem
        elif (parent := supp_parent(stem)) is not None:
            found, name = supps, parent
        elif (code := part_of(stem)) is not None and _domain_matches(path, code):
            found, name = tables, code
        else:
            continue
        files = found.setdefault(name, {})
        if stem in files:
            what = f"table {name}" if stem == name else f"file {stem} (of table {name})"
            raise StudyFormatError(f"{folder}: {what} is present twice ({files[stem].name}, {path.name})")
        files[stem] = path
    for name, files in tables.items():
        if name in files and len(files) > 1:
            parts = ", ".join(p.name for stem, p in files.items() if stem != name)
            raise StudyFormatError(f"{folder}: table {name} is given both whole ({files[name].name}) "
                                   f"and split into parts ({parts}); keep one or the other")
    return ({name: list(files.values()) for name, files in tables.items()},
            {name: list(files.values()) for name, files in supps.items()})


def find_table_files(folder: Path) -> dict[str, list[Path]]:
    """The files of every known table of a study folder: one whole file, or the parts of a split domain.

    Keyed by table name, in file-name order. A part is a file named by the table code and
    1-4 more letters or digits whose DOMAIN column, if any, holds the code (``lbch.xpt``
    for ``lb``). SUPP-- files are not listed (``read_study`` attaches them).

    Raises
    ------
    StudyFormatError
        When the folder is missing, a table is present twice (``dm.csv`` and
        ``dm.parquet``), or given both whole and in parts (``lb.xpt`` and ``lbch.xpt``).

    See Also
    --------
    find_tables : one file per table.
    """
    return _scan_folder(folder)[0]


def find_tables(folder: Path) -> dict[str, Path]:
    """The table files of a study folder, keyed by table name (known tables only).

    For a table split into parts (``lbch.xpt``, ``lbhe.xpt``) the value is its first part:
    use ``find_table_files`` to get every part, and ``read_study`` to read them.
    """
    return {name: paths[0] for name, paths in find_table_files(folder).items()}


def _stack(frames: list[pl.LazyFrame], name: str) -> pl.LazyFrame:
    """The parts of a split table as one: rows stacked, missing columns null, documented ones first."""
    if len(frames) == 1:
        return frames[0]
    stacked = pl.concat(frames, how="diagonal_relaxed")
    columns = stacked.collect_schema().names()
    documented = [c for c in polars_schema(name) if c in columns]
    return stacked.select(documented + [c for c in columns if c not in documented])


def _with_supp(tables: dict[str, pl.LazyFrame], supps: dict[str, list[Path]]) -> dict[str, pl.LazyFrame]:
    """Each table with the qualifiers of its SUPP-- files (files of absent tables are ignored)."""
    out = dict(tables)
    for name, paths in supps.items():
        if name in out:
            supp = pl.concat([tidy_supp(_read_raw(p), source=str(p)) for p in paths])
            out[name] = attach_supp(out[name], supp, source=", ".join(str(p) for p in paths))
    return out


def _require_dm(folder: Path, files: dict[str, list[Path]]) -> None:
    if "dm" not in files:
        raise StudyFormatError(f"{folder}: the required table dm (dm.parquet, dm.csv or dm.xpt) is missing")


def study_files(folder: Path) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """The files of every known table (whole or parts) and the SUPP-- files, both keyed by table."""
    return _scan_folder(folder)


def read_parts(name: str, paths: list[Path], supp_paths: list[Path] | None = None) -> pl.DataFrame:
    """One table from its files: the parts of a split domain stacked, SUPP-- qualifiers attached."""
    table = _stack([_read_file(p, name).lazy() for p in paths], name)
    if supp_paths:
        table = _with_supp({name: table}, {name: list(supp_paths)})[name]
    return table.collect()


def read_study(folder: Path) -> dict[str, pl.DataFrame]:
    """Read every known table of a study folder; ``dm`` must be present.

    The parts of a split domain are stacked into one table, and the qualifiers of SUPP--
    files are attached to their parent table (``rbqm.sdtm_files``).
    """
    files, supps = _scan_folder(folder)
    _require_dm(folder, files)
    return {name: read_parts(name, paths, supps.get(name)) for name, paths in files.items()}


def scan_table(path: Path) -> pl.LazyFrame:
    """A table as a LazyFrame with its documented dtypes, read only as far as a query needs.

    A Parquet file whose columns already have the documented types is scanned lazily:
    empty strings become null as the query runs, but strings are not stripped of
    surrounding spaces (a typed Parquet file, such as rbqm writes, has none; stripping
    every string would double the cost of an analysis). Any other file is read and checked
    in full by ``read_table`` first, so a bad value still stops with a ``SchemaError``.
    """
    path = Path(path)
    return _scan_file(path, path.stem.lower())


def scan_study(folder: Path) -> dict[str, pl.LazyFrame]:
    """``read_study``, lazily where the files allow it (see ``scan_table``)."""
    files, supps = _scan_folder(folder)
    _require_dm(folder, files)
    tables = {name: _stack([_scan_file(p, name) for p in paths], name) for name, paths in files.items()}
    return _with_supp(tables, supps)

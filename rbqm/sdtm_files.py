"""SDTM packages as distributed: split domains and supplemental qualifiers (SUPP--).

Split domains
    SDTM splits a big domain into several datasets named by the domain code and a few
    more letters or digits, e.g. ``lbch.xpt`` and ``lbhe.xpt`` for LB (SDTMIG, "Splitting
    domains"). A file whose stem is a table code followed by 1-4 letters or digits is a
    *part* of that table (``part_of``) when its DOMAIN column, if it has one, holds the
    code (``rbqm.io`` checks the first record). ``rbqm.io.read_study`` stacks the parts
    into one table. A table given both whole and in parts (``lb.xpt`` beside ``lbch.xpt``)
    is an error.

Supplemental qualifiers
    ``suppae.xpt`` (SUPPAE), ``suppdm``, ``suppds``, ... hold non-standard variables of
    their parent table, one value a row: USUBJID, IDVAR, IDVARVAL, QNAM, QVAL (and
    RDOMAIN, QLABEL, QORIG, QEVAL, which are not used). ``attach_supp`` pivots them to one
    String column per QNAM and left-joins those onto the parent: on USUBJID alone where
    IDVAR is empty (subject level), else on USUBJID and the parent column IDVAR names
    (e.g. AESEQ) matched to IDVARVAL. The two are compared as text without surrounding
    spaces, numbers in one spelling: AESEQ 1.0 (XPT stores numbers as floats) matches
    "1" and "1.0". A QNAM that is already a parent column (case-insensitively) gets the
    suffix ``_SUPP``. A SUPP dataset of a split domain may be split as well
    (``suppqscg``). Parent rows without qualifiers get null; qualifier records that match
    no parent row are dropped.
"""

from __future__ import annotations

from typing import TypeVar

import polars as pl

from rbqm.errors import SchemaError
from rbqm.schema import TABLE_NAMES

__all__ = ["part_of", "supp_parent", "tidy_supp", "attach_supp"]

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

_USED = ("USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QVAL")  # of a SUPP-- dataset's columns
_REQUIRED = ("USUBJID", "QNAM", "QVAL")
_MAX_SPLIT_SUFFIX = 4
_KEY = "__rbqm_supp_key"


def _join_key(value: pl.Expr) -> pl.Expr:
    """A value as IDVARVAL is compared: text without surrounding spaces, and numbers in one
    spelling (AESEQ 1.0, "1" and "1.0" all match; "A1" matches "A1")."""
    text = value.cast(pl.String).str.strip_chars()
    number = text.cast(pl.Float64, strict=False)
    return pl.when(number.is_not_null()).then(number.cast(pl.String)).otherwise(text)


def part_of(stem: str) -> str | None:
    """The table a file stem is a part of, by name only (``lbch`` -> ``lb``), or None.

    Examples
    --------
    >>> part_of("lbch"), part_of("QSXX"), part_of("lb"), part_of("lb_chem"), part_of("lbchemist")
    ('lb', None, None, None, None)
    """
    stem = stem.lower()
    for code in TABLE_NAMES:
        rest = stem[len(code):]
        if stem.startswith(code) and 0 < len(rest) <= _MAX_SPLIT_SUFFIX and rest.isascii() and rest.isalnum():
            return code
    return None


def supp_parent(stem: str) -> str | None:
    """The table whose supplemental qualifiers a file stem holds (``suppae`` -> ``ae``), or None.

    Examples
    --------
    >>> supp_parent("SUPPAE"), supp_parent("supplbch"), supp_parent("suppqs"), supp_parent("ae")
    ('ae', 'lb', None, None)
    """
    stem = stem.lower()
    if not stem.startswith("supp"):
        return None
    rest = stem[len("supp"):]
    return rest if rest in TABLE_NAMES else part_of(rest)


def tidy_supp(frame: pl.DataFrame, *, source: str) -> pl.DataFrame:
    """The columns of a SUPP-- dataset that ``attach_supp`` uses, as stripped strings.

    Column names match case-insensitively. IDVAR and IDVARVAL may be absent (every record
    is then subject level). Empty values become null, and so does IDVARVAL where IDVAR is
    empty. ``source`` names the file in errors.

    Raises
    ------
    SchemaError
        When USUBJID, QNAM or QVAL is missing, or a record has no QNAM.

    Examples
    --------
    >>> supp = pl.DataFrame({"usubjid": ["S-1"], "QNAM": ["AETRTEM"], "QVAL": [" Y "], "IDVAR": [""]})
    >>> tidy_supp(supp, source="suppae.csv").row(0)
    ('S-1', None, None, 'AETRTEM', 'Y')
    """
    names = {c.upper(): c for c in frame.columns}
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        raise SchemaError(f"{source}: a supplemental qualifier dataset needs the column(s) "
                          f"{', '.join(missing)}; it has {', '.join(frame.columns) or 'none'}")

    def text(col: str) -> pl.Expr:
        if col not in names:
            return pl.lit(None, dtype=pl.String)
        value = pl.col(names[col]).cast(pl.String).str.strip_chars()
        return pl.when(value != "").then(value)

    out = frame.select(**{c: text(c) for c in _USED}).with_columns(  # subject level: no IDVARVAL
        IDVARVAL=pl.when(pl.col("IDVAR").is_not_null()).then(pl.col("IDVARVAL")))
    bad = out.select(pl.arg_where(pl.col("QNAM").is_null()).first()).item()
    if bad is not None:
        raise SchemaError(f"{source}: row {bad + 1} has no QNAM (the name of the qualifier)")
    return out


def attach_supp(parent: Frame, supp: pl.DataFrame, *, source: str) -> Frame:
    """``parent`` with one String column per QNAM of ``supp`` (a ``tidy_supp`` frame).

    See the module docstring for the join rules. Returns the same kind of frame as given;
    parent rows keep their order.

    Raises
    ------
    SchemaError
        When a QNAM is given twice for the same record, IDVAR names no parent column, or
        the parent has no USUBJID. ``source`` names the SUPP file(s).

    Examples
    --------
    >>> ae = pl.DataFrame({"USUBJID": ["S-1", "S-1", "S-2"], "AESEQ": [1, 2, 1]})
    >>> supp = pl.DataFrame({"USUBJID": ["S-1", "S-2"], "IDVAR": ["AESEQ", None],
    ...                      "IDVARVAL": ["2", None], "QNAM": ["AETRTEM", "ITT"], "QVAL": ["Y", "N"]})
    >>> attach_supp(ae, supp, source="suppae.xpt").rows()
    [('S-1', 1, None, None), ('S-1', 2, 'Y', None), ('S-2', 1, None, 'N')]
    """
    lazy = parent.lazy() if isinstance(parent, pl.DataFrame) else parent
    schema = lazy.collect_schema()
    if "USUBJID" not in schema:
        raise SchemaError(f"{source}: the parent table has no USUBJID to attach supplemental qualifiers to")
    by_upper = {c.upper(): c for c in schema}
    taken = set(by_upper)
    final: dict[str, str] = {}  # QNAM -> its column in the result
    for qnam in supp["QNAM"].unique(maintain_order=True):
        name = qnam
        while name.upper() in taken:
            name += "_SUPP"
        taken.add(name.upper())
        final[qnam] = name
    temps: dict[str, list[str]] = {q: [] for q in final}  # QNAM -> its column from each IDVAR
    out = lazy
    for i, idvar in enumerate(supp["IDVAR"].unique(maintain_order=True)):
        rows = supp.filter(pl.col("IDVAR").is_null() if idvar is None else pl.col("IDVAR") == idvar)
        left = None
        if idvar is not None:
            column = by_upper.get(idvar.upper())
            if column is None:
                raise SchemaError(f"{source}: IDVAR {idvar} is not a column of the parent table; "
                                  f"it has {', '.join(schema)}")
            left = _join_key(pl.col(column))
            rows = rows.with_columns(_join_key(pl.col("IDVARVAL")).alias(_KEY)).drop_nulls(_KEY)
            if rows.is_empty():
                continue
        index = ["USUBJID"] if left is None else ["USUBJID", _KEY]
        twice = rows.filter(pl.struct([*index, "QNAM"]).is_duplicated())
        if twice.height:
            record = "" if idvar is None else f", {idvar} {twice['IDVARVAL'][0]}"
            raise SchemaError(f"{source}: QNAM {twice['QNAM'][0]} is given twice for USUBJID "
                              f"{twice['USUBJID'][0]}{record}; keep one record")
        prefix = f"__rbqm_supp{i}_"
        for qnam in rows["QNAM"].unique(maintain_order=True):
            temps[qnam].append(prefix + qnam)
        wide = rows.with_columns(QNAM=prefix + pl.col("QNAM")).pivot(on="QNAM", index=index, values="QVAL")
        if left is not None:
            out = out.with_columns(left.alias(_KEY))
        out = out.join(wide.lazy(), on=index, how="left", maintain_order="left")
    out = out.drop(_KEY, strict=False).with_columns(
        (pl.coalesce(temps[q]) if temps[q] else pl.lit(None, dtype=pl.String)).alias(final[q]) for q in final)
    out = out.drop([t for names in temps.values() for t in names])
    return out.collect() if isinstance(parent, pl.DataFrame) else out

"""The study folder format as data: tables, columns, types and codelists.

Loaded once from ``tables.yaml`` beside this module. ``docs/data-format.md`` is
rendered from the same file (``rbqm.schema.render_markdown``), so the docs and the
code cannot disagree.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict

__all__ = ["Column", "Table", "tables", "table", "polars_schema", "render_markdown", "TABLE_NAMES"]

ColumnType = Literal["string", "integer", "float", "datetime"]

POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "datetime": pl.String(),
    "integer": pl.Int64(),
    "float": pl.Float64(),
}


class Column(BaseModel):
    """One column of a table in the study folder format."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    type: ColumnType
    required: bool
    description: str
    values: tuple[str, ...] | None = None


class Table(BaseModel):
    """One table (file) of the study folder format."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    label: str
    required: bool = False
    key: tuple[str, ...] = ()
    description: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@cache
def tables() -> dict[str, Table]:
    """All tables of the format, keyed by their lower-case code, in documented order."""
    raw = yaml.safe_load(files("rbqm").joinpath("tables.yaml").read_text(encoding="utf-8"))
    return {
        name: Table(
            name=name,
            **{k: v for k, v in spec.items() if k != "columns"},
            columns=tuple(Column(name=col, **c) for col, c in spec["columns"].items()),
        )
        for name, spec in raw.items()
    }


TABLE_NAMES: tuple[str, ...] = tuple(tables())


def table(name: str) -> Table:
    """The specification of table ``name`` (lower-case code such as ``"dm"``)."""
    return tables()[name]


def polars_schema(name: str) -> dict[str, pl.DataType]:
    """The polars dtype of every column of table ``name``, in documented order.

    Examples
    --------
    >>> polars_schema("sites")["PLANNEDENR"]
    Int64
    """
    return {c.name: POLARS_TYPES[c.type] for c in table(name).columns}


def render_markdown() -> str:
    """The study folder format as a Markdown reference (the body of docs/data-format.md)."""
    out = [
        "# The study folder format",
        "",
        "<!-- Generated from rbqm/tables.yaml by `python -m rbqm.schema`; edit that file, not this one. -->",
        "",
        "A study is a folder with one file per table, named by the table's lower-case code, in",
        "Parquet (`dm.parquet`), CSV (`dm.csv`, UTF-8, comma-separated, header row), SAS XPORT",
        "(`dm.xpt`, version 5 where every column name has at most 8 characters, else version 8),",
        "SAS7BDAT (read only) or CDISC Dataset-JSON (`dm.json`, `dm.ndjson`). Split domains",
        "(`lbch.xpt`, `lbhe.xpt`) and SUPP-- qualifiers (`suppae.xpt`) are read as docs/ingest.md",
        "describes. Column names follow CDISC SDTM where a domain exists. Only `dm` is required.",
        "",
        "Types: `string`; `integer`; `float`; `datetime` is an ISO 8601 string as in SDTM",
        "(`2024-03-07`, `2024-03-07T10:30`). Empty strings and empty cells mean missing.",
        "Columns not listed here are kept and ignored.",
        "",
        "| table | label | required | key |",
        "|---|---|---|---|",
    ]
    for t in tables().values():
        out.append(f"| `{t.name}` | {t.label} | {'yes' if t.required else 'no'} | {', '.join(t.key) or '-'} |")
    for t in tables().values():
        out += ["", f"## `{t.name}`: {t.label}", "", t.description, ""]
        out += ["| column | type | required | meaning | allowed values |", "|---|---|---|---|---|"]
        for c in t.columns:
            values = ", ".join(f"`{v}`" for v in c.values) if c.values else ""
            out.append(f"| {c.name} | {c.type} | {'yes' if c.required else 'no'} | {c.description} | {values} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")

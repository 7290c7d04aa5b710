"""Mapping files: adapt a non-standard export to the study folder format, declaratively.

A mapping is YAML, one entry per table (lower-case code), each with any of::

    tables:
      dm:
        rename: {SITE: SITEID, CNTRY: COUNTRY}          # source column -> documented column
        derive:
          SITEID: {from: USUBJID, pattern: '^[^-]+-([^-]+)-'}   # first regex group of another column
          COUNTRY: {value: USA}                                 # a constant
      ae:
        recode:
          AESER: {"1": "Y", "0": "N"}                    # value -> value; others kept
      dv:
        derive:
          DVIMPFL: {from: DVCAT, map: {MAJOR: "Y", MINOR: "N"}, default: "N"}
      ds:
        derive:                                          # which records are study vs treatment discontinuation
          DSSCAT: {from: DSTERM, map: {"DISCONTINUED STUDY DRUG": STUDY TREATMENT}, default: STUDY PARTICIPATION}

Steps run in that order: rename, then recode, then derive. docs/ingest.md has a worked example.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rbqm.errors import DefinitionError
from rbqm.schema import TABLE_NAMES

__all__ = ["Derivation", "StudyMapping", "TableMapping", "apply_mapping", "load_mapping"]


class Derivation(BaseModel):
    """A column made from another column (``pattern`` or ``map``) or a constant (``value``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    from_: str | None = Field(default=None, alias="from")
    pattern: str | None = None
    map: dict[str, str] | None = None
    value: str | None = None
    default: str | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> Derivation:
        rules = [r for r in ("pattern", "map", "value") if getattr(self, r) is not None]
        if len(rules) != 1:
            raise ValueError(f"give exactly one of pattern, map, value; got {', '.join(rules) or 'none'}")
        if (self.value is None) == (self.from_ is None):
            raise ValueError("pattern and map need 'from' (the source column); value takes no 'from'")
        return self

    def expr(self) -> pl.Expr:
        if self.value is not None:
            return pl.lit(self.value, pl.String)
        source = pl.col(self.from_).cast(pl.String)
        made = (source.str.extract(self.pattern, 1) if self.pattern is not None
                else source.replace_strict(self.map, default=None, return_dtype=pl.String))
        return made.fill_null(self.default) if self.default is not None else made


class TableMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rename: dict[str, str] = {}
    recode: dict[str, dict[str, str]] = {}
    derive: dict[str, Derivation] = {}


class StudyMapping(BaseModel):
    """A whole mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tables: dict[str, TableMapping]

    @model_validator(mode="after")
    def _known(self) -> StudyMapping:
        unknown = sorted(set(self.tables) - set(TABLE_NAMES))
        if unknown:
            raise ValueError(f"unknown table(s) {', '.join(unknown)}; tables are {', '.join(TABLE_NAMES)}")
        return self


def load_mapping(path: Path) -> StudyMapping:
    """Read and check a mapping file; a mistake raises ``DefinitionError`` naming the file and key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return StudyMapping.model_validate(raw)
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot read the mapping file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not valid YAML ({exc})") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors())
        raise DefinitionError(f"{path}: {problems}") from exc


def apply_mapping(data: dict[str, pl.DataFrame], mapping: StudyMapping | None) -> dict[str, pl.DataFrame]:
    """The tables with the mapping applied (rename, recode, derive); tables it does not name are unchanged.

    Raises
    ------
    DefinitionError
        When the mapping names a column the table does not have.
    """
    if mapping is None:
        return data
    out = dict(data)
    for name, rules in mapping.tables.items():
        if name not in out:
            continue
        frame = out[name]
        missing = [c for c in [*rules.rename, *rules.recode, *(d.from_ for d in rules.derive.values() if d.from_)]
                   if c not in frame.columns and c not in rules.rename.values()]
        if missing:
            raise DefinitionError(f"mapping for {name}: no column {', '.join(sorted(set(missing)))} in the data; "
                                  f"it has {', '.join(frame.columns)}")
        frame = frame.rename(rules.rename)
        frame = frame.with_columns(pl.col(c).cast(pl.String).replace(codes) for c, codes in rules.recode.items())
        frame = frame.with_columns(d.expr().alias(c) for c, d in rules.derive.items())
        out[name] = frame
    return out

"""KRI definitions: the YAML files of ``key_risk_indicators/`` as validated, frozen models.

A definition says what to count (numerator and denominator, each a count of records or
subjects, or a sum of a column, over one analysis table with declarative filters), how
to score it (a method of ``rbqm.stats.METHODS``), where to flag, when there is too
little to score, which direction is the concern, the risk-score weights and the
monitoring actions it suggests. No code lives in a definition.
"""

from __future__ import annotations

from functools import reduce
from pathlib import Path
from typing import Literal, TypeVar

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rbqm.derive import ANALYSIS_SOURCES, analysis_columns
from rbqm.errors import DefinitionError

__all__ = ["Condition", "Count", "KriDefinition", "Minimum", "load_definitions", "load_library", "DEFAULT_LIBRARY",
           "SCORING_METHODS"]

M = TypeVar("M", bound=BaseModel)

DEFAULT_LIBRARY = Path(__file__).resolve().parents[2] / "key_risk_indicators"
SCORING_METHODS = ("normal_approx_rate", "normal_approx_binary", "negative_binomial", "beta_binomial", "poisson",
                   "poisson_free_slope", "fisher", "identity", "identity_count")


class Condition(BaseModel):
    """One filter on a column: exactly one of the operators."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    column: str
    equals: str | int | float | bool | None = None
    in_: tuple[str | int | float, ...] | None = Field(default=None, alias="in")
    not_in: tuple[str | int | float, ...] | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    is_null: bool | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [k for k in ("equals", "in_", "not_in", "gt", "ge", "lt", "le", "is_null") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a condition on {self.column} needs exactly one of equals, in, not_in, gt, ge, lt, "
                             f"le, is_null; got {', '.join(g.rstrip('_') for g in given) or 'none'}")
        return self

    def expr(self) -> pl.Expr:
        """The condition as a polars boolean expression."""
        col = pl.col(self.column)
        if self.equals is not None:
            return col == self.equals
        if self.in_ is not None:
            return col.is_in(list(self.in_))
        if self.not_in is not None:
            return ~col.is_in(list(self.not_in)) | col.is_null()
        if self.is_null is not None:
            return col.is_null() if self.is_null else col.is_not_null()
        op = next(k for k in ("gt", "ge", "lt", "le") if getattr(self, k) is not None)
        return getattr(col, op)(getattr(self, op))


class Count(BaseModel):
    """A numerator or denominator: count records or subjects, or sum a column, of one analysis table."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    table: str
    count: Literal["records", "subjects"] | None = None
    sum: str | None = None
    where: tuple[Condition, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Count:
        if self.table not in ANALYSIS_SOURCES:
            raise ValueError(f"table must be one of {', '.join(ANALYSIS_SOURCES)}; got {self.table!r}")
        if (self.count is None) == (self.sum is None):
            raise ValueError("give exactly one of count (records or subjects) and sum (a column)")
        known = analysis_columns(self.table)
        for column in [c.column for c in self.where] + ([self.sum] if self.sum else []):
            if column not in known:
                raise ValueError(f"table {self.table} has no column {column!r}; it has {', '.join(sorted(known))}")
        return self

    @property
    def sources(self) -> tuple[str, ...]:
        """The study tables this count needs (``dm`` for subjects; ``sv`` and ``tv`` for visits)."""
        return ANALYSIS_SOURCES[self.table]

    def filter_expr(self) -> pl.Expr:
        return reduce(lambda a, b: a & b, (c.expr() for c in self.where), pl.lit(True))

    def agg_expr(self) -> pl.Expr:
        """The aggregation within a group (rows already filtered)."""
        if self.sum:
            return pl.col(self.sum).cast(pl.Float64).sum()
        return pl.col("USUBJID").n_unique() if self.count == "subjects" else pl.len()


class Minimum(BaseModel):
    """Below this count the KRI is not scored (score and flag empty, note 'too few to score')."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    applies_to: Literal["numerator", "denominator", "difference"]
    count: float


class KriDefinition(BaseModel):
    """One key risk indicator (one YAML file of the library)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z]{3}\d{4}$")
    name: str
    description: str
    levels: tuple[Literal["site", "country"], ...] = ("site", "country")
    numerator: Count
    denominator: Count
    metric_scale: float = 1.0
    metric_unit: str
    method: Literal[SCORING_METHODS]  # type: ignore[valid-type]
    thresholds: tuple[float, ...]
    flags: tuple[int, ...]
    minimum: Minimum
    concern: Literal["low", "high", "both"]
    weights: tuple[float, ...]
    actions: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _bands(self) -> KriDefinition:
        if len(self.flags) != len(self.thresholds) + 1:
            raise ValueError(f"flags needs one more value than thresholds: {len(self.thresholds)} thresholds, "
                             f"{len(self.flags)} flags")
        if list(self.thresholds) != sorted(set(self.thresholds)):
            raise ValueError(f"thresholds must increase strictly; got {list(self.thresholds)}")
        if self.method == "fisher" and not (len(self.thresholds) == 2 and 0 < self.thresholds[0] < self.thresholds[1] < 1
                                             and self.flags == (2, 1, 0)):
            raise ValueError("a fisher KRI flags by p-value: thresholds [red, amber] such as [0.01, 0.05] "
                             "and flags [2, 1, 0] (the sign comes from the direction of the difference)")
        if len(self.weights) != len(self.flags):
            raise ValueError(f"weights needs one value per flag ({len(self.flags)}); got {len(self.weights)}")
        return self

    @property
    def needs(self) -> set[str]:
        """The study tables this KRI reads."""
        return {*self.numerator.sources, *self.denominator.sources}


BLOCKS_FILE = "blocks.yaml"


def _load_blocks(folder: Path) -> dict[str, dict]:
    """Named counts of ``blocks.yaml`` (in the definitions' folder, else the shipped library), validated."""
    path = folder / BLOCKS_FILE if (folder / BLOCKS_FILE).is_file() else DEFAULT_LIBRARY / BLOCKS_FILE
    if not path.is_file():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not valid YAML ({exc})") from exc
    for name, spec in raw.items():
        try:
            Count.model_validate(spec)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or name}: {e['msg']}" for e in exc.errors())
            raise DefinitionError(f"{path}: block {name}: {problems}") from exc
    return raw


def _with_blocks(raw: object, blocks: dict[str, dict], path: Path) -> object:
    """Replace ``{block: NAME}`` numerators and denominators by the named count."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for part in ("numerator", "denominator"):
        ref = out.get(part)
        if isinstance(ref, dict) and set(ref) == {"block"}:
            if ref["block"] not in blocks:
                raise DefinitionError(f"{path}: {part}.block: unknown block {ref['block']!r}; "
                                      f"{BLOCKS_FILE} defines {', '.join(sorted(blocks)) or 'none'}")
            out[part] = blocks[ref["block"]]
    return out


def load_library(folder: Path | None, patterns: tuple[str, ...], model: type[M], what: str) -> list[M]:
    """Every definition file of a library folder matching ``patterns``, validated by ``model``, sorted by id.

    Shared by the KRI and QTL libraries: numerators and denominators may name a ``blocks.yaml`` count;
    a mistake raises ``DefinitionError`` naming the file and the key, as do a duplicate id and a file
    not named by its id.
    """
    folder = Path(folder) if folder else DEFAULT_LIBRARY
    if not folder.is_dir():
        raise DefinitionError(f"{folder}: no such {what} folder")
    blocks = _load_blocks(folder)
    definitions: dict[str, M] = {}
    for path in [p for pattern in patterns for p in sorted(folder.glob(pattern))]:
        try:
            raw = _with_blocks(yaml.safe_load(path.read_text(encoding="utf-8")), blocks, path)
            definition = model.model_validate(raw)
        except yaml.YAMLError as exc:
            raise DefinitionError(f"{path}: not valid YAML ({exc})") from exc
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors())
            raise DefinitionError(f"{path}: {problems}") from exc
        if definition.id in definitions:
            raise DefinitionError(f"{path}: id {definition.id} is defined twice")
        if path.stem != definition.id:
            raise DefinitionError(f"{path}: the file name must be the id ({definition.id}.yaml)")
        definitions[definition.id] = definition
    if not definitions:
        raise DefinitionError(f"{folder}: holds no {what} definitions ({', '.join(patterns)})")
    return sorted(definitions.values(), key=lambda d: d.id)


def load_definitions(folder: Path | None = None) -> list[KriDefinition]:
    """Every KRI definition (``kri*.yaml``, ``cou*.yaml``) in ``folder`` (default: the shipped library),
    sorted by id.

    Raises
    ------
    DefinitionError
        Naming the file and the key of the first mistake, or a duplicate id.
    """
    return load_library(folder, ("kri*.yaml", "cou*.yaml"), KriDefinition, "KRI")

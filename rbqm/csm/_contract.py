"""The finding contract every central statistical monitoring test returns, and shared plumbing.

One row per (site, test, variable) that was tested; see ``CSM_COLUMNS`` and docs/csm.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from rbqm.derive import AnalysisTables
from rbqm.errors import RbqmError
from rbqm.stats import bh_expr

__all__ = ["CSM_COLUMNS", "DOMAINS", "LABELS", "check_analysis", "check_integer", "check_variables",
           "empty_findings", "finish", "label", "measurements", "percent", "shown", "study_stamp"]

#: The columns of the ``csm`` table, in order, with their dtypes.
CSM_COLUMNS: dict[str, pl.DataType] = {
    "study_id": pl.String(), "cut_date": pl.Date(), "site_id": pl.String(), "test": pl.String(),
    "variable": pl.String(), "statistic": pl.Float64(), "p_value": pl.Float64(), "q_value": pl.Float64(),
    "effect": pl.Float64(), "description": pl.String(),
}

#: Measurement domains: prefix of a variable name -> (table, test code column, numeric result column).
DOMAINS: dict[str, tuple[str, str, str]] = {
    "VS": ("vs", "VSTESTCD", "VSSTRESN"),
    "LB": ("lb", "LBTESTCD", "LBSTRESN"),
}

#: Plain names for the variables a monitor reads in descriptions (others keep their code).
LABELS: dict[str, str] = {
    "VS:SYSBP": "Systolic BP", "VS:DIABP": "Diastolic BP", "VS:HR": "Heart rate", "VS:TEMP": "Temperature",
    "VS:WEIGHT": "Weight", "VS:HEIGHT": "Height", "VS:RESP": "Respiratory rate", "VS:PULSE": "Pulse",
    "LB:HGB": "Haemoglobin", "LB:CREAT": "Creatinine", "LB:GLUC": "Glucose", "LB:BILI": "Bilirubin",
    "LB:SODIUM": "Sodium", "LB:K": "Potassium", "LB:PLAT": "Platelets", "LB:WBC": "White cells",
    "LB:NEUT": "Neutrophils",
}


def label(variable: str) -> str:
    """The plain name of ``DOMAIN:CODE`` (the code itself when no name is known)."""
    return LABELS.get(variable, variable.split(":", 1)[-1])


def percent(share: pl.Expr) -> pl.Expr:
    """A share as a whole percentage, for descriptions."""
    return (100 * share).round(0).cast(pl.Int64)


def shown(value: pl.Expr, *, scale: pl.Expr) -> pl.Expr:
    """``value`` as text for descriptions, to the decimals (0-4) that give ``scale`` (a typical spread
    of the variable) two significant digits: 138 for blood pressure, 4.31 for potassium."""
    decimals = (1 - scale.abs().log10().floor()).fill_nan(0).clip(0, 4).fill_null(0)
    return pl.coalesce(
        pl.when(decimals == d).then((value.round(0).cast(pl.Int64) if d == 0 else value.round(d)).cast(pl.String))
        for d in range(5))


def empty_findings() -> pl.DataFrame:
    """A row-free ``csm`` table (a test whose inputs are missing)."""
    return pl.DataFrame(schema=CSM_COLUMNS)


def study_stamp(analysis: AnalysisTables, study_id: str | None, cut_date: date | None) -> tuple[str, date]:
    """``study_id`` (default: the STUDYID of dm, or "") and ``cut_date`` (default: the as-of date)."""
    if study_id is None:
        subjects = analysis["subjects"]
        study_id = ""
        if "STUDYID" in subjects.collect_schema().names():
            study_id = subjects.select(pl.col("STUDYID").drop_nulls().first()).collect().item() or ""
    return study_id, cut_date or analysis.as_of


def finish(found: pl.DataFrame, *, test: str, study_id: str, cut_date: date) -> pl.DataFrame:
    """Stamp, add BH q-values across the test's rows and return exactly ``CSM_COLUMNS``, sorted."""
    stamps = {"study_id": pl.lit(study_id), "cut_date": pl.lit(cut_date), "test": pl.lit(test)}
    return (found.with_columns(q_value=bh_expr("p_value"), **stamps)
            .select(list(CSM_COLUMNS)).cast(CSM_COLUMNS)
            .sort(["variable", "site_id"]))


def check_analysis(analysis: Any, caller: str) -> None:
    """Raise unless ``analysis`` is the analysis tables of ``rbqm.derive.derive_tables``."""
    if not isinstance(analysis, AnalysisTables):
        raise RbqmError(f"The 'analysis' parameter of {caller} must be the AnalysisTables of "
                        f"rbqm.derive.derive_tables; got {type(analysis).__name__} instead.")


def check_integer(value: Any, name: str, caller: str, *, low: int) -> None:
    """Raise unless ``value`` is an integer >= ``low`` (scikit-learn style message)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise RbqmError(f"The {name!r} parameter of {caller} must be an integer >= {low}; "
                        f"got {value!r} instead.")


def _is_variable(name: Any) -> bool:
    domain, _, code = name.partition(":") if isinstance(name, str) else ("", "", "")
    return domain in DOMAINS and bool(code)


def check_variables(variables: Any, caller: str) -> tuple[str, ...] | None:
    """``None`` (every vs and lb variable) or a tuple of ``DOMAIN:CODE`` names with a known domain."""
    if variables is None:
        return None
    if isinstance(variables, str) or not isinstance(variables, Sequence) or not variables or not all(
            _is_variable(v) for v in variables):
        raise RbqmError(f"The 'variables' parameter of {caller} must be None or a non-empty sequence of "
                        f"names 'DOMAIN:CODE' with DOMAIN one of {sorted(DOMAINS)} (e.g. 'VS:SYSBP'); "
                        f"got {variables!r} instead.")
    return tuple(variables)


def measurements(analysis: AnalysisTables, variables: tuple[str, ...] | None) -> pl.LazyFrame | None:
    """Non-null numeric results of vs and lb: site_id, USUBJID, variable (``VS:SYSBP``), VISITNUM, value.

    None when the study has neither table (or none of the requested variables' tables).
    """
    parts = []
    for domain, (table, code, value) in DOMAINS.items():
        wanted = variables is None or any(v.startswith(domain + ":") for v in variables)
        if table not in analysis or not wanted:
            continue
        parts.append(analysis.with_sites(table).select(
            site_id=pl.col("SITEID").cast(pl.String), USUBJID=pl.col("USUBJID"),
            variable=pl.concat_str(pl.lit(domain + ":"), pl.col(code)),
            VISITNUM=pl.col("VISITNUM").cast(pl.Float64), value=pl.col(value).cast(pl.Float64),
        ).filter(pl.col("value").is_finite() & pl.col("site_id").is_not_null()))  # is_finite: null -> null
    if not parts:
        return None
    out = pl.concat(parts)
    return out.filter(pl.col("variable").is_in(variables)) if variables is not None else out

"""QTL definitions: the ``qtl*.yaml`` files of ``key_risk_indicators/`` as validated, frozen models.

A quality tolerance limit is the study-level sibling of a KRI: the same numerator and
denominator counts over the analysis tables (``rbqm.kri.definition.Count``, and the named
counts of ``blocks.yaml``), an expected rate, a secondary (warning) limit and a tolerance
limit, the statistical method that judges the study against them, and the actions a breach
calls for. No code lives in a definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rbqm.kri.definition import Count, load_library

__all__ = ["QTL_METHODS", "QtlDefinition", "load_qtl_definitions"]

#: method -> the kind of QTL it judges
QTL_METHODS: dict[str, Literal["binary", "rate"]] = {
    "proportion_exact": "binary",
    "one_sided_proportion": "binary",
    "beta_binomial": "binary",
    "gamma_poisson": "rate",
}


class QtlDefinition(BaseModel):
    """One quality tolerance limit (one ``qtlNNNN.yaml`` file of the library).

    Rates and limits are on the metric scale: proportions for a binary QTL, events per
    ``metric_scale`` units of exposure for a rate.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^qtl\d{4}$")
    name: str
    description: str
    rationale: str
    kind: Literal["binary", "rate"]
    numerator: Count
    denominator: Count
    metric_scale: float = Field(default=1.0, gt=0)
    metric_unit: str
    expected_rate: float = Field(gt=0)
    secondary_limit: float | None = None
    tolerance_limit: float | None = None
    method: Literal[tuple(QTL_METHODS)]  # type: ignore[valid-type]
    actions: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> QtlDefinition:
        if QTL_METHODS[self.method] != self.kind:
            fits = ", ".join(m for m, k in QTL_METHODS.items() if k == self.kind)
            raise ValueError(f"method {self.method} does not judge a {self.kind} QTL; use one of {fits}")
        num, den = self.numerator, self.denominator
        if num.count is None:
            raise ValueError("numerator must count records or subjects (events), not sum a column")
        if self.kind == "binary":
            if den.count != num.count:
                raise ValueError(f"a binary QTL is a share: numerator and denominator must count the same unit "
                                 f"(records or subjects); got {num.count} and {den.count or 'a sum'}")
            if num.count == "records" and num.table != den.table:
                raise ValueError(f"a binary QTL counting records needs numerator and denominator in the same "
                                 f"table; got {num.table} and {den.table}")
            if self.metric_scale != 1:
                raise ValueError("a binary QTL is a proportion: metric_scale must be 1")
        limits = [v for v in (self.secondary_limit, self.tolerance_limit) if v is not None]
        if self.method == "one_sided_proportion":
            if limits:
                raise ValueError("one_sided_proportion derives its limits from expected_rate and the number of "
                                 "subjects (gsm.qtl: secondary limit = expected_rate, tolerance limit = "
                                 "expected_rate + 3 sqrt(expected_rate (1 - expected_rate) / n)); remove "
                                 "secondary_limit and tolerance_limit, or choose proportion_exact or "
                                 "beta_binomial for fixed limits")
        elif len(limits) != 2:
            raise ValueError(f"method {self.method} needs secondary_limit and tolerance_limit")
        elif not self.expected_rate < self.secondary_limit < self.tolerance_limit:  # type: ignore[operator]
            raise ValueError(f"limits must increase: expected_rate < secondary_limit < tolerance_limit; got "
                             f"{self.expected_rate:g}, {self.secondary_limit:g}, {self.tolerance_limit:g}")
        if self.kind == "binary" and not all(0 < v < 1 for v in (self.expected_rate, *limits)):
            raise ValueError("a binary QTL's expected_rate and limits are proportions, "
                             "strictly between 0 and 1")
        return self

    @property
    def needs(self) -> set[str]:
        """The study tables this QTL reads."""
        return {*self.numerator.sources, *self.denominator.sources}


def load_qtl_definitions(folder: Path | None = None) -> list[QtlDefinition]:
    """Every ``qtl*.yaml`` definition in ``folder`` (default: the shipped library), sorted by id.

    A numerator or denominator may name a count of ``blocks.yaml`` (``{block: enrolled_subjects}``),
    exactly as in KRI definitions.

    Raises
    ------
    DefinitionError
        Naming the file and the key of the first mistake, or a duplicate id.

    Examples
    --------
    >>> [d.id for d in load_qtl_definitions()][:2]
    ['qtl0001', 'qtl0002']
    """
    return load_library(folder, ("qtl*.yaml",), QtlDefinition, "QTL")

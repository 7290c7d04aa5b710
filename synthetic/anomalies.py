"""Anomaly specifications: which problems to inject, where, how strongly and from when.

An anomaly file is YAML::

    anomalies:
      - type: ae_under_reporting
        magnitude: 0.5          # meaning depends on the type, see ANOMALY_TYPES
        sites: 2                # how many sites (chosen by the seed), or a list of SITEIDs
        start: 0.25             # fraction of the study period, or an ISO date
      - type: lab_calibration_shift
        magnitude: 0.2
        sites: ["1004"]
        analytes: [CREAT]

``--anomalies default`` uses ``synthetic/default_anomalies.yaml``; ``none`` injects nothing.
"""

from __future__ import annotations

from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from rbqm.errors import DefinitionError

__all__ = ["ANOMALY_TYPES", "AnomalySpec", "load_anomalies"]

# type -> (smallest magnitude, largest magnitude, what the magnitude means)
ANOMALY_TYPES: dict[str, tuple[float, float, str]] = {
    "ae_under_reporting": (0.0, 1.0, "share of adverse events (onset on or after start) not reported"),
    "sae_under_reporting": (0.0, 1.0, "share of serious adverse events reported as non-serious"),
    "excess_important_deviations": (1.0, 50.0, "ratio of the site's important-deviation rate to the usual rate"),
    "late_data_entry": (1.0, 50.0, "multiplier of the page entry lag for visits on or after start"),
    "query_backlog": (1.0, 50.0, "multiplier of the query answer time for queries opened on or after start"),
    "high_screen_failure": (0.0, 0.95, "screen-failure probability of subjects screened on or after start"),
    "high_discontinuation": (1.0, 50.0, "hazard ratio of study withdrawal and treatment discontinuation after start"),
    "fabricated_subjects": (0.0, 1.0, "share of subjects randomised on or after start whose labs and vitals are fabricated"),
    "digit_preference": (0.0, 1.0, "share of blood-pressure readings (on or after start) rounded to end in 0"),
    "implausible_visit_dates": (0.0, 1.0, "share of visits (on or after start) dated on a weekend or public holiday"),
    "lab_calibration_shift": (-0.9, 5.0, "relative shift of the analytes' results from start (0.2 = +20%)"),
    "excess_eligibility_violations": (0.0, 1.0, "share of subjects randomised on or after start who violate eligibility"),
}

AnomalyType = Literal[
    "ae_under_reporting", "sae_under_reporting", "excess_important_deviations", "late_data_entry",
    "query_backlog", "high_screen_failure", "high_discontinuation", "fabricated_subjects",
    "digit_preference", "implausible_visit_dates", "lab_calibration_shift", "excess_eligibility_violations",
]


class AnomalySpec(BaseModel):
    """One anomaly to inject: its type, magnitude, sites and start."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: AnomalyType
    magnitude: float
    sites: int | tuple[str, ...] = 1
    start: float | date = 0.25
    analytes: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _check(self) -> AnomalySpec:
        low, high, meaning = ANOMALY_TYPES[self.type]
        if not low <= self.magnitude <= high:
            raise ValueError(f"magnitude of {self.type} ({meaning}) must be between {low} and {high}, "
                             f"got {self.magnitude}")
        if isinstance(self.sites, int) and self.sites < 1:
            raise ValueError(f"sites must be a positive count or a list of SITEIDs, got {self.sites}")
        if isinstance(self.start, float) and not 0.0 <= self.start < 1.0:
            raise ValueError(f"start as a fraction of the study period must be in [0, 1), got {self.start}")
        if self.analytes is not None and self.type != "lab_calibration_shift":
            raise ValueError("analytes applies only to lab_calibration_shift")
        return self


def _default_path() -> Path:
    return Path(str(files("synthetic").joinpath("default_anomalies.yaml")))


def load_anomalies(choice: str | Path) -> tuple[AnomalySpec, ...]:
    """Anomalies from ``"default"``, ``"none"`` or the path of a YAML file.

    Raises
    ------
    DefinitionError
        When the file is missing, is not YAML, or an entry is invalid; the message
        names the file, the entry (1-based) and the key.

    Examples
    --------
    >>> len(load_anomalies("none"))
    0
    >>> sorted({a.type for a in load_anomalies("default")})[:2]
    ['ae_under_reporting', 'digit_preference']
    """
    if str(choice) == "none":
        return ()
    path = _default_path() if str(choice) == "default" else Path(choice)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot read the anomaly file ({exc.strerror}); "
                              "use default, none or the path of a YAML file") from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("anomalies"), list):
        raise DefinitionError(f"{path}: expected a top-level key 'anomalies' holding a list of entries")
    specs = []
    for number, entry in enumerate(raw["anomalies"], start=1):
        try:
            specs.append(AnomalySpec.model_validate(entry))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'entry'}: {err['msg']}" for err in exc.errors()
            )
            raise DefinitionError(f"{path}: anomaly {number}: {problems}") from exc
    return tuple(specs)

"""Key risk indicators: the declarative library (``key_risk_indicators/*.yaml``), their
computation per site and country, the site risk score, and trends across data cuts."""

from rbqm.kri.compute import KriResults, compute_kris, site_risk
from rbqm.kri.definition import DEFAULT_LIBRARY, KriDefinition, load_definitions
from rbqm.kri.trend import FLAG_CHANGES, add_trend

__all__ = ["DEFAULT_LIBRARY", "FLAG_CHANGES", "KriDefinition", "KriResults", "add_trend", "compute_kris",
           "load_definitions", "site_risk"]

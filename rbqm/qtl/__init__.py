"""Quality tolerance limits (QTLs): study-level limits on critical-to-quality parameters.

The library is declarative (``key_risk_indicators/qtl*.yaml``, loaded by
:func:`load_qtl_definitions`) and :func:`compute_qtls` judges a study against it. The
statistics are public for use in notebooks:

* :func:`observed_minus_expected` -- the O-E chart with binomial warning limits and action limits;
* :func:`beta_binomial_predictive` and :func:`gamma_poisson_predictive` -- Bayesian hierarchical
  models over sites, integrated on a grid, with the predictive rate of a new site and the
  posterior of the study rate;
* :func:`clopper_pearson` and :func:`one_sided_proportion` -- the exact interval of a proportion
  and gsm.qtl's one-sided test;
* :func:`qtl_trend`, :func:`study_qtls`, :func:`breach_log_csv` and :func:`breach_log_markdown` -- the
  status over cuts with a study's own limits (:func:`with_limits`), and the breach log for the report.

See docs/qtl.md for the formulas and the library.
"""

from rbqm.qtl._hierarchical import PosteriorPredictive, beta_binomial_predictive, gamma_poisson_predictive
from rbqm.qtl._oe import OE_STATUSES, observed_minus_expected
from rbqm.qtl._proportion import OneSidedProportion, clopper_pearson, one_sided_proportion
from rbqm.qtl.compute import QTL_RESULT_COLUMNS, QTL_STATUSES, compute_qtls, site_counts, with_limits
from rbqm.qtl.definition import QTL_METHODS, QtlDefinition, load_qtl_definitions
from rbqm.qtl.report import breach_log_csv, breach_log_markdown, qtl_trend, study_qtls

__all__ = [
    "OE_STATUSES",
    "OneSidedProportion",
    "PosteriorPredictive",
    "QTL_METHODS",
    "QTL_RESULT_COLUMNS",
    "QTL_STATUSES",
    "QtlDefinition",
    "beta_binomial_predictive",
    "breach_log_csv",
    "breach_log_markdown",
    "clopper_pearson",
    "compute_qtls",
    "gamma_poisson_predictive",
    "load_qtl_definitions",
    "observed_minus_expected",
    "one_sided_proportion",
    "qtl_trend",
    "site_counts",
    "study_qtls",
    "with_limits",
]

"""observed_minus_expected_by_cut: values by hand, scipy for the warning band, statuses, the limit lines."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, poisson

from rbqm.errors import RbqmError
from rbqm.qtl import load_qtl_definitions, with_limits
from rbqm.qtl.oe_cuts import OE_CUT_COLUMNS, observed_minus_expected_by_cut

LIBRARY = load_qtl_definitions()
CUT1, CUT2 = date(2025, 1, 31), date(2025, 2, 28)


def frame(rows: list[dict]) -> pl.DataFrame:
    base = {"study_id": "S", "cut_date": CUT1}
    return pl.DataFrame([base | row for row in rows],
                        schema={"study_id": pl.String, "qtl_id": pl.String, "cut_date": pl.Date,
                                "numerator": pl.Float64, "denominator": pl.Float64, "limit": pl.Float64,
                                "secondary_limit": pl.Float64})


def test_binary_qtl_by_hand() -> None:
    # qtl0003: expected 0.20, secondary 0.30, tolerance 0.35; 100 subjects, 24 discontinued.
    out = observed_minus_expected_by_cut(
        frame([{"qtl_id": "qtl0003", "numerator": 24.0, "denominator": 100.0, "limit": 0.35,
                "secondary_limit": 0.30}]), LIBRARY)
    assert out.schema == pl.Schema(OE_CUT_COLUMNS)
    row = out.row(0, named=True)
    assert (row["observed"], row["expected"], row["o_minus_e"]) == (24.0, 20.0, 4.0)
    assert (row["secondary_line"], row["limit_line"]) == (10.0, 15.0)  # 100 x (0.30 - 0.20), 100 x (0.35 - 0.20)
    # Binomial(100, 0.2): the 1% quantile is 11 and the 99% quantile 30 (scipy agrees below).
    assert (row["warn_lower"], row["warn_upper"]) == (11.0 - 20.0, 30.0 - 20.0)
    assert binom.ppf([0.01, 0.99], 100, 0.2).tolist() == [11.0, 30.0]
    assert row["status"] == "within"


def test_rate_qtl_uses_the_metric_scale_and_poisson() -> None:
    # qtl0009: 0.5 important deviations per 1,000 days expected; 20,000 days -> E = 10; tolerance 1.0 -> line 10.
    out = observed_minus_expected_by_cut(
        frame([{"qtl_id": "qtl0009", "numerator": 19.0, "denominator": 20_000.0, "limit": 1.0,
                "secondary_limit": 0.75}]), LIBRARY)
    row = out.row(0, named=True)
    assert (row["expected"], row["o_minus_e"], row["secondary_line"], row["limit_line"]) == (10.0, 9.0, 5.0, 10.0)
    assert row["warn_upper"] == poisson.ppf(0.99, 10.0) - 10.0 == 8.0
    assert row["warn_lower"] == poisson.ppf(0.01, 10.0) - 10.0 == -7.0
    assert row["status"] == "warning"  # 9 > 8, below the tolerance line


@pytest.mark.parametrize(("numerator", "status"), [(34.0, "warning"), (35.0, "action"), (36.0, "action"),
                                                   (20.0, "within"), (8.0, "warning")])
def test_status(numerator: float, status: str) -> None:
    out = observed_minus_expected_by_cut(
        frame([{"qtl_id": "qtl0003", "numerator": numerator, "denominator": 100.0, "limit": 0.35,
                "secondary_limit": 0.30}]), LIBRARY)
    assert out["status"].to_list() == [status]  # 35 / 100 = the tolerance limit itself: action (closed)


def test_expected_rate_comes_from_the_definitions_given() -> None:
    changed = with_limits(LIBRARY, {"qtl0003": {"limit": 0.5, "secondary_limit": 0.4, "expected_rate": 0.25}})
    out = observed_minus_expected_by_cut(
        frame([{"qtl_id": "qtl0003", "numerator": 24.0, "denominator": 100.0, "limit": 0.5,
                "secondary_limit": 0.4}]), changed)
    assert out.row(0, named=True)["expected"] == 25.0
    assert out.row(0, named=True)["limit_line"] == 25.0


def test_unjudged_cuts_and_unknown_qtls_have_nulls_and_rows_are_ordered() -> None:
    rows = [{"qtl_id": "qtl0003", "cut_date": CUT2, "numerator": 1.0, "denominator": 10.0, "limit": 0.35,
             "secondary_limit": 0.3},
            {"qtl_id": "qtl0003", "cut_date": CUT1, "numerator": 0.0, "denominator": 0.0, "limit": None,
             "secondary_limit": None},
            {"qtl_id": "qtl9999", "numerator": 3.0, "denominator": 10.0, "limit": 0.5, "secondary_limit": 0.4}]
    out = observed_minus_expected_by_cut(frame(rows), LIBRARY)
    assert out.select("qtl_id", "cut_date").rows() == [("qtl0003", CUT1), ("qtl0003", CUT2), ("qtl9999", CUT1)]
    assert out.row(0, named=True)["o_minus_e"] is None and out.row(0, named=True)["status"] is None
    assert out.row(2, named=True)["expected"] is None and out.row(2, named=True)["status"] is None
    assert out.row(1, named=True)["o_minus_e"] == pytest.approx(-1.0)


def test_bad_quantiles_are_refused() -> None:
    with pytest.raises(RbqmError, match="'q' parameter"):
        observed_minus_expected_by_cut(frame([]), LIBRARY, q=(0.0, 0.99))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 2000), share=st.floats(0, 1), limit=st.floats(0.21, 0.99))
def test_action_exactly_when_the_observed_share_reaches_the_limit(n: int, share: float, limit: float) -> None:
    observed = float(round(share * n))
    out = observed_minus_expected_by_cut(
        frame([{"qtl_id": "qtl0003", "numerator": observed, "denominator": float(n), "limit": limit,
                "secondary_limit": 0.205}]), LIBRARY).row(0, named=True)
    assert (out["status"] == "action") is (observed / n >= limit)
    assert out["o_minus_e"] - out["limit_line"] == pytest.approx(observed - n * limit, abs=1e-6)
    assert out["warn_lower"] <= 0 <= out["warn_upper"]  # the band holds the expected count

"""RACT-style scoring arithmetic on hand examples (double-programmed where it is a formula)."""

from __future__ import annotations

import itertools

import pytest

from rbqm.risk import (LEVEL_CUTOFFS, RiskCategory, RiskDefinition, RiskRegister, load_risk_register, risk_level,
                       risk_score, score_register, study_risk)


def _risk(risk_id: str, category: str, impact: int, likelihood: int, detectability: int) -> RiskDefinition:
    return RiskDefinition(id=risk_id, name=risk_id, category=category, description="d", impact=impact,
                          likelihood=likelihood, detectability=detectability, rationale="r", controls=("c",))


def test_score_is_the_product_of_the_three_ratings():
    assert risk_score(1, 1, 1) == 1
    assert risk_score(3, 2, 3) == 18
    assert risk_score(2, 2, 2) == 8
    assert risk_score(3, 3, 3) == 27
    products = {risk_score(*r) for r in itertools.product((1, 2, 3), repeat=3)}
    assert products == {1, 2, 3, 4, 6, 8, 9, 12, 18, 27}


@pytest.mark.parametrize("bad", [0, 4, 2.5, None])
def test_score_rejects_ratings_outside_1_to_3(bad):
    with pytest.raises(ValueError, match="likelihood must be 1, 2 or 3"):
        risk_score(2, bad, 2)


@pytest.mark.parametrize(("score", "level"), [(1, "low"), (6, "low"), (7.99, "low"), (8, "medium"), (12, "medium"),
                                              (17.99, "medium"), (18, "high"), (27, "high")])
def test_level_cutoffs(score, level):
    assert LEVEL_CUTOFFS == (8, 18)
    assert risk_level(score) == level


def test_study_level_is_the_weighted_mean_of_category_maxima():
    register = RiskRegister(
        categories={"a": RiskCategory(name="A", weight=3, description="x"),
                    "b": RiskCategory(name="B", weight=1, description="y"),
                    "c": RiskCategory(name="C", weight=2, description="unused: no risk, not in the mean")},
        risks=(_risk("risk0001", "a", 3, 2, 3), _risk("risk0002", "a", 2, 2, 1), _risk("risk0003", "b", 1, 2, 1)))
    scored = score_register(register)
    assert scored.select("risk_id", "score", "level").rows() == [
        ("risk0001", 18, "high"), ("risk0002", 4, "low"), ("risk0003", 2, "low")]
    overall = study_risk(register)
    # category a: max(18, 4) = 18 (weight 3); b: 2 (weight 1); (3*18 + 1*2) / 4 = 14
    assert overall.score == pytest.approx(14.0)
    assert overall.level == "medium"
    assert overall.categories.select("category", "risks", "score", "level").rows() == [
        ("a", 2, 18, "high"), ("b", 1, 2, "low")]


def test_study_level_of_the_library_template():
    overall = study_risk(load_risk_register())
    # safety 18 (w3), consent 9 (w3), eligibility 12 (w2), endpoint 12 (w3), IP 12 (w2), integrity 9 (w3),
    # protocol 8 (w2), retention 6 (w2), timeliness 4 (w1)
    expected = (3 * 18 + 3 * 9 + 2 * 12 + 3 * 12 + 2 * 12 + 3 * 9 + 2 * 8 + 2 * 6 + 1 * 4) / 21
    assert overall.score == pytest.approx(expected) and overall.level == "medium"


def test_empty_register_is_low():
    overall = study_risk(RiskRegister(categories={}, risks=()))
    assert (overall.score, overall.level, overall.categories.height) == (0.0, "low", 0)

"""Every table the generator writes conforms to docs/data-format.md (rbqm/tables.yaml).

Checked on the session study (``study_dir``, end of study) and on its oldest data cut,
where most records are censored. The docs themselves are checked against the schema.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from rbqm.io import read_study
from rbqm.schema import TABLE_NAMES, polars_schema, render_markdown, table
from rbqm.study import list_cuts

DOCS = Path(__file__).resolve().parents[1] / "docs" / "data-format.md"
WHERE = ("study", "first_cut")
DATE_ORDER = [  # (table, earlier, later): the later date, where present, is never before the earlier
    ("dm", "RFICDTC", "RFSTDTC"),
    ("dm", "RFSTDTC", "RFENDTC"),
    ("dm", "RFICDTC", "RFENDTC"),
    ("ae", "AESTDTC", "AEENDTC"),
    ("queries", "QRYOPENDTC", "QRYANSDTC"),
    ("queries", "QRYANSDTC", "QRYCLOSEDTC"),
    ("queries", "QRYOPENDTC", "QRYCLOSEDTC"),
    ("ex", "EXSTDTC", "EXENDTC"),
]


@pytest.fixture(scope="module")
def studies(study_dir):
    """The session study and its oldest cut, read once: {where: {table: frame}}."""
    cuts = list_cuts(study_dir)
    assert len(cuts) == 3
    return {"study": read_study(study_dir), "first_cut": read_study(cuts[0])}


def _columns(kind: str | None = None, *, required: bool | None = None, coded: bool = False):
    return [
        (name, c.name)
        for name in TABLE_NAMES
        for c in table(name).columns
        if (kind is None or c.type == kind) and (required is None or c.required == required)
        and (not coded or c.values)
    ]


def _ids(pairs):
    return [".".join(p) for p in pairs]


@pytest.mark.parametrize("where", WHERE)
def test_every_table_is_written(studies, where):
    assert sorted(studies[where]) == sorted(TABLE_NAMES)


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("name", TABLE_NAMES)
def test_dtypes_and_column_order_match_the_schema(studies, where, name):
    frame = studies[where][name]
    assert dict(frame.schema) == polars_schema(name)
    assert frame.columns == list(polars_schema(name))


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("name", "column"), _columns(required=True), ids=_ids(_columns(required=True)))
def test_required_columns_are_present_and_never_null(studies, where, name, column):
    frame = studies[where][name]
    assert column in frame.columns
    assert frame[column].null_count() == 0


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("name", "column"), _columns(coded=True), ids=_ids(_columns(coded=True)))
def test_coded_values_are_in_their_codelist(studies, where, name, column):
    allowed = table(name).column(column).values
    values = set(studies[where][name][column].drop_nulls().unique().to_list())
    assert values <= set(allowed), f"{name}.{column}: {sorted(values - set(allowed))} not in {allowed}"


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("name", [n for n in TABLE_NAMES if table(n).key])
def test_keys_are_unique(studies, where, name):
    key = list(table(name).key)
    frame = studies[where][name]
    duplicated = frame.filter(frame.select(key).is_duplicated())
    assert duplicated.is_empty(), f"{name}: duplicated key {key}:\n{duplicated.head(5)}"


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("name", "column"), _columns("datetime"), ids=_ids(_columns("datetime")))
def test_datetime_columns_are_iso_dates(studies, where, name, column):
    frame = studies[where][name]
    bad = frame.filter(pl.col(column).is_not_null()
                       & pl.col(column).str.to_date("%Y-%m-%d", strict=False).is_null())
    assert bad.is_empty(), f"{name}.{column}: not ISO 8601 dates: {bad[column].head(5).to_list()}"


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("name", "earlier", "later"), DATE_ORDER,
                         ids=[f"{t}.{a}<={b}" for t, a, b in DATE_ORDER])
def test_dates_are_in_order(studies, where, name, earlier, later):
    frame = studies[where][name]
    day = lambda c: pl.col(c).str.to_date("%Y-%m-%d")  # noqa: E731
    both = frame.filter(pl.col(earlier).is_not_null() & pl.col(later).is_not_null())
    bad = both.filter(day(earlier) > day(later))
    assert bad.is_empty(), f"{name}: {earlier} after {later}:\n{bad.select(earlier, later).head(5)}"
    if where == "study":
        assert both.height > 0, f"{name}: no row has both {earlier} and {later}, so nothing was checked"


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("name", [n for n in TABLE_NAMES if n != "dm" and "USUBJID" in table(n).column_names])
def test_every_subject_is_in_dm(studies, where, name):
    subjects = studies[where]["dm"].select("USUBJID")
    orphans = studies[where][name].select("USUBJID").unique().join(subjects, on="USUBJID", how="anti")
    assert orphans.is_empty(), f"{name}: subjects not in dm: {orphans['USUBJID'].head(5).to_list()}"


@pytest.mark.parametrize("where", WHERE)
def test_every_dm_site_is_in_sites(studies, where):
    data = studies[where]
    sites = data["sites"].select("SITEID")
    orphans = data["dm"].select("SITEID").unique().join(sites, on="SITEID", how="anti")
    assert orphans.is_empty(), f"dm sites not in sites: {orphans['SITEID'].to_list()}"
    assert data["dm"].height > 0


def test_docs_match_the_schema():
    """docs/data-format.md is generated from rbqm/tables.yaml and must not drift."""
    assert DOCS.read_text(encoding="utf-8") == render_markdown(), (
        "docs/data-format.md is out of date with rbqm/tables.yaml; run `make docs` to regenerate it"
    )

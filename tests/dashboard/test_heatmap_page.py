"""The site risk heatmap page: risk score (and data inconsistency) columns, region filter, sorting and the
click targets that open a site's profile; through AppTest on a small generated study."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import plotly.io
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from rbqm.analysis import analyze_study

from .conftest import sign_in

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
APP = DASHBOARD / "app.py"


def _charts() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboard_charts", DASHBOARD / "charts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


charts = _charts()


@pytest.fixture(scope="module")
def analysis(generated_data: Path):
    return analyze_study(generated_data / "demo", permutations=int(os.environ["RBQM_PERMUTATIONS"]))


@pytest.fixture(autouse=True)
def _fresh_streamlit_cache() -> Iterator[None]:
    """Overrides conftest's: the tests here share one generated study (its analysis is computed once); the
    others use folders of their own, which are cache keys of their own."""
    yield


@pytest.fixture
def demo_dir(generated_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RBQM_DATA_DIR", str(generated_data))
    return generated_data


@pytest.fixture
def site_regions(generated_data: Path) -> dict[str, str]:
    sites = pl.read_parquet(generated_data / "demo" / "sites.parquet")
    return dict(zip(sites["SITEID"], sites["REGION"], strict=True))


def open_heatmap() -> AppTest:
    at = sign_in(AppTest.from_file(str(APP), default_timeout=120)).run()
    return at.switch_page("pages/heatmap.py").run()


def heatmap(at: AppTest):
    chart = next(c for c in at.get("plotly_chart") if "heatmap" in c.proto.id)
    return plotly.io.from_json(chart.proto.spec)


def latest_risk(analysis) -> pl.DataFrame:
    return analysis.site_risk.filter(pl.col("cut_date") == max(analysis.cut_dates)).sort("rank", "site_id")


def test_risk_score_is_a_column_of_the_heatmap(demo_dir: Path, analysis) -> None:
    at = open_heatmap()
    assert not at.exception
    figure = heatmap(at)
    risk = latest_risk(analysis)
    scores = next(t for t in figure.data if t.type == "heatmap" and t.name == "Risk score")
    assert list(scores.y) == risk["site_id"].to_list()
    assert [row[0] for row in scores.text] == [f"{v:.1f}" for v in risk["risk_score"].to_list()]
    top = max(risk["risk_score"].to_list())
    assert [row[0] for row in scores.z] == pytest.approx([v / top for v in risk["risk_score"].to_list()])
    has_dis = "dis" in risk.columns and risk["dis"].is_not_null().any()
    scored = ["Risk score", "Data inconsistency"] if has_dis else ["Risk score"]
    assert list(figure.layout.xaxis.ticktext)[len(figure.data[0].x):] == scored
    table = at.dataframe(key="site_risk").value
    assert list(table["risk_score"]) == pytest.approx(risk["risk_score"].to_list())
    assert ("dis" in table.columns) is has_dis


def test_every_cell_is_a_click_target_carrying_its_site(demo_dir: Path, analysis) -> None:
    figure = heatmap(open_heatmap())
    targets = figure.data[-1]
    assert targets.type == "scatter" and targets.mode == "markers"
    flags = figure.data[0]
    columns = list(figure.layout.xaxis.tickvals)
    assert columns[:len(flags.x)] == list(flags.x) == list(range(len(flags.x)))  # KRI i at x = i
    assert list(figure.layout.xaxis.ticktext)[len(flags.x)] == "Risk score"
    assert len(targets.customdata) == len(flags.y) * len(columns)
    assert list(targets.customdata) == list(targets.y)  # each target's site is its row
    assert set(targets.customdata) == set(latest_risk(analysis)["site_id"].to_list())
    assert all("Site " in text for text in targets.hovertext)  # the hover text moved onto the targets


def test_region_filter_keeps_the_regions_sites(demo_dir: Path, site_regions: dict[str, str]) -> None:
    at = open_heatmap()
    assert at.multiselect(key="region").options == sorted(set(site_regions.values()))
    at.multiselect(key="region").set_value(["Western Europe"]).run()
    assert not at.exception
    expected = sorted(site for site, region in site_regions.items() if region == "Western Europe")
    assert sorted(heatmap(at).data[0].y) == expected and 0 < len(expected) < len(site_regions)
    assert set(at.dataframe(key="site_risk").value["region"]) == {"Western Europe"}


def test_sort_by_site_and_by_country(demo_dir: Path, analysis) -> None:
    at = open_heatmap()
    expected_options = ["risk", "site", "country", "region"]
    if latest_risk(analysis).get_column("dis", default=pl.Series([None])).is_not_null().any():
        expected_options.insert(1, "dis")
    assert at.selectbox(key="heatmap_sort").options == [charts_label(o) for o in expected_options]
    at.selectbox(key="heatmap_sort").set_value("site").run()
    risk = latest_risk(analysis)
    assert list(heatmap(at).data[0].y) == sorted(risk["site_id"].to_list())
    at.selectbox(key="heatmap_sort").set_value("country").run()
    by_country = risk.sort("country", "rank", "site_id", nulls_last=True)["site_id"].to_list()
    assert list(heatmap(at).data[0].y) == by_country


def charts_label(option: str) -> str:
    """The label the sort selectbox shows for an option (AppTest reports the formatted options)."""
    return {"risk": "Risk rank", "dis": "Data inconsistency", "site": "Site", "country": "Country",
            "region": "Region"}[option]


def test_filters_that_leave_no_site_say_so(demo_dir: Path, analysis, site_regions: dict[str, str]) -> None:
    at = open_heatmap()
    assert site_regions and "USA" in analysis.site_risk["country"].to_list()
    at.multiselect(key="country").set_value(["USA"]).run()  # North America
    at.multiselect(key="region").set_value(["Western Europe"]).run()
    assert not at.exception
    assert "No site results" in at.info[0].value and "Clear a filter" in at.info[0].value
    assert not at.get("plotly_chart")


def test_the_figure_shows_data_inconsistency_when_the_risk_table_has_it() -> None:
    cells = pl.DataFrame({"group_id": ["1", "2"], "kri_id": ["kri0001"] * 2, "name": ["AE rate"] * 2,
                          "flag": [2, None], "metric_shown": [1.0, 2.0], "metric_unit": ["u"] * 2,
                          "score": [3.1, None], "note": [None, "too few to score"]},
                         schema_overrides={"flag": pl.Int8})
    risk = pl.DataFrame({"site_id": ["1", "2"], "risk_score": [50.0, None], "dis": [2.0, 0.5]})
    unscored = charts.site_heatmap_figure(cells, risk.with_columns(dis=pl.lit(None, pl.Float64)))
    assert [t.name for t in unscored.data if t.type == "heatmap"] == [None, "Risk score"]
    figure = charts.site_heatmap_figure(cells, risk)
    assert [list(t.x) for t in figure.data if t.type == "heatmap"] == [[0], [1.25], [2.25]]
    assert list(figure.layout.xaxis.ticktext) == ["AE rate", "Risk score", "Data inconsistency"]
    dis = figure.data[2]
    assert [row[0] for row in dis.text] == ["2.0", "0.5"] and [row[0] for row in dis.z] == [1.0, 0.25]
    assert [row[0] for row in figure.data[1].text] == ["50.0", "–"]
    assert list(figure.data[0].text[1]) == [charts.NOT_SCORED]
    assert len(figure.data[-1].customdata) == 6


@pytest.mark.parametrize(("state", "site"), [
    ({"selection": {"points": [{"x": "kri0001", "y": "1003", "customdata": "1003"}]}}, "1003"),
    ({"selection": {"points": [{"x": "kri0001", "y": "1004", "customdata": ["1004"]}]}}, "1004"),
    ({"selection": {"points": [{"x": "kri0001", "y": 1005}]}}, "1005"),
    ({"selection": {"points": []}}, None),
    ({"selection": {}}, None),
    (None, None),
])
def test_selected_site_reads_the_clicked_cell(state, site) -> None:
    assert charts.selected_site(state) == site


def test_the_page_run_without_app_py_asks_to_sign_in(study_data_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DASHBOARD))
    at = AppTest.from_file(str(DASHBOARD / "pages" / "heatmap.py"), default_timeout=30).run()
    assert not at.exception
    assert at.text_input(key="login_user") and not at.selectbox

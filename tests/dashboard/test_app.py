"""The dashboard through Streamlit's AppTest, from the entrypoint, on the tiny study."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import plotly.io
import pytest
from streamlit.testing.v1 import AppTest

from .conftest import sign_in
from .study_builder import CUT, EXPECTED, build_study

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def run_app() -> AppTest:
    """The dashboard after its first run (the default page)."""
    return sign_in(AppTest.from_file(str(APP), default_timeout=30)).run()


def metrics(at: AppTest) -> dict[str, str]:
    """The page's metrics as label -> displayed value."""
    return {m.label: m.value for m in at.metric}


def plotted(values: Any) -> list[Any]:
    """The values of a plotly trace array, decoding plotly's base64 typed arrays (``{"dtype", "bdata"}``)."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def test_overview_shows_the_study_counts(study_data_dir: Path) -> None:
    at = run_app()
    assert not at.exception
    assert at.title[0].value == "Study overview"
    assert "landing page" in at.caption[0].value
    expected = EXPECTED[None]
    size = ("Subjects screened", "Enrolled", "Sites", "Countries", "Latest date")
    assert {label: value for label, value in metrics(at).items() if label in size} == {
        "Subjects screened": str(expected["screened"]),
        "Enrolled": str(expected["enrolled"]),
        "Sites": str(expected["sites"]),
        "Countries": str(expected["countries"]),
        "Latest date": expected["last_date"],
    }
    assert [m.label for m in at.metric][:5] == list(size)  # first; the rest: test_overview_page.py
    assert [s.value for s in at.subheader][0] == "TINY-01"


def test_overview_lists_rows_per_table(study_data_dir: Path) -> None:
    at = run_app()
    rows = next(d.value for d in at.dataframe if "Table" in d.value.columns)
    counts = dict(zip(rows["Table"], rows["Rows"], strict=True))
    assert counts == {"dm": EXPECTED[None]["dm_rows"], "sites": 2}
    assert list(rows["Contents"]) == ["Demographics", "Sites"]


def test_site_chart_is_sorted_by_enrolment_and_coloured_by_country(study_data_dir: Path) -> None:
    at = run_app()
    spec = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("site_enrolment")).proto.spec
    figure = plotly.io.from_json(spec)
    bars = {trace.name: (plotted(trace.x), plotted(trace.y)) for trace in figure.data}
    assert bars == {
        "FRA": (["101"], [EXPECTED[None]["enrolled_101"]]),
        "DEU": (["102"], [EXPECTED[None]["enrolled_102"]]),
    }
    assert figure.layout.xaxis.categoryorder == "total descending"


def test_cut_options_are_newest_first_after_the_full_study(study_data_dir: Path) -> None:
    build_study(study_data_dir / "demo" / "cuts" / "2024-06-30")  # a later cut, written second
    at = run_app()
    assert at.selectbox(key="cut").options == ["latest (full study)", "2024-06-30", CUT]
    assert at.selectbox(key="cut").value == "latest (full study)"


def test_choosing_a_cut_shows_that_cut(study_data_dir: Path) -> None:
    at = run_app()
    assert metrics(at)["Enrolled"] == str(EXPECTED[None]["enrolled"])
    at.selectbox(key="cut").set_value(CUT).run()
    assert not at.exception
    assert metrics(at)["Enrolled"] == str(EXPECTED[CUT]["enrolled"])
    assert metrics(at)["Subjects screened"] == str(EXPECTED[CUT]["screened"])
    assert metrics(at)["Latest date"] == EXPECTED[CUT]["last_date"]


def test_studies_are_the_data_dir_folders_with_a_dm_table(study_data_dir: Path) -> None:
    build_study(study_data_dir / "another")
    (study_data_dir / "notes").mkdir()  # a folder without tables is not a study
    at = run_app()
    study = at.selectbox(key="study")
    assert [Path(option).name for option in study.options] == ["another", "demo"]
    study.set_value(str(study_data_dir / "demo")).run()
    assert not at.exception
    assert metrics(at)["Enrolled"] == str(EXPECTED[None]["enrolled"])


def test_empty_data_dir_explains_how_to_get_a_study(empty_data_dir: Path) -> None:
    at = run_app()
    assert not at.exception
    assert len(at.info) == 1
    assert "make run" in at.info[0].value
    assert "rbqm synth data/demo" in at.info[0].value
    assert not at.metric


def test_missing_data_dir_is_the_empty_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RBQM_DATA_DIR", str(tmp_path / "nowhere"))
    at = run_app()
    assert not at.exception
    assert "make run" in at.info[0].value


def test_unreadable_study_shows_the_error_not_a_traceback(study_data_dir: Path) -> None:
    broken = study_data_dir / "broken"
    broken.mkdir()
    (broken / "dm.csv").write_text(
        "STUDYID,USUBJID,SITEID,COUNTRY,RFICDTC,ARMCD,AGE\nX,X-1,1,FRA,2024-01-01,A,forty\n", encoding="utf-8"
    )
    at = run_app()
    at.selectbox(key="study").set_value(str(broken)).run()
    assert not at.exception
    assert len(at.error) == 1
    assert "AGE" in at.error[0].value and "forty" in at.error[0].value
    assert not at.metric

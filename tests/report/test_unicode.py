"""Unicode in the PDF: a study whose countries are in Greek and Cyrillic and whose KRI (so its signals'
text) is named with "≥ − – Ж Ω" gives a PDF whose extracted text holds them; CJK without a CJK font is kept
as text (Last Resort boxes) and listed on the first page; without any TrueType font the PDF says so."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from rbqm.analysis import analyze_study
from rbqm.report import build_report, render_html, render_pdf
from rbqm.report import fonts as report_fonts
from rbqm.report.fonts import FALLBACK_FONTS_ENV, coverage, find_fonts

from .conftest import GENERATED, TODAY
from .test_render import pdf_text

KRI_NAME = "Enrolment ≥ − – plan, Ж Ω"
COUNTRIES = {"DEU": "Ελλάδα", "FRA": "Россия"}
SIGNS = ("≥", "−", "–", "Ж", "Ω")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_cjk_fonts(monkeypatch):
    """Whatever fonts this machine has: no fallback font unless a test names one."""
    monkeypatch.setattr(report_fonts, "FALLBACK_FONTS", ())
    monkeypatch.delenv(FALLBACK_FONTS_ENV, raising=False)


def _rename_countries(folder: Path) -> None:
    for table in ("sites", "dm"):
        for path in folder.rglob(f"{table}.parquet"):
            frame = pl.read_parquet(path)
            frame.with_columns(pl.col("COUNTRY").replace(COUNTRIES)).write_parquet(path)


@pytest.fixture(scope="module")
def multinational(tmp_path_factory, study):
    """The report fixture's study with two countries renamed in Greek and Cyrillic, analysed with a KRI
    library whose kri0016 (red at several sites) is named with the signs."""
    root = tmp_path_factory.mktemp("unicode")
    copy = shutil.copytree(study, root / "demo")
    _rename_countries(copy)
    library = shutil.copytree(REPO / "key_risk_indicators", root / "library")
    kri = library / "kri0016.yaml"
    kri.write_text(kri.read_text(encoding="utf-8").replace("name: Enrolment versus plan", f'name: "{KRI_NAME}"', 1),
                   encoding="utf-8")
    analysis = analyze_study(copy, csm=False, kri_dir=library)
    return build_report(analysis, study_dir=copy, kri_dir=library, today=TODAY, generated_at=GENERATED)


def test_the_study_text_holds_the_signs(multinational):
    # the input really carries them: countries in the status and the sites, the KRI name in the reasons
    assert set(COUNTRIES.values()) <= set(multinational.status.by_country["country"])
    assert set(COUNTRIES.values()) <= set(multinational.site_risk["country"])
    assert multinational.reasons["text"].str.contains(KRI_NAME, literal=True).any()


def test_the_pdf_text_holds_every_sign_and_name(multinational):
    data = render_pdf(multinational)
    text = pdf_text(data)
    for sign in SIGNS:
        assert sign in text, sign
    for country in COUNTRIES.values():
        assert country in text, country
    assert KRI_NAME in text  # the KRI library table and the top sites' reasons
    assert b"DejaVuSans" in data and b"FontFile2" in data  # embedded
    assert "have no glyph" not in text and "No TrueType font" not in text  # nothing to warn about


def test_the_html_holds_them_too(multinational):
    page = render_html(multinational)
    assert KRI_NAME in page and all(country in page for country in COUNTRIES.values())


def test_cjk_without_a_cjk_font_is_kept_as_text_and_listed(report, caplog):
    japanese = replace(report, study_id="試験-01 ≥ Ж")
    assert "試" not in coverage(find_fonts().files[""])
    text = pdf_text(render_pdf(japanese), first=1)
    assert "Oversight report: 試験-01 ≥ Ж" in text  # drawn with the Last Resort font, kept as text
    assert "have no glyph in the PDF's fonts" in text
    assert "U+8A66 cjk unified ideograph-8a66" in text and "U+9A13 cjk unified ideograph-9a13" in text
    assert "Last Resort" in text and "fonts-noto-cjk" in text
    assert any("U+8A66" in message for message in caplog.messages)


def test_cjk_without_the_last_resort_font_prints_a_replacement_mark_and_says_so(report):
    fonts = replace(find_fonts(), last_resort=None)
    text = pdf_text(render_pdf(replace(report, study_id="試験-01 Ж"), fonts=fonts), first=1)
    assert "Oversight report: \ufffd\ufffd-01 Ж" in text
    assert "They print as \ufffd" in text and "U+9A13" in text


def test_a_fallback_font_draws_what_dejavu_lacks(report, monkeypatch):
    stix = find_fonts().files[""].parent / "STIXGeneral.ttf"  # matplotlib's: it has U+2316, DejaVu Sans has not
    assert "⌖" in coverage(stix) and "⌖" not in coverage(find_fonts().files[""])
    monkeypatch.setenv(FALLBACK_FONTS_ENV, str(stix))
    data = render_pdf(replace(report, study_id="S⌖1"))
    assert b"STIXGeneral" in data
    text = pdf_text(data, first=1)
    assert "Oversight report: S⌖1" in text and "have no glyph" not in text


def test_without_a_truetype_font_the_pdf_falls_back_to_latin1_and_says_so(multinational):
    text = pdf_text(render_pdf(multinational, fonts=None))
    assert "No TrueType font was found" in text and "U+0416 cyrillic capital letter zhe" in text
    assert "Enrolment >= - - plan, ? ?" in text  # signs by their look-alikes; Ж and Ω lost, and said so


def test_fonts_are_found_in_matplotlib_then_debian(tmp_path):
    found = find_fonts()
    assert found.source == "matplotlib" and found.last_resort is not None and found.last_resort.is_file()
    assert find_fonts(folders=(("empty", tmp_path),)) is None
    for name in report_fonts.FONT_FILES.values():
        shutil.copy(found.files[""].parent / name, tmp_path / name)
    assert find_fonts(folders=(("empty", None), ("copy", tmp_path))).files[""] == tmp_path / "DejaVuSans.ttf"

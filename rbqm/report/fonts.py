"""The PDF report's fonts: DejaVu Sans, embedded, so text in any European script and the report's symbols print.

fpdf2's built-in fonts hold Latin-1 only: "≥", "−", "–" and site or investigator names in Cyrillic or
Greek would print as "?". The report therefore embeds DejaVu Sans (regular, bold, oblique, bold oblique;
fpdf2 keeps only the glyphs used). It comes from, in this order:

1. matplotlib's copy (``matplotlib/mpl-data/fonts/ttf``): matplotlib is pinned in requirements.txt, so a
   fresh install always has it (it is only located, never imported);
2. Debian's ``fonts-dejavu-core`` (``/usr/share/fonts/truetype/dejavu``), for an install without matplotlib;
3. neither: :func:`find_fonts` returns None and the PDF uses the built-in Helvetica, saying so on its
   first page (characters outside Latin-1 then print as "?").

DejaVu Sans has no CJK ideographs, Hangul or kana. For them the report looks for a fallback font:
the files named in ``$RBQM_PDF_FALLBACK_FONTS`` (separated by the OS path separator), then Debian's CJK
fonts (:data:`FALLBACK_FONTS`). A character none of them has is drawn with the Last Resort font that
matplotlib ships (a box naming the character's script, the character itself kept in the PDF's text),
or, without it, printed as U+FFFD; either way the PDF's first page lists it, and the HTML report shows
it whatever the fonts. docs/report.md says more.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

__all__ = ["FALLBACK_FONTS", "FALLBACK_FONTS_ENV", "FONT_FILES", "LAST_RESORT", "FontSet", "coverage",
           "fallback_fonts", "find_fonts", "last_resort_subset"]

FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "I": "DejaVuSans-Oblique.ttf",
              "BI": "DejaVuSans-BoldOblique.ttf"}
"""fpdf2 style -> DejaVu Sans file (the same names in matplotlib and in Debian)."""
DEBIAN_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
FALLBACK_FONTS = (
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),  # fonts-droid-fallback
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),  # fonts-wqy-microhei
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),  # fonts-wqy-zenhei
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),  # fonts-noto-cjk
)
"""Debian's fonts with CJK glyphs, tried in this order for characters DejaVu Sans lacks."""
LAST_RESORT = "LastResortHE-Regular.ttf"
"""The Last Resort font in matplotlib's font folder: a glyph for every code point (a box showing the
script's sample character and the code range), used for characters no other font has."""
FALLBACK_FONTS_ENV = "RBQM_PDF_FALLBACK_FONTS"
"""Font files (TrueType or OpenType, os.pathsep-separated) tried before :data:`FALLBACK_FONTS`."""


@dataclass(frozen=True)
class FontSet:
    """DejaVu Sans in fpdf2's four styles (``files``: style -> path), where it was found, and the Last
    Resort font when there is one (matplotlib's)."""

    files: dict[str, Path]
    source: str
    last_resort: Path | None = None


def _matplotlib_fonts() -> Path | None:
    """matplotlib's font folder, located without importing matplotlib (None when it is not installed)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"


def _complete(folder: Path | None) -> dict[str, Path] | None:
    if folder is None:
        return None
    files = {style: folder / name for style, name in FONT_FILES.items()}
    return files if all(path.is_file() for path in files.values()) else None


def find_fonts(*, folders: tuple[tuple[str, Path | None], ...] | None = None) -> FontSet | None:
    """DejaVu Sans from the first folder that has all four styles; None when none has.

    Parameters
    ----------
    folders
        (source, folder) pairs to try; default matplotlib's font folder, then Debian's fonts-dejavu-core.

    Examples
    --------
    >>> find_fonts(folders=(("nowhere", Path("/no/such/folder")),)) is None
    True
    >>> find_fonts().files["B"].name
    'DejaVuSans-Bold.ttf'
    """
    matplotlib = _matplotlib_fonts()
    if folders is None:
        folders = (("matplotlib", matplotlib), ("Debian's fonts-dejavu-core", DEBIAN_DEJAVU))
    last_resort = matplotlib / LAST_RESORT if matplotlib is not None else None
    for source, folder in folders:
        files = _complete(folder)
        if files is not None:
            return FontSet(files, source, last_resort if last_resort and last_resort.is_file() else None)
    return None


def fallback_fonts() -> tuple[Path, ...]:
    """The fallback font files that exist: ``$RBQM_PDF_FALLBACK_FONTS`` first, then Debian's CJK fonts."""
    named = [Path(p) for p in os.environ.get(FALLBACK_FONTS_ENV, "").split(os.pathsep) if p.strip()]
    return tuple(path for path in (*named, *FALLBACK_FONTS) if path.is_file())


@cache
def coverage(path: Path) -> frozenset[str]:
    """The characters a font file has a glyph for (the first font of a collection).

    Examples
    --------
    >>> chars = coverage(find_fonts().files[""])
    >>> all(c in chars for c in "≥−–ЖΩ▲●"), "中" in chars
    (True, False)
    """
    with TTFont(path, fontNumber=0, lazy=True) as font:
        return frozenset(chr(code) for code in font.getBestCmap())


def last_resort_subset(font: Path, chars: Iterable[str], folder: Path) -> Path:
    """``font`` (the Last Resort font) cut down to ``chars``, written in ``folder``: the whole font maps all
    1.1 million code points, which fpdf2 takes seconds and hundreds of megabytes to load.

    Examples
    --------
    >>> import tempfile
    >>> font = find_fonts().last_resort
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     sorted(coverage(last_resort_subset(font, "中한", Path(folder))))
    ['中', '한']
    """
    with TTFont(font) as whole:
        subsetter = subset.Subsetter(subset.Options(notdef_outline=True, name_IDs=["*"], layout_features=[]))
        subsetter.populate(unicodes=sorted({ord(c) for c in chars}))
        subsetter.subset(whole)
        path = folder / "last-resort-subset.ttf"
        whole.save(path)
    return path

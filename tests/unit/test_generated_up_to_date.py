"""The committed message classes and codecs are exactly what tools/exigen generates from the XSDs."""

from __future__ import annotations

from tools.exigen.__main__ import ROOT, generate


def test_generated_code_matches_the_xsds() -> None:
    stale = [str(path.relative_to(ROOT)) for path, text in generate().items() if path.read_text() != text]
    assert not stale, f"regenerate with `python -m tools.exigen`: {stale}"

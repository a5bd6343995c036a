"""The HTML page of `nnf compare --report`: conclusion first, every number labelled, fits 1280 px."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nnforensics.integrity import compare
from nnforensics.models import load_model
from nnforensics.permutation import permute
from nnforensics.perturbation import perturb
from nnforensics.report.compare import write_compare_report


@pytest.fixture(scope="module")
def pages(trained_digits_model, tmp_path_factory) -> dict[str, Path]:
    """Reports of a noisy permuted copy and of an unrelated model."""
    original = load_model(trained_digits_model)
    folder = tmp_path_factory.mktemp("compare-report")
    noisy = perturb(permute(original, seed=1).model, "noise", 0.5, seed=2).model
    other = perturb(original.model, "noise", 50.0, seed=3).model  # nothing of the original survives
    out = {}
    for name, suspect in (("noise", noisy), ("unrelated", other)):
        out[name] = write_compare_report(compare(original, suspect), folder / f"{name}.html", "orig", name)
    return out


def _text(path: Path) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8"))))


def test_the_page_leads_with_the_conclusion(pages):
    html = pages["noise"].read_text(encoding="utf-8")
    lead = re.search(r'<p class="lead">(.*?)</p>', html).group(1)
    assert lead.startswith("derived (high confidence): a modified copy, most likely noise")
    assert html.index('class="lead"') < html.index("<table")  # before any number


def test_every_number_says_what_it_means(pages):
    text = _text(pages["noise"])
    assert "share of mutual best-matching neurons" not in text  # the old, wrong label
    assert "share of the original's neurons whose counterpart in the suspect stands out beyond chance" in text
    assert re.search(r"output change after re-synchronization [0-9.]+ % — largest \|Δ output\|", text)
    for header in ("‖Δ‖ / ‖W‖", "Ω = std Δ / std W", "zeros % (orig → suspect)", "grid (bits)"):
        assert header in text


def test_unrelated_page_gives_no_kinds_of_change(pages):
    text = _text(pages["unrelated"])
    assert text.split(" Conclusion ")[2].startswith("unrelated")
    assert "do not apply" in text
    page = pages["unrelated"].read_text(encoding="utf-8")
    body = page.split("Per tensor, after re-synchronization")[1].split("<tbody>")[1].split("</tbody>")[0]
    assert not re.search(r"\b(noise|fine-tuning|quantization|pruning|scaling|unmatched)\b", body)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium is not installed")
def test_the_page_fits_a_1280_pixel_window(pages, tmp_path):
    """Render in headless Chromium: nothing is wider than the window (no table cut off)."""
    page = tmp_path / "probe.html"
    probe = ("<script>document.title = 'W' + Math.max(document.documentElement.scrollWidth, "
             "...Array.from(document.querySelectorAll('table')).map(t => t.getBoundingClientRect().right));</script>")
    page.write_text(pages["noise"].read_text(encoding="utf-8").replace("</body>", probe + "</body>"), encoding="utf-8")
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    width = float(re.search(r"<title>W([0-9.]+)</title>", dom).group(1))
    assert width <= 1280, f"the page is {width} px wide"

"""The reusable pieces: html parts, save_figure, formatting, attack styles, words."""

from __future__ import annotations

import re

import pytest
from matplotlib.figure import Figure

from nnforensics.report import html as rhtml
from nnforensics.report.attacks import attack_style, format_level
from nnforensics.report.plots import plain, save_figure
from nnforensics.report.summary import describe
from nnforensics.report.tables import Table, fmt_num, fmt_pm, md_escape
from nnforensics.report.results import load_sweeps


def test_write_html_escapes_every_part(tmp_path):
    evil = '<img src=x onerror="alert(1)">'
    sections = [
        rhtml.Section(evil, [
            rhtml.Paragraph(evil), rhtml.Bullets([evil]), rhtml.KeyValues({evil: [evil]}),
            Table([evil], [[evil]], title=evil, note=evil),
            rhtml.Image(b"\x89PNG fake", alt=evil, caption=evil),
            rhtml.Section("nested", [rhtml.Paragraph("inner")]),
        ]),
        rhtml.Section("second", []), rhtml.Section("third", []),
    ]
    path = rhtml.write_html(tmp_path / "page.html", evil, sections, subtitle=evil)
    text = path.read_text(encoding="utf-8")
    assert "<img src=x" not in text and "onerror=\"" not in text
    assert text.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;") >= 8
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="&lt;img', text)
    assert "<h3>nested</h3>" in text  # nested sections go one heading level down
    assert 'href="#img-src-x-onerror-alert-1"' in text  # table of contents with safe anchors


def test_render_part_refuses_raw_strings():
    with pytest.raises(TypeError):
        rhtml.render_html("t", [rhtml.Section("s", ["<b>raw</b>"])])


def test_image_from_file_types(tmp_path):
    (tmp_path / "a.svg").write_text("<svg/>")
    assert rhtml.Image.from_file(tmp_path / "a.svg", "a").mime == "image/svg+xml"
    (tmp_path / "a.exe").write_bytes(b"x")
    with pytest.raises(ValueError):
        rhtml.Image.from_file(tmp_path / "a.exe", "a")


def test_save_figure_is_atomic_and_deterministic(tmp_path):
    fig = Figure()
    fig.add_subplot().plot([1, 2], [3, 4], label=plain("$cost{$"))
    fig.axes[0].legend()
    first = save_figure(fig, tmp_path / "f.png", svg=True)
    data = [p.read_bytes() for p in first]
    second = save_figure(fig, tmp_path / "f.png", svg=True)
    assert first == second == [tmp_path / "f.png", tmp_path / "f.svg"]
    assert [p.read_bytes() for p in second] == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]


def test_number_formatting():
    assert fmt_num(100.0) == "100" and fmt_num(0.0) == "0" and fmt_num(1.0032) == "1.00"
    assert fmt_pm(93.5, 0.98) == "93.50 ± 0.98" and fmt_pm(100.0, 0.0) == "100 ± 0"
    assert fmt_pm(42.0, float("nan")) == "42" and fmt_pm(float("nan"), 1.0) == "–"
    assert md_escape("a|b\n<c>") == "a\\|b &lt;c&gt;"


def test_attack_styles():
    assert attack_style("noise").symbol == "Ω" and attack_style("Fine_Tuning").symbol == "Θ"
    quant = attack_style("quantization")
    assert quant.strength_order([2, 16, 8]) == [16, 8, 2]
    assert attack_style("prune-global").scale == "log-remaining"
    assert "prune-global" in attack_style("prune-global").title
    other = attack_style("my attack")
    assert other.symbol == "level" and other.strength_order([3, 1]) == [1, 3]
    assert format_level(0.95) == "0.95" and format_level(16.0) == "16"


def test_words_summary(sweep_dir):
    path, _ = sweep_dir(levels=[0, 2, 4, 6, 8, 10], seeds=2, methods=("lap", "argmax"))
    (sweep,) = load_sweeps(path)
    words = " ".join(describe(sweep))
    assert "Ψ stays 100 up to Ω = 4 for lap while the error rises from" in words
    assert "argmax" in words and "collisions" in words
    assert "function unchanged" in words

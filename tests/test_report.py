"""The HTML report, opened in a real headless browser."""

import numpy as np
import pandas as pd
import pytest

import keel
from keel.report import drift_report_html, write_drift_report
from keel.result import RESULT_COLUMNS

from .conftest import make_table


@pytest.fixture(scope="module")
def report():
    reference = make_table(20_000, seed=1)
    current = make_table(20_000, seed=2, shift=0.5)
    current.loc[current.sample(frac=0.3, random_state=0).index, "color"] = "red"
    return keel.drift(reference, current)


def test_the_report_renders_its_charts_without_errors_or_network(report, tmp_path, open_page):
    path = write_drift_report(report, tmp_path / "report.html")
    page, errors = open_page(path)
    assert errors == []
    assert page.locator("#verdict").inner_text() == "Drift in 2 of 4 columns: x, color."
    charts = page.locator(".chart svg")
    assert charts.count() == 4
    for index in (0, 1):  # the drifted columns' panels are open: their charts are laid out
        box = charts.nth(index).bounding_box()
        assert box["width"] > 150 and box["height"] > 100
    # The drifted columns come first and their panels are open with drawn marks.
    first_rows = page.locator("#columns tbody tr").all_inner_texts()[:2]
    assert [row.split("\t")[0] for row in first_rows] == ["x", "color"]
    assert page.locator("details.column[open] svg path").count() >= 4


def test_the_filter_hides_columns_that_do_not_match(report, tmp_path, open_page):
    page, errors = open_page(write_drift_report(report, tmp_path / "r.html"))
    page.fill("#filter", "col")
    visible = [row for row in page.locator("#columns tbody tr").all() if row.is_visible()]
    assert [row.get_attribute("data-column") for row in visible] == ["color"]
    assert errors == []


def test_names_with_html_or_script_are_escaped(tmp_path, open_page):
    evil = ['<script>alert("x")</script>', '<img src=x onerror="alert(1)">']
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({evil[0]: rng.normal(size=500), evil[1]: rng.normal(size=500)})
    current = pd.DataFrame({evil[0]: rng.normal(size=500) + 3, evil[1]: rng.normal(size=500)})
    html = drift_report_html(keel.drift(reference, current))
    assert evil[0] not in html and evil[1] not in html
    page, errors = open_page(
        write_drift_report(keel.drift(reference, current), tmp_path / "e.html")
    )
    assert errors == []  # no alert dialog, no script error
    names = page.locator("#columns tbody tr td:first-child").all_inner_texts()
    assert sorted(names) == sorted(evil)  # shown literally, as text


def test_two_thousand_columns_stay_small_and_open_with_every_column(tmp_path, open_page):
    rng = np.random.default_rng(4)
    names = [f"f{i:04d}" for i in range(2000)]
    reference = pd.DataFrame(rng.normal(size=(300, 2000)), columns=names)
    current = pd.DataFrame(rng.normal(size=(300, 2000)), columns=names)
    current.iloc[:, ::100] += 1.0
    path = write_drift_report(keel.drift(reference, current), tmp_path / "wide.html")
    size = path.stat().st_size
    assert size < 500_000, size
    page, errors = open_page(path)
    assert page.locator(".chart svg").count() == 30  # charts for the most changed only
    page.click("#more-columns > summary")
    # The hidden rows are built when the list opens: wait for them (a loaded machine is slow).
    from playwright.sync_api import expect

    expect(page.locator("tr[data-column]")).to_have_count(2000, timeout=30_000)
    page.fill("#filter", "f1999")
    assert [
        r.get_attribute("data-column")
        for r in page.locator("tr[data-column]").all()
        if r.is_visible()
    ] == ["f1999"]
    assert errors == []


def test_a_report_never_holds_raw_rows(tmp_path):
    reference = make_table(50_000, seed=5)
    report = keel.drift(reference, make_table(50_000, seed=6))
    html = drift_report_html(report)
    assert len(html) < 150_000  # summaries only, whatever the row count
    assert f"{reference['x'].iloc[123]:.6f}" not in html


def test_a_report_to_an_unwritable_path_exits_2_and_writes_nothing(run_keel, tmp_path):
    make_table(500, seed=1).to_csv(tmp_path / "r.csv", index=False)
    target = tmp_path / "missing-folder" / "report.html"
    result = run_keel("drift", tmp_path / "r.csv", tmp_path / "r.csv", "--html", target)
    assert result.returncode == 2
    assert "cannot write" in result.stderr and "missing-folder" in result.stderr
    assert not target.parent.exists()


def test_a_drift_result_shows_itself_in_jupyter_and_converts_to_pandas(report):
    assert report._repr_html_().startswith("<!doctype html>")
    frame = report.to_pandas()
    assert tuple(frame.columns) == RESULT_COLUMNS
    assert frame["column"].tolist() == ["x", "y", "z", "color"]
    x = frame.set_index("column").loc["x"]
    assert (x["check"], x["metric"], x["threshold"], x["status"]) == (
        "feature_drift",
        "wasserstein",
        0.1,
        "alert",
    )
    assert x["value"] == pytest.approx(report.column("x").effect_size)
    assert x["details"]["p_value_adjusted"] == report.column("x").p_value_adjusted

"""The plugin inside the real FiftyOne App, driven by headless Chromium (Playwright, no download).

Starts the App server on a free local port with a small audited dataset (``_review_data``: real
BCCD images, three annotators, duplicates, predictions, a leak), then: the review panel opens from
the "New panel" menu with the agreement run's charts; a click on an agreement-matrix cell sets the
grid to the samples where those two annotators disagree, showing only those labels (sample count
read in the grid, label counts from the App's view, both against an oracle from fiftyone.utils.iou);
a click on a triage-queue row shows only that row's labels; the operator browser lists our audit
operators; "Re-run" opens the pre-filled form and Execute stores a new run.
Screenshots go to ``$IOU_AUDIT_SCREENSHOTS`` (default: pytest's tmp dir) for a human to look at.

Needs Debian's ``chromium`` (``./run tests`` installs it when run as root) and pip ``playwright``;
skips with the reason otherwise.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import socket
import time
import urllib.request

import pytest

from iou_audit.results import audit_info

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")
playwright_sync = pytest.importorskip("playwright.sync_api", reason="pip playwright not installed")

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_app_server(port: int) -> None:
    """FiftyOne's services call setpgrp(): walk our process tree, stop the server on ``port``."""
    import psutil

    victims = []
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "server/main.py" in cmd and f"{port}" in cmd:
            victims.append(proc)
            victims.extend(proc.children(recursive=True))
    for proc in reversed(victims):
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(victims, timeout=10)
    for proc in alive:
        proc.kill()


@pytest.fixture
def app_with_audit(shared_data, tmp_path):
    import fiftyone as fo
    from _review_data import build

    ds = build(shared_data, tmp_path)
    port = _free_port()
    session = fo.launch_app(ds, remote=True, address="127.0.0.1", port=port)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(1)
    try:
        yield ds, url, session
    finally:
        try:
            session.close()
        except Exception:
            pass
        _stop_app_server(port)
        ds.delete()


def _click_heatmap_cell(page, row: int, col: int, n: int) -> None:
    """Click cell (row, col) of the panel's n x n heatmap (plotly draws it as one image: click the
    cell's centre in the plot area)."""
    plot = page.locator(".js-plotly-plot").filter(has=page.locator(".heatmaplayer")).first
    plot.scroll_into_view_if_needed()
    box = plot.locator(".nsewdrag").first.bounding_box()
    page.mouse.click(box["x"] + (col + 0.5) * box["width"] / n, box["y"] + (row + 0.5) * box["height"] / n)


def _wait_for(condition, timeout=60):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            return False
        time.sleep(0.5)
    return True


def _dismiss_popups(page) -> None:
    """Close the Enterprise pop-up, which appears a few seconds after the grid."""
    try:
        page.get_by_role("button", name="Dismiss").first.click(timeout=15_000)
    except Exception:
        pass


def test_review_panel_and_operators_in_the_app(app_with_audit, tmp_path):
    from _review_data import label_ids, pairwise_oracle

    ds, url, session = app_with_audit
    shots = pathlib.Path(os.environ.get("IOU_AUDIT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    fields = ["ground_truth", "ann_a", "ann_b", "ann_c", "preds"]

    def app_labels():  # the labels the App's current view shows, per field
        view = session.view
        return {f: label_ids(view, f) for f in fields if view is not None and label_ids(view, f)}

    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{url}datasets/{ds.name}", wait_until="domcontentloaded")
            grid_count = lambda n: page.get_by_text(f"{n} sample{'s' if n != 1 else ''}", exact=True).first  # noqa: E731
            grid_count(len(ds)).wait_for(timeout=90_000)
            _dismiss_popups(page)
            page.screenshot(path=str(shots / "01_grid.png"))

            # The review panel, from the "New panel" menu: the agreement run (first key) and its charts.
            page.locator('[title="New panel"]').first.click()
            page.get_by_text("iou-audit review", exact=True).first.click()
            page.wait_for_selector("text=Findings by kind", timeout=60_000)
            page.wait_for_selector(".heatmaplayer", timeout=60_000)
            assert page.get_by_text("agreement", exact=False).count() > 0
            page.screenshot(path=str(shots / "02_review_panel.png"))

            # A matrix cell (ann_b, ann_c): the grid shows the samples where those two disagree,
            # with only both annotators' disagreeing labels.
            expected, samples = pairwise_oracle(ds, "ann_b", "ann_c")
            assert samples
            _click_heatmap_cell(page, row=1, col=2, n=3)  # rows/columns: ann_a, ann_b, ann_c
            page.wait_for_selector("text=where ann_b and ann_c disagree", timeout=60_000)
            grid_count(len(samples)).wait_for(timeout=60_000)
            assert _wait_for(lambda: app_labels() == expected), (app_labels(), expected)
            assert set(session.view.values("id")) == samples
            page.screenshot(path=str(shots / "03_matrix_cell.png"))

            # A click on a triage-queue row (the panel's only table here): only that row's labels.
            page.locator("tbody tr").first.locator("td").nth(1).click()
            assert _wait_for(lambda: session.view is not None and len(session.view) == 1)
            shown = app_labels()
            assert sum(len(v) for v in shown.values()) >= 1, shown
            grid_count(1).wait_for(timeout=60_000)
            page.screenshot(path=str(shots / "04_queue_row.png"))

            # The operator browser lists the audit operators.
            page.keyboard.press("Escape")
            page.keyboard.press("`")
            try:
                page.get_by_placeholder("Search operations by name", exact=False).wait_for(timeout=15_000)
                page.keyboard.type("audit")
                page.get_by_text("audit_duplicates", exact=False).first.wait_for(timeout=30_000)
            finally:
                page.screenshot(path=str(shots / "05_operator_browser.png"))
            for name in ("audit_agreement", "audit_predictions", "audit_splits"):
                assert page.get_by_text(name, exact=False).count() > 0, f"{name} not in the operator browser"
            page.keyboard.press("Escape")

            # Re-audit from the panel: its button opens the operator form pre-filled, Execute re-runs it.
            before = audit_info(ds, "ag")
            page.get_by_role("button", name="Re-run", exact=True).click()
            page.get_by_role("button", name="Execute").wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "06_rerun_form.png"))
            page.get_by_role("button", name="Execute").click()
            assert _wait_for(lambda: audit_info(ds, "ag")["timestamp"] != before["timestamp"]), \
                "the re-run did not store a new run"
            page.screenshot(path=str(shots / "07_after_rerun.png"))
            assert audit_info(ds, "ag")["counts"] == before["counts"]
        finally:
            browser.close()

"""The plugin inside the real FiftyOne App, driven by headless Chromium (Playwright, no download).

Starts the App server on a free local port with a dataset that has a stored duplicate audit, then:
the review panel opens from the "New panel" menu and shows the audit's findings; its "Show" row
action filters the grid to the saved view; the operator browser lists our audit operators.
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
def app_with_audit(tmp_path):
    import fiftyone as fo

    # Real image files so the grid renders thumbnails.
    from PIL import Image

    from iou_audit.audits.duplicates import audit_duplicates

    ds = fo.Dataset()
    samples = []
    for i in range(6):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (64, 48), (40 * i, 120, 200)).save(path)
        dets = [fo.Detection(label="cell", bounding_box=[0.1, 0.1, 0.3, 0.3])]
        if i < 2:  # a near-copy of the first box: a duplicate
            dets.append(fo.Detection(label="cell", bounding_box=[0.101, 0.1, 0.3, 0.3]))
        samples.append(fo.Sample(filepath=str(path), gt=fo.Detections(detections=dets)))
    ds.add_samples(samples)
    audit_duplicates(ds, "gt", audit_key="dups")

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
        yield ds, url
    finally:
        try:
            session.close()
        except Exception:
            pass
        _stop_app_server(port)
        ds.delete()


def _dismiss_popups(page) -> None:
    """Close the Enterprise pop-up, which appears a few seconds after the grid."""
    try:
        page.get_by_role("button", name="Dismiss").first.click(timeout=15_000)
    except Exception:
        pass


def test_review_panel_and_operators_in_the_app(app_with_audit, tmp_path):
    ds, url = app_with_audit
    shots = pathlib.Path(os.environ.get("IOU_AUDIT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{url}datasets/{ds.name}", wait_until="domcontentloaded")
            grid_count = lambda n: page.get_by_text(f"{n} samples", exact=True).first  # noqa: E731
            grid_count(6).wait_for(timeout=90_000)
            _dismiss_popups(page)
            page.screenshot(path=str(shots / "01_grid.png"))

            # The review panel, from the "New panel" menu.
            page.locator('[title="New panel"]').first.click()
            page.get_by_text("iou-audit review", exact=True).first.click()
            page.wait_for_selector("text=Findings by kind", timeout=60_000)
            page.wait_for_selector("text=duplicate", timeout=30_000)
            page.screenshot(path=str(shots / "02_review_panel.png"))
            assert page.get_by_text("dups", exact=False).count() > 0

            # Its "Show" row action sets the grid to the saved view of that kind (2 samples).
            page.get_by_role("button", name="Show").first.click()
            grid_count(2).wait_for(timeout=60_000)
            page.screenshot(path=str(shots / "03_show_kind.png"))

            # The operator browser lists the audit operators.
            page.keyboard.press("Escape")
            page.keyboard.press("`")
            try:
                page.get_by_placeholder("Search operations by name", exact=False).wait_for(timeout=15_000)
                page.keyboard.type("audit")
                page.get_by_text("audit_duplicates", exact=False).first.wait_for(timeout=30_000)
            finally:
                page.screenshot(path=str(shots / "04_operator_browser.png"))
            for name in ("audit_agreement", "audit_predictions", "audit_splits"):
                assert page.get_by_text(name, exact=False).count() > 0, f"{name} not in the operator browser"
            page.keyboard.press("Escape")

            # Re-audit from the panel: its button opens the operator form pre-filled, Execute re-runs it.
            before = audit_info(ds, "dups")["timestamp"]
            page.get_by_role("button", name="Re-run audit").click()
            page.get_by_role("button", name="Execute").wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "05_rerun_form.png"))
            page.get_by_role("button", name="Execute").click()
            deadline = time.time() + 60
            while audit_info(ds, "dups")["timestamp"] == before and time.time() < deadline:
                time.sleep(1)
            page.screenshot(path=str(shots / "06_after_rerun.png"))
            assert audit_info(ds, "dups")["timestamp"] != before, "the re-run did not store a new run"
            assert audit_info(ds, "dups")["counts"] == {"duplicate": 2}
        finally:
            browser.close()

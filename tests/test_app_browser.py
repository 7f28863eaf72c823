"""The plugin inside the real FiftyOne App, driven by headless Chromium (Playwright, no download).

Runs twice: on the demo's own dataset (all of BCCD with the demo's simulated annotators and
predictions and its four audits, built as ``./run demo`` builds it) and on a small audited dataset
(``_review_data``: real BCCD images, three annotators, duplicates, predictions, a leak). Starts the
App server on a free local port with the dataset, then: the review panel opens from
the "New panel" menu with the agreement run's charts; a click on an agreement-matrix cell sets the
grid to the samples where those two annotators disagree, showing only those labels (sample count
read in the grid, label counts from the App's view, both against an oracle from fiftyone.utils.iou
and scipy's assignment);
a click on a triage-queue row shows only that row's labels; the operator browser lists our audit
operators; "Re-run" opens the pre-filled form and Execute stores a new run. Then the rest of the
review loop: the opened row marked "Not an error" from its row menu stays out of the default queue
after a re-run (panel and ``triage``); its box moved in Python, the next re-run brings it back as
``changed_since_review`` ("changed" in the panel).
Screenshots go to ``$IOU_AUDIT_SCREENSHOTS`` (default: pytest's tmp dir) for a human to look at;
small copies of four steps for the README to ``$IOU_AUDIT_DOC_SHOTS`` (e.g. ``docs``) when set.

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
from iou_audit.results.evidence.queue import PAGE_SIZE
from iou_audit.review import triage as iou_audit_triage

#: The State filter's value for the default queue (open, confirmed, changed since review).
DEFAULT_STATES = "(to review)"

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


def _demo_dataset(name):
    """The demo's own dataset, built as ``./run demo`` builds it: all 364 BCCD images, the two
    simulated annotators and predictions, and the demo's four audits (about a minute)."""
    from iou_audit.demo import steps
    from iou_audit.ingest import ingest_bccd

    ds = ingest_bccd(name, persistent=False, overwrite=True)
    for _, run in steps():
        run(ds)
    return ds


@pytest.fixture(params=["review_data", "demo"])
def app_with_audit(request, shared_data, tmp_path):
    import fiftyone as fo
    from _review_data import build

    ds = build(shared_data, tmp_path) if request.param == "review_data" else _demo_dataset(
        f"browser-demo-{os.getpid()}")
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


def _state_of(ds, row_id: str):
    """The review state of one queue row, by the library (None: not a queue row)."""
    q = iou_audit_triage(ds, states=None)
    states = q.loc[q["row_id"] == row_id, "review_state"].tolist()
    return states[0] if states else None


def _review_marks(rows) -> list[str]:
    """The Review column (the fifth cell) of the queue table's rows."""
    return [rows.nth(i).locator("td").nth(4).inner_text().strip() for i in range(rows.count())]


def _doc_shot(page, name: str) -> None:
    """A small copy of the page for the README, in ``$IOU_AUDIT_DOC_SHOTS`` (unset: none): halved
    and quantized to 64 colours, so each PNG stays well under 200 KB."""
    out = os.environ.get("IOU_AUDIT_DOC_SHOTS")
    if not out:
        return
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    img = img.resize((img.width // 2, img.height // 2), Image.LANCZOS).quantize(colors=64)
    path = pathlib.Path(out) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)
    assert path.stat().st_size < 200_000, (path, path.stat().st_size)


def test_review_panel_and_operators_in_the_app(app_with_audit, tmp_path):
    from _review_data import label_ids, pairwise_oracle

    from iou_audit.review import load_decisions

    triage = iou_audit_triage

    import fiftyone as fo

    from iou_audit.results import list_audits

    ds, url, session = app_with_audit
    demo = ds.name.startswith("browser-demo-")
    shots = pathlib.Path(os.environ.get("IOU_AUDIT_SCREENSHOTS", tmp_path)) / ("demo" if demo else "review_data")
    shots.mkdir(parents=True, exist_ok=True)
    doc_shots = not demo  # the README's pictures are of the small dataset (fewer boxes: readable)
    # the demo's 364 samples x ~100 boxes: the panel's first load and each click take longer under load
    wait_ms = 240_000 if demo else 60_000
    fields = sorted(ds.get_field_schema(embedded_doc_type=fo.Detections))
    # the panel opens on the first run; both datasets' first is their agreement run
    agree_key = list_audits(ds)[0]
    assert audit_info(ds, agree_key)["audit"] == "agreement", audit_info(ds, agree_key)
    annotators = audit_info(ds, agree_key)["config"]["annotators"]
    cell_a, cell_b = annotators[1], annotators[2]  # ann_b/ann_c; sim_annotator_b/sim_annotator_c

    def app_labels():  # the labels the App's current view shows, per field
        view = session.view
        return {f: label_ids(view, f) for f in fields if view is not None and label_ids(view, f)}

    def queue_title(n):  # the panel's queue heading with its row count
        return page.get_by_text(f"all audits ({n} rows;", exact=False).first

    def queue_rows():  # the triage queue's rows (the panel's only table on an agreement run)
        return page.locator("tbody tr")

    def refresh_panel():
        page.get_by_role("button", name="Refresh", exact=True).click()

    def filter_state(state):
        """Pick ``state`` in the queue's State dropdown: a MUI Select (its element is a
        ``.MuiSelect-select`` with role "button" in this MUI, "combobox" in newer ones, hence the
        class) showing its value; after a refresh that is the default "(to review)", which no
        other dropdown shows. Its menu entries have role "option"."""
        page.locator(".MuiSelect-select").filter(has_text=DEFAULT_STATES).first.click()
        page.get_by_role("option", name=state, exact=True).click()

    def rerun_from_panel(form_shot):
        """"Re-run" opens the audit's operator form pre-filled; Execute stores a new run."""
        before = audit_info(ds, agree_key)["timestamp"]
        page.get_by_role("button", name="Re-run", exact=True).click()
        page.get_by_role("button", name="Execute").wait_for(timeout=30_000)
        page.screenshot(path=str(form_shot))
        page.get_by_role("button", name="Execute").click()
        assert _wait_for(lambda: audit_info(ds, agree_key)["timestamp"] != before, timeout=180), \
            "the re-run did not store a new run"
        # the operator's result dialog (the run's counts) covers the panel until closed
        page.get_by_role("button", name="Close", exact=True).click(timeout=wait_ms)
        page.get_by_role("button", name="Execute").wait_for(state="hidden", timeout=30_000)

    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = None
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
            page.wait_for_selector("text=Findings by kind", timeout=wait_ms)
            page.wait_for_selector(".heatmaplayer", timeout=wait_ms)
            assert page.get_by_text("agreement", exact=False).count() > 0
            page.screenshot(path=str(shots / "02_review_panel.png"))

            # A matrix cell (second, third annotator): the grid shows the samples where those two
            # disagree, with only both annotators' disagreeing labels.
            expected, samples = pairwise_oracle(ds, cell_a, cell_b)
            assert samples
            _click_heatmap_cell(page, row=1, col=2, n=3)  # rows/columns: the three annotators in order
            page.wait_for_selector(f"text=where {cell_a} and {cell_b} disagree", timeout=wait_ms)
            grid_count(len(samples)).wait_for(timeout=wait_ms)
            assert _wait_for(lambda: app_labels() == expected), (app_labels(), expected)
            assert set(session.view.values("id")) == samples
            page.screenshot(path=str(shots / "03_matrix_cell.png"))
            if doc_shots:
                _doc_shot(page, "review_step1_matrix.png")

            # A click on a triage-queue row (the panel's only table here): only that row's labels. The
            # panel lists the default queue in triage order, so its k-th row is triage()'s k-th; the
            # first label row on the first page is a label we can move below (the demo's queue may
            # start with missing-object rows).
            queue = triage(ds)
            label_rows = [i for i, t in enumerate(queue["row_type"][:PAGE_SIZE]) if t == "label"]
            assert label_rows, queue.head(PAGE_SIZE).to_dict()
            k = label_rows[0]
            first = queue.iloc[k]
            row_id, sample_id, field, label_id = first["row_id"], first["sample_id"], first["field"], first["label_id"]
            n_queue = len(queue)
            queue_title(n_queue).wait_for(timeout=wait_ms)
            queue_rows().nth(k).locator("td").nth(1).click()
            assert _wait_for(lambda: session.view is not None and len(session.view) == 1)
            assert set(session.view.values("id")) == {sample_id}
            shown = app_labels()
            assert label_id in shown.get(field, set()), (shown, field, label_id)
            expected_shown = {label_id, *(first["other_label_ids"] or [])}
            assert {i for ids in shown.values() for i in ids} == expected_shown, (shown, expected_shown)
            grid_count(1).wait_for(timeout=wait_ms)
            page.screenshot(path=str(shots / "04_queue_row.png"))
            if doc_shots:
                _doc_shot(page, "review_step2_queue_row.png")

            # Mark that row "Not an error" from its row menu. The table has more row actions than
            # max_inline_actions, so FiftyOne draws them as one icon button (the row's last cell)
            # opening a MUI menu of role="menuitem" entries: click the button, then the entry by
            # its accessible name (text, not position, so a reordered menu cannot mark the wrong way).
            queue_rows().nth(k).locator("td").last.locator("button").click()
            page.get_by_role("menuitem", name="Not an error").click()
            queue_title(n_queue - 1).wait_for(timeout=wait_ms)  # the panel's queue re-read the marks
            assert _wait_for(lambda: _state_of(ds, row_id) == "not_an_error"), _state_of(ds, row_id)
            assert row_id not in set(triage(ds)["row_id"])
            assert load_decisions(ds)[row_id]["state"] == "not_an_error"
            filter_state("not_an_error")  # the panel's State filter: that row alone, marked "ok"
            queue_title(1).wait_for(timeout=wait_ms)
            assert _review_marks(queue_rows()) == ["ok"]
            page.screenshot(path=str(shots / "05_marked.png"))

            # The operator browser lists the audit operators.
            page.keyboard.press("Escape")
            page.keyboard.press("`")
            try:
                page.get_by_placeholder("Search operations by name", exact=False).wait_for(timeout=15_000)
                page.keyboard.type("audit")
                page.get_by_text("audit_duplicates", exact=False).first.wait_for(timeout=30_000)
            finally:
                page.screenshot(path=str(shots / "06_operator_browser.png"))
            for name in ("audit_agreement", "audit_predictions", "audit_splits"):
                assert page.get_by_text(name, exact=False).count() > 0, f"{name} not in the operator browser"
            page.keyboard.press("Escape")

            # Re-audit from the panel: its button opens the operator form pre-filled, Execute re-runs it.
            before = audit_info(ds, agree_key)
            rerun_from_panel(shots / "07_rerun_form.png")
            assert audit_info(ds, agree_key)["counts"] == before["counts"]
            page.screenshot(path=str(shots / "08_after_rerun.png"))

            # The marked row stays out of the default queue after the re-run (panel and library).
            # "Refresh" re-reads the runs and resets the filters: the title changes from the
            # filtered 1 row, so this waits for the refreshed queue.
            refresh_panel()
            queue_title(n_queue - 1).wait_for(timeout=wait_ms)
            assert row_id not in set(triage(ds)["row_id"])
            assert _state_of(ds, row_id) == "not_an_error"
            # ... and is the only not_an_error row, marked "ok" in the panel's Review column.
            filter_state("not_an_error")
            queue_title(1).wait_for(timeout=wait_ms)
            assert _review_marks(queue_rows()) == ["ok"]
            if doc_shots:
                _doc_shot(page, "review_step3_not_an_error.png")

            # Change that label in Python (move its box by 0.001 of the image: the fingerprint keeps
            # 6 decimals, and the finding still holds), then re-run from the panel.
            sample = ds[sample_id]
            det = next(d for d in sample[field].detections if d.id == label_id)
            det.bounding_box = [det.bounding_box[0] + 0.001, *det.bounding_box[1:]]
            sample.save()
            assert _state_of(ds, row_id) == "changed_since_review"
            rerun_from_panel(shots / "09_rerun_form.png")

            # It comes back: in the default queue again, marked "changed" in the panel.
            refresh_panel()
            queue_title(n_queue).wait_for(timeout=wait_ms)
            assert row_id in set(triage(ds)["row_id"])
            assert _state_of(ds, row_id) == "changed_since_review"
            filter_state("changed_since_review")
            queue_title(1).wait_for(timeout=wait_ms)
            assert _review_marks(queue_rows()) == ["changed"]
            queue_rows().first.locator("td").nth(1).click()  # and it is that label
            page.wait_for_selector("text=(changed_since_review)", timeout=wait_ms)
            assert _wait_for(lambda: session.view is not None and set(session.view.values("id")) == {sample_id})
            assert label_id in app_labels().get(field, set())
            page.screenshot(path=str(shots / "10_changed.png"))
            if doc_shots:
                _doc_shot(page, "review_step4_changed.png")
        finally:
            if page is not None:  # the last page, to debug a failure
                (shots / "last_page.html").write_text(page.content())
            browser.close()

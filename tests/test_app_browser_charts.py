"""The review panel's segmentation and keypoint charts inside the real FiftyOne App (headless
Chromium via Playwright, as ``test_app_browser.py``).

One small dataset, two runs: 10 real LVIS images with both raters' class maps (rasterised with
pycocotools; a segmentation agreement run with regions of disagreement) and 8 images with two
annotators' planted keypoints (``_keypoint_planted``; a keypoint agreement run). In the browser: the
panel opens on the segmentation run; a click on a class-IoU bar and on a confusion-heatmap cell sets
the grid to the images behind it; the "Audit run" dropdown switches to the keypoint run and a click
on a per-keypoint bar shows the labels where that keypoint disagrees. After each click the grid's
sample count (read on the page) and the labels the App's view shows are checked against oracles
that are not our numbers: the masks as FiftyOne decodes them (``Segmentation.get_mask``, numpy) and
FiftyOne's ``evaluate_segmentations`` pixel confusion matrix for the segmentation clicks, COCO's
per-keypoint similarity in numpy on the stored points for the keypoint click.

Needs Debian's ``chromium`` and pip ``playwright``; skips with the reason otherwise. Small PNGs of
the heatmap-cell and keypoint-bar clicks go to ``$IOU_AUDIT_DOC_SHOTS`` (e.g. ``docs``) when set.
"""
from __future__ import annotations

import os
import pathlib
import re
import time
import urllib.request

import _keypoint_planted as kp_planted
import pytest
import test_app_browser as app_browser

from iou_audit.audits.keypoints import audit_keypoint_agreement
from iou_audit.audits.segmentation import audit_segmentation_agreement
from iou_audit.results import list_audits

pytestmark = pytest.mark.skipif(not os.path.exists(app_browser.CHROMIUM), reason=f"no Chromium at {app_browser.CHROMIUM}")
playwright_sync = pytest.importorskip("playwright.sync_api", reason="pip playwright not installed")

N_SEG_IMAGES = 10
SEG_KEY, KP_KEY = "seg", "kpa"
SEG_FIELDS = ("seg_r1", "seg_r2")
REGIONS = "regions"


@pytest.fixture
def app_with_runs(shared_data, tmp_path):
    import fiftyone as fo

    from iou_audit.examples.lvis_semantic import load_dataset

    ds = load_dataset(tmp_path / "masks", shared_data / "lvis-double-200", max_images=N_SEG_IMAGES)
    ds.add_samples(kp_planted.planted_samples(), progress=False)
    # the oracle first: evaluate_segmentations writes to the samples, which would make the runs stale
    seg_oracle = _segmentation_oracle(ds)
    seg_view = ds.exists(SEG_FIELDS[0])
    audit_segmentation_agreement(seg_view, list(SEG_FIELDS), audit_key=SEG_KEY, regions_field=REGIONS,
                                 min_region_pixels=500)
    audit_keypoint_agreement(ds.exists(kp_planted.FIELDS[0]), list(kp_planted.FIELDS), audit_key=KP_KEY,
                             area_attribute="area", flip_pairs=())
    port = app_browser._free_port()
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
        yield ds, url, session, seg_oracle
    finally:
        try:
            session.close()
        except Exception:
            pass
        app_browser._stop_app_server(port)
        ds.delete()


def _segmentation_oracle(ds):
    """FiftyOne's pixel confusion matrix (rows seg_r1), class names and values, and each image's
    two masks as FiftyOne decodes them."""
    view = ds.exists(SEG_FIELDS[0])
    targets = ds.mask_targets[SEG_FIELDS[0]]
    res = view.evaluate_segmentations(SEG_FIELDS[1], gt_field=SEG_FIELDS[0], mask_targets=targets,
                                      eval_key="fo_eval")
    values = sorted(targets)
    masks = {s.id: (s.seg_r1.get_mask(), s.seg_r2.get_mask()) for s in view.select_fields(list(SEG_FIELDS))}
    return res.pixel_confusion_matrix, [targets[v] for v in values], values, masks


def _shown_segmentation(view):
    """``{field: label ids}`` the App's view shows: both Segmentation fields and the regions."""
    out = {f: {i for i in view.values(f"{f}.id") if i} for f in SEG_FIELDS}
    out[REGIONS] = {i for ids in view.values(f"{REGIONS}.detections.id") for i in (ids or [])}
    return {f: ids for f, ids in out.items() if ids}


def _expected_segmentation(ds, sample_ids, region_ok):
    """Both maps of those images, and their regions whose FiftyOne label ``"a vs b"`` passes ``region_ok``."""
    view = ds.select(sorted(sample_ids))
    out = {f: {i for i in view.values(f"{f}.id") if i} for f in SEG_FIELDS}
    out[REGIONS] = {i for ids, labels in zip(view.values(f"{REGIONS}.detections.id"),
                                             view.values(f"{REGIONS}.detections.label"))
                    for i, label in zip(ids or [], labels or []) if region_ok(*label.split(" vs "))}
    return {f: ids for f, ids in out.items() if ids}


def _plot(page, title: str):
    """The panel's plotly chart whose title starts with ``title``."""
    return page.locator(".js-plotly-plot").filter(has=page.locator(".gtitle", has_text=title)).first


def _click_bar(page, plot, index: int) -> None:
    """Click the middle of bar ``index`` (its drawn path) of a one-trace bar chart."""
    plot.scroll_into_view_if_needed()
    box = plot.locator(".barlayer .point path").nth(index).bounding_box()
    assert box and box["height"] > 2, f"bar {index} is too small to click: {box}"
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def _select_run(page, current: str, key: str) -> None:
    """Pick run ``key`` in the panel's "Audit run" dropdown (a MUI Select showing ``current``)."""
    page.locator(".MuiSelect-select").filter(has_text=current).first.click()
    page.get_by_role("option", name=key, exact=True).click()


def _showing(page, pattern: str, timeout=60) -> re.Match:
    """Wait until the panel's "Showing ..." line matches ``pattern``; return the match."""
    found = []

    def seen():
        m = re.search(pattern, page.inner_text("body"))
        if m:
            found.append(m)
        return bool(m)

    assert app_browser._wait_for(seen, timeout), f"no {pattern!r} on the page"
    return found[-1]


def test_segmentation_and_keypoint_charts_in_the_app(app_with_runs, tmp_path):
    ds, url, session, (cm, names, values, masks) = app_with_runs
    shots = pathlib.Path(os.environ.get("IOU_AUDIT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    planted = kp_planted.pairs(ds)

    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=app_browser.CHROMIUM, args=app_browser.CHROMIUM_ARGS)
        page = None
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            page.goto(f"{url}datasets/{ds.name}", wait_until="domcontentloaded")
            grid_count = lambda n: page.get_by_text(f"{n} sample{'s' if n != 1 else ''}", exact=True).first  # noqa: E731
            grid_count(len(ds)).wait_for(timeout=90_000)
            app_browser._dismiss_popups(page)

            page.locator('[title="New panel"]').first.click()
            page.get_by_text("iou-audit review", exact=True).first.click()
            opened = list_audits(ds)[0]  # the panel opens on the first run
            page.locator(".MuiSelect-select").filter(has_text=opened).first.wait_for(timeout=60_000)
            if opened != SEG_KEY:
                _select_run(page, opened, SEG_KEY)
            iou_plot = _plot(page, "IoU per class")
            iou_plot.wait_for(timeout=60_000)
            assert page.get_by_text("modified since this run", exact=False).count() == 0
            page.wait_for_selector(".heatmaplayer", timeout=60_000)

            # A class-IoU bar (the last: the highest IoU, so a bar tall enough to click): the grid
            # shows exactly the images where that class has pixels in either map.
            n_bars = iou_plot.locator(".barlayer .point path").count()
            assert n_bars >= 2
            _click_bar(page, iou_plot, n_bars - 1)
            m = _showing(page, r"Showing images with (.+?) in seg_r1 or seg_r2: (\d+) labels in (\d+) samples")
            name = m.group(1)
            v = values[names.index(name)]
            holding = {sid for sid, (a, b) in masks.items() if ((a == v) | (b == v)).any()}
            assert holding
            grid_count(len(holding)).wait_for(timeout=60_000)
            expected = _expected_segmentation(ds, holding, lambda a, b: name in (a, b))
            assert app_browser._wait_for(lambda: session.view is not None and _shown_segmentation(session.view) == expected)
            assert set(session.view.values("id")) == holding
            assert int(m.group(3)) == len(holding)
            assert int(m.group(2)) == sum(map(len, expected.values()))
            page.screenshot(path=str(shots / "seg_01_class_bar.png"))

            # A confusion-heatmap cell: the busiest off-diagonal cell between two named classes by
            # FiftyOne's confusion matrix, clicked where the chart draws it (rows seg_r1, top down).
            drawn = _drawn_heatmap_classes(ds)
            index = {n: i for i, n in enumerate(names)}
            named = [n for n in drawn if n in index]
            _, class_a, class_b = max((cm[index[a], index[b]], a, b) for a in named for b in named if a != b)
            assert cm[index[class_a], index[class_b]] > 0
            app_browser._click_heatmap_cell(page, row=drawn.index(class_a), col=drawn.index(class_b), n=len(drawn))
            m = _showing(page, rf"Showing {re.escape(class_a)} in seg_r1, {re.escape(class_b)} in seg_r2: "
                               r"(\d+) labels in (\d+) samples")
            va, vb = values[index[class_a]], values[index[class_b]]
            per_image = {sid: int(((a == va) & (b == vb)).sum()) for sid, (a, b) in masks.items()}
            behind = {sid for sid, n in per_image.items() if n}
            assert sum(per_image.values()) == cm[index[class_a], index[class_b]]  # numpy == FiftyOne
            grid_count(len(behind)).wait_for(timeout=60_000)
            expected = _expected_segmentation(ds, behind, lambda a, b: (a, b) == (class_a, class_b))
            assert app_browser._wait_for(lambda: _shown_segmentation(session.view) == expected)
            assert set(session.view.values("id")) == behind
            assert int(m.group(2)) == len(behind) and int(m.group(1)) == sum(map(len, expected.values()))
            page.screenshot(path=str(shots / "seg_02_heatmap_cell.png"))
            app_browser._doc_shot(page, "review_segmentation_cell.png")

            # The keypoint run, from the panel's "Audit run" dropdown.
            _select_run(page, SEG_KEY, KP_KEY)
            kp_plot = _plot(page, "Mean similarity per keypoint")
            kp_plot.wait_for(timeout=60_000)
            assert page.get_by_text("modified since this run", exact=False).count() == 0
            assert kp_plot.locator(".barlayer .point path").count() == kp_planted.K

            # A per-keypoint bar: the pairs where that keypoint disagrees or only one side labels it.
            k = max(range(kp_planted.K), key=lambda k: (len(kp_planted.behind(planted, k)), -k))
            _click_bar(page, kp_plot, k)
            m = _showing(page, rf"Showing where keypoint kp{k} disagrees: (\d+) labels in (\d+) samples")
            pairs = kp_planted.behind(planted, k)
            samples = {p["sample"] for p in pairs}
            expected = {"ann_a": {p["ids"][0] for p in pairs}, "ann_b": {p["ids"][1] for p in pairs}}
            grid_count(len(samples)).wait_for(timeout=60_000)
            assert app_browser._wait_for(lambda: kp_planted.shown(session.view) == expected)
            assert set(session.view.values("id")) == samples
            assert int(m.group(2)) == len(samples) and int(m.group(1)) == 2 * len(pairs)
            page.screenshot(path=str(shots / "kp_01_keypoint_bar.png"))
            app_browser._doc_shot(page, "review_keypoint_bar.png")
        finally:
            if page is not None:
                (shots / "last_page_charts.html").write_text(page.content())
            browser.close()


def _drawn_heatmap_classes(ds) -> list[str]:
    """The heatmap's rows (= columns) in drawn order, read from the panel's chart trace (where to
    click; the assertions use the oracles)."""
    from iou_audit.results import load_audit
    from iou_audit.results.evidence.segmentation import class_confusion_chart

    (trace,) = class_confusion_chart(load_audit(ds, SEG_KEY)).traces
    assert trace["x"] == trace["y"]
    return list(trace["y"])

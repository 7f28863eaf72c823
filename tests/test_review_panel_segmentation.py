"""The review panel on a segmentation run, headless (``execute_operator`` with ``__method__``,
``panel_id``, ``panel_state``): the per-class IoU bars and the class-confusion heatmap, and what a
click shows, on the real LVIS raters (rasterised with pycocotools).

Oracles: FiftyOne's ``evaluate_segmentations`` (its pixel confusion matrix: the bars' IoUs and the
heatmap's cells) and numpy on the masks as FiftyOne decodes them (``Segmentation.get_mask``: which
images hold a class or a pair of classes, how many pixels); the regions shown are the run's
Detections FiftyOne finds by label.
"""
from __future__ import annotations

import numpy as np
import pytest
from _panel_events import Event

from iou_audit.audits.segmentation import audit_segmentation_agreement
from iou_audit.examples.lvis_semantic import load_dataset
from iou_audit.results.evidence.segmentation import MAX_CONFUSION_CLASSES, OTHER_CLASSES

N_IMAGES = 80
KEY = "lvis_seg"


@pytest.fixture(scope="module")
def lvis(shared_data, tmp_path_factory):
    ds = load_dataset(tmp_path_factory.mktemp("panel_seg"), shared_data / "lvis-double-200", max_images=N_IMAGES)
    audit_segmentation_agreement(ds, ["seg_r1", "seg_r2"], audit_key=KEY, regions_field="regions",
                                 min_region_pixels=500)
    targets = ds.mask_targets["seg_r1"]
    fo_res = ds.evaluate_segmentations("seg_r2", gt_field="seg_r1", mask_targets=targets, eval_key="fo_eval")
    masks = {s.id: (s.seg_r1.get_mask(), s.seg_r2.get_mask()) for s in ds.select_fields(["seg_r1", "seg_r2"])}
    yield ds, fo_res.pixel_confusion_matrix, [targets[v] for v in sorted(targets)], sorted(targets), masks
    ds.delete()


def _shown(view):
    """``{field: label ids}`` visible in a view: both Segmentation fields and the regions field."""
    out = {}
    for f in ("seg_r1", "seg_r2"):
        ids = {i for i in view.values(f"{f}.id") if i}
        if ids:
            out[f] = ids
    regions = {i for ids in view.values("regions.detections.id") for i in (ids or [])}
    if regions:
        out["regions"] = regions
    return out


def _expected_labels(ds, sample_ids, region_ok):
    view = ds.select(sorted(sample_ids))
    out = {f: {i for i in view.values(f"{f}.id") if i} for f in ("seg_r1", "seg_r2")}
    regions = {i for ids, labels in zip(view.values("regions.detections.id"), view.values("regions.detections.label"))
               for i, label in zip(ids or [], labels or []) if region_ok(*label.split(" vs "))}
    if regions:
        out["regions"] = regions
    return out


def test_segmentation_run_shows_its_charts(lvis):
    ds = lvis[0]
    e = Event(ds, "select_audit", value=KEY)
    charts = {"kinds", "class_iou", "class_confusion"}
    assert set(e.state["charts"]) == charts and charts <= set(e.data) and charts <= set(e.properties)
    for name in charts:
        assert e.properties[name]["view"].get("on_click", "").endswith("#on_chart_click"), name


def test_class_iou_bars_are_fiftyones_and_a_click_shows_the_images_with_that_class(lvis):
    ds, cm, names, values, masks = lvis
    e = Event(ds, "select_audit", value=KEY)
    (trace,) = e.data["class_iou"]
    assert trace["name"] == "seg_r1 vs seg_r2"
    c = cm.astype(float)
    inter, union = np.diag(c), c.sum(0) + c.sum(1) - np.diag(c)
    for name, y in zip(trace["x"], trace["y"]):
        i = names.index(name)
        assert y == round(inter[i] / union[i], 4), name
    # the lowest bars first (FiftyOne's IoUs, ascending)
    assert trace["y"] == sorted(trace["y"])
    # the class behind a bar that several images hold
    counts = {name: sum(((a == values[names.index(name)]) | (b == values[names.index(name)])).any()
                        for a, b in masks.values()) for name in trace["x"]}
    name = max(trace["x"], key=lambda n: (counts[n], n))
    v = values[names.index(name)]
    assert counts[name] >= 2
    click = Event(ds, "on_chart_click", e.state, path="class_iou", x=name, y=0.5, trace="seg_r1 vs seg_r2", idx=0)
    holding = {sid for sid, (a, b) in masks.items() if ((a == v) | (b == v)).any()}
    got = click.view.values("id")
    assert set(got) == holding
    # most suspicious first: that image's IoU of the class is the lowest
    ious = {sid: ((a == v) & (b == v)).sum() / ((a == v) | (b == v)).sum() for sid, (a, b) in masks.items()
            if sid in holding}
    assert ious[got[0]] == min(ious.values())
    assert _shown(click.view) == _expected_labels(ds, holding, lambda a, b: name in (a, b))
    assert f"images with {name}" in click.state["showing"]


def test_confusion_heatmap_cells_are_fiftyones_and_a_click_shows_those_pixels_images(lvis):
    ds, cm, names, values, masks = lvis
    e = Event(ds, "select_audit", value=KEY)
    (trace,) = e.data["class_confusion"]
    xs, ys, px = trace["x"], trace["y"], np.array(trace["customdata"])
    assert xs == ys and xs[-1] == OTHER_CLASSES and len(xs) == MAX_CONFUSION_CLASSES + 1
    # the classes drawn on their own: most pixels in both maps (FiftyOne's row + column sums)
    totals = cm.sum(0) + cm.sum(1)
    assert sorted(totals[[names.index(n) for n in xs[:-1]]].tolist(), reverse=True) == \
        totals[[names.index(n) for n in xs[:-1]]].tolist()
    assert min(totals[[names.index(n) for n in xs[:-1]]]) >= max(
        t for i, t in enumerate(totals) if names[i] not in xs)
    index = [names.index(n) for n in xs[:-1]]
    rest = [i for i in range(len(names)) if i not in index]
    full = np.zeros((len(xs), len(xs)), np.int64)
    groups = [[i] for i in index] + [rest]
    for r, gr in enumerate(groups):
        for k, gk in enumerate(groups):
            full[r, k] = cm[np.ix_(gr, gk)].sum()
    assert (px == full).all()  # rows seg_r1 (FiftyOne's ground truth), columns seg_r2
    assert int(px.sum()) == int(cm.sum())

    # the busiest off-diagonal cell between two named classes
    cells = [(px[r, k], ys[r], xs[k]) for r in range(len(ys) - 1) for k in range(len(xs) - 1) if r != k]
    n, class_a, class_b = max(cells)
    va, vb = values[names.index(class_a)], values[names.index(class_b)]
    click = Event(ds, "on_chart_click", e.state, path="class_confusion", x=class_b, y=class_a, z=0.1)
    per_image = {sid: int(((a == va) & (b == vb)).sum()) for sid, (a, b) in masks.items()}
    behind = {sid for sid, k in per_image.items() if k}
    got = click.view.values("id")
    assert set(got) == behind and sum(per_image[s] for s in got) == n
    assert [per_image[s] for s in got] == sorted((per_image[s] for s in got), reverse=True)
    shown = _shown(click.view)
    assert shown == _expected_labels(ds, behind, lambda a, b: (a, b) == (class_a, class_b))
    assert shown.get("regions")  # the cell's regions of disagreement are shown too

    # the "(other classes)" row: every class not drawn, against a named column
    other_values = [values[i] for i in rest]
    col = xs[0]
    vc = values[names.index(col)]
    click = Event(ds, "on_chart_click", e.state, path="class_confusion", x=col, y=OTHER_CLASSES, z=0.1)
    behind = {sid for sid, (a, b) in masks.items() if (np.isin(a, other_values) & (b == vc)).any()}
    assert set(click.view.values("id")) == behind


def test_queue_rows_of_a_segmentation_run(lvis):
    """An image row shows both raters' maps; a region row shows that region only."""
    ds = lvis[0]
    e = Event(ds, "select_audit", value=KEY)
    queue = e.state["queue"]
    kinds = [r["kind"] for r in queue]
    image = next(i for i, k in enumerate(kinds) if k.startswith(("low_miou", "class_missing")))
    click = Event(ds, "open_finding", e.state, row=image)
    assert len(click.view) == 1
    assert set(click.view.get_field_schema()) >= {"seg_r1", "seg_r2"}
    assert click.view.first().seg_r1 is not None and click.view.first().seg_r2 is not None
    region = kinds.index("disagreement_region")
    click = Event(ds, "open_finding", e.state, row=region)
    assert _shown(click.view) == {"regions": {queue[region]["row_id"]}}

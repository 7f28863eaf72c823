"""The review panel on keypoint runs, headless (``execute_operator`` with ``__method__``,
``panel_id``, ``panel_state``): the per-keypoint agreement bars and what a click on one shows.

Agreement on planted data: two annotators' Keypoints fields, the second a copy of the first with
some keypoints moved far and some left unlabeled. Oracle: COCO's per-keypoint similarity
``exp(-d^2 / (2 area (2 sigma)^2))`` computed here in numpy from the points FiftyOne stores, for
the skeleton pairs as planted (not as the audit matched them): each bar is that keypoint's mean
over the pairs where both label it, and a click shows exactly the pairs (both labels) where the
keypoint disagrees (similarity below the run's ``point_similarity``) or only one side labels it.
On the real CrowdPose example the model-vs-labels run shows its bars and a click shows labels of
that keypoint's findings.
"""
from __future__ import annotations

import fiftyone as fo
import numpy as np
import pytest
from _panel_events import Event

from iou_audit.audits.keypoints import audit_keypoint_agreement, audit_keypoint_predictions
from iou_audit.geometry.keypoints import COCO_SIGMAS

K = 17
AREA = 6000.0
W, H = 640, 480


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(13)
    ds = fo.Dataset()
    samples = []
    for i in range(8):
        a_people, b_people = [], []
        for p in range(3):
            center = np.array([80 + 220 * p, 240.0])
            pts = center + rng.uniform(-40, 40, size=(K, 2))
            other = pts + rng.normal(0, 0.7, size=(K, 2))
            moved = rng.random(K) < 0.15
            other[moved] += rng.choice([-1, 1], size=(moved.sum(), 2)) * 35
            a_pts, b_pts = pts.copy(), other.copy()
            unlabeled = rng.random(K) < 0.08
            side = rng.random(K) < 0.5
            a_pts[unlabeled & side] = np.nan
            b_pts[unlabeled & ~side] = np.nan
            a_people.append(fo.Keypoint(label="person", points=[tuple(q) for q in (a_pts / [W, H]).tolist()],
                                        area=AREA))
            b_people.append(fo.Keypoint(label="person", points=[tuple(q) for q in (b_pts / [W, H]).tolist()],
                                        area=AREA))
        samples.append(fo.Sample(filepath=f"/nonexistent/kp_{i}.jpg", metadata=fo.ImageMetadata(width=W, height=H),
                                 ann_a=fo.Keypoints(keypoints=a_people), ann_b=fo.Keypoints(keypoints=b_people)))
    ds.add_samples(samples, progress=False)
    audit_keypoint_agreement(ds, ["ann_a", "ann_b"], audit_key="kpa", area_attribute="area", flip_pairs=())
    yield ds
    ds.delete()


def _pairs(ds):
    """Per planted pair: both label ids and the (K,) similarity (NaN where a side lacks the point)."""
    out = []
    for s in ds.select_fields(["ann_a", "ann_b"]):
        for a, b in zip(s.ann_a.keypoints, s.ann_b.keypoints):
            pa, pb = np.array(a.points, float) * [W, H], np.array(b.points, float) * [W, H]
            d2 = ((pa - pb) ** 2).sum(axis=1)
            sim = np.exp(-d2 / (2 * AREA * (2 * COCO_SIGMAS) ** 2))
            out.append({"sample": s.id, "ids": (a.id, b.id), "sim": sim,
                        "one_side": np.isnan(pa).any(axis=1) ^ np.isnan(pb).any(axis=1)})
    return out


def _shown(view):
    return {f: {i for ids in view.values(f"{f}.keypoints.id") for i in (ids or [])} for f in ("ann_a", "ann_b")}


def test_keypoint_bars_and_clicks_match_the_planted_pairs(planted):
    ds = planted
    e = Event(ds, "select_audit", value="kpa")
    assert set(e.state["charts"]) == {"kinds", "per_keypoint"}
    assert e.properties["per_keypoint"]["view"]["on_click"].endswith("#on_chart_click")
    (trace,) = e.data["per_keypoint"]
    names = trace["x"]
    assert names == [f"kp{k}" for k in range(K)]
    pairs = _pairs(ds)
    sims = np.stack([p["sim"] for p in pairs])
    expected = np.nanmean(sims, axis=0)
    assert np.allclose(trace["y"], expected.round(4), atol=1e-4)

    clicked = 0
    for k in range(K):
        behind = [p for p in pairs if p["one_side"][k] or p["sim"][k] < 0.5]
        click = Event(ds, "on_chart_click", e.state, path="per_keypoint", x=names[k], y=trace["y"][k], idx=k)
        if not behind:
            assert click.view is None and "nothing to show" in click.state["showing"]
            continue
        clicked += 1
        assert _shown(click.view) == {"ann_a": {p["ids"][0] for p in behind}, "ann_b": {p["ids"][1] for p in behind}}
        assert set(click.view.values("id")) == {p["sample"] for p in behind}
        assert f"keypoint kp{k}" in click.state["showing"]
    assert clicked >= 10  # most keypoints have a planted change somewhere


def test_crowdpose_model_run_shows_per_keypoint_bars(shared_data):
    from iou_audit.demo_keypoints import crowdpose_params
    from iou_audit.examples.crowdpose import load_dataset

    ds = load_dataset(shared_data / "crowdpose-example")
    try:
        r = audit_keypoint_predictions(ds, "predictions", "ground_truth", audit_key="kp", **crowdpose_params())
        e = Event(ds, "select_audit", value="kp")
        assert set(e.state["charts"]) == {"kinds", "per_keypoint"}
        (trace,) = e.data["per_keypoint"]
        assert len(trace["x"]) == 14
        f = r.findings
        kind = "mislocated_keypoint"
        name = f.loc[f["kind"] == kind, "detail"].iloc[0].split(" (")[0]
        click = Event(ds, "on_chart_click", e.state, path="per_keypoint", x=name, y=0.5, idx=0)
        mine = f[f["detail"].str.startswith(f"{name} (") | f["detail"].str.contains(f"{name} <-> |<-> {name}:")]
        shown = {i for fld in ("ground_truth", "predictions")
                 for ids in click.view.values(f"{fld}.keypoints.id") for i in (ids or [])}
        assert shown == (set(mine["label_id"]) | set(mine["other_label_id"])) - {""}
        assert kind in set(mine["kind"])
    finally:
        ds.delete()

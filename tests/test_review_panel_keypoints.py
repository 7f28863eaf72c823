"""The review panel on keypoint runs, headless (``execute_operator`` with ``__method__``,
``panel_id``, ``panel_state``): the per-keypoint agreement bars and what a click on one shows.

Agreement on planted data (``_keypoint_planted``): two annotators' Keypoints fields, the second a
copy of the first with some keypoints moved far and some left unlabeled. Oracle: COCO's
per-keypoint similarity ``exp(-d^2 / (2 area (2 sigma)^2))`` computed in numpy from the points
FiftyOne stores, for the skeleton pairs as planted (not as the audit matched them): each bar is that keypoint's mean
over the pairs where both label it, and a click shows exactly the pairs (both labels) where the
keypoint disagrees (similarity below the run's ``point_similarity``) or only one side labels it.
On the real CrowdPose example the model-vs-labels run shows its bars and a click shows labels of
that keypoint's findings.
"""
from __future__ import annotations

import _keypoint_planted as kp_planted
import numpy as np
import pytest
from _panel_events import Event

from iou_audit.audits.keypoints import audit_keypoint_agreement, audit_keypoint_predictions


@pytest.fixture(scope="module")
def planted():
    ds = kp_planted.build()
    audit_keypoint_agreement(ds, list(kp_planted.FIELDS), audit_key="kpa", area_attribute="area", flip_pairs=())
    yield ds
    ds.delete()


def test_keypoint_bars_and_clicks_match_the_planted_pairs(planted):
    ds = planted
    e = Event(ds, "select_audit", value="kpa")
    assert set(e.state["charts"]) == {"kinds", "per_keypoint"}
    assert e.properties["per_keypoint"]["view"]["on_click"].endswith("#on_chart_click")
    (trace,) = e.data["per_keypoint"]
    names = trace["x"]
    assert names == [f"kp{k}" for k in range(kp_planted.K)]
    pairs = kp_planted.pairs(ds)
    sims = np.stack([p["sim"] for p in pairs])
    expected = np.nanmean(sims, axis=0)
    assert np.allclose(trace["y"], expected.round(4), atol=1e-4)

    clicked = 0
    for k in range(kp_planted.K):
        behind = kp_planted.behind(pairs, k)
        click = Event(ds, "on_chart_click", e.state, path="per_keypoint", x=names[k], y=trace["y"][k], idx=k)
        if not behind:
            assert click.view is None and "nothing to show" in click.state["showing"]
            continue
        clicked += 1
        assert kp_planted.shown(click.view) == {"ann_a": {p["ids"][0] for p in behind},
                                                "ann_b": {p["ids"][1] for p in behind}}
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

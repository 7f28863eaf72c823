"""audit_keypoint_predictions on real data (the CrowdPose example in a FiftyOne database):

- its metrics equal the published faster-coco-eval result on these files;
- its matches and the OKS it writes equal pycocotools' ``COCOeval`` (evalImgs' dtMatches at OKS
  0.5, ``ious``) run on the JSON files with CrowdPose's sigmas and area (0.53 x box area);
- errors injected into the real labels (a left/right swap, a moved keypoint, a deleted keypoint,
  a deleted person) are found as their own kinds, at the right label and keypoint, and nothing
  else changes;
- bad input is a clear error.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import fiftyone as fo
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from iou_audit.audits.keypoints import audit_keypoint_predictions
from iou_audit.geometry.keypoints import CROWDPOSE_AREA_FACTOR, CROWDPOSE_SIGMAS
from iou_audit.results import delete_audit, list_audits, load_audit

sys.path.insert(0, str(Path(__file__).parent))
from keypoint_edits import coco_ids, write_edited  # noqa: E402

PUBLISHED = {"AP": 0.7877215935879303, "AP50": 0.9881188118811886, "AP75": 0.7314356435643564,
             "AR": 0.8222222222222223, "AR50": 1.0, "AR75": 0.7777777777777778}
CROWDPOSE_PARAMS = dict(sigmas=tuple(CROWDPOSE_SIGMAS), score_attribute="score", box_attribute="bbox",
                        area_factor=CROWDPOSE_AREA_FACTOR, area_ranges=False)


@pytest.fixture(scope="module")
def crowdpose(shared_data):
    from iou_audit.examples.crowdpose import load_dataset

    ds = load_dataset(shared_data / "crowdpose-example")
    yield ds
    ds.delete()


def _pycocotools(shared_data):
    root = shared_data / "crowdpose-example"
    gt = json.loads((root / "example_crowdpose_val.json").read_text())
    for a in gt["annotations"]:  # xtcocotools' use_area=False, as an area pycocotools can read
        a["area"] = a["bbox"][2] * a["bbox"][3] * CROWDPOSE_AREA_FACTOR
    coco = COCO()
    coco.dataset = gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(json.loads((root / "example_crowdpose_preds.json").read_text())),
                      "keypoints")
        ev.params.kpt_oks_sigmas = CROWDPOSE_SIGMAS
        ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
        ev.evaluate()
    return ev


def test_published_numbers_and_pycocotools_matches(crowdpose, shared_data):
    r = audit_keypoint_predictions(crowdpose, "predictions", "ground_truth", audit_key="kp", **CROWDPOSE_PARAMS)
    for name, want in PUBLISHED.items():
        assert r.metrics[name] == pytest.approx(want, abs=1e-12), name
    ev = _pycocotools(shared_data)
    # our written matches and OKS, by COCO ids
    gt_ids = dict(zip(crowdpose.values("ground_truth.keypoints.id", unwind=True),
                      crowdpose.values("ground_truth.keypoints.coco_id", unwind=True)))
    pred = zip(crowdpose.values("predictions.keypoints.result_index", unwind=True),
               crowdpose.values("predictions.keypoints.kp_match_id", unwind=True),
               crowdpose.values("predictions.keypoints.kp_oks", unwind=True))
    ours = {int(i) + 1: (gt_ids.get(m), o) for i, m, o in pred}  # loadRes numbers results from 1
    checked = 0
    for e in ev.evalImgs:
        if e is None:
            continue
        ious = ev.ious[(e["image_id"], 1)]  # rows: detections by descending score
        gt_order = [g["id"] for g in ev._gts[e["image_id"], 1]]
        for d, (dt_id, gt_id) in enumerate(zip(e["dtIds"], e["dtMatches"][0])):
            matched, oks = ours[dt_id]
            ignored = bool(e["dtIgnore"][0][d])
            if gt_id > 0 and not ignored:
                assert matched == gt_id, dt_id
                assert oks == pytest.approx(ious[d, gt_order.index(int(gt_id))], rel=1e-12)
                checked += 1
            else:
                assert matched in (None, "") or ignored, dt_id
    assert checked == r.metrics["n_matched"] == 9
    # the run is stored like every audit's, and deleting it removes what it wrote
    assert "kp" in list_audits(crowdpose) and len(load_audit(crowdpose, "kp").findings) == len(r.findings)
    delete_audit(crowdpose, "kp")
    assert not crowdpose.has_field("ground_truth.keypoints.kp_oks")


def _findings(ds, field, key):
    """The audit and its findings as (kind, label, keypoint name or left/right pair); labels are
    named by COCO annotation id (predictions by their label id), which survives copying a field."""
    r = audit_keypoint_predictions(ds, "predictions", field, audit_key=key, min_score=0.5, **CROWDPOSE_PARAMS)
    coco = coco_ids(ds, field)
    return r, {(k, coco.get(lid, lid), d.split(" (")[0].split(":")[0])
               for k, lid, d in zip(r.findings["kind"], r.findings["label_id"], r.findings["detail"])}


def test_injected_errors_are_found(crowdpose):
    base, base_set = _findings(crowdpose, "ground_truth", "kp_base")
    # the best-fitting persons (highest OKS with a prediction): clean to start with
    oks = dict(zip(crowdpose.values("ground_truth.keypoints.coco_id", unwind=True),
                   crowdpose.values("ground_truth.keypoints.kp_base_oks", unwind=True)))
    flagged = {lid for _, lid, _ in base_set}
    clean = [lid for lid, v in sorted(oks.items(), key=lambda kv: -kv[1]) if lid not in flagged and v > 0.85]
    assert len(clean) >= 4
    swap_id, move_id, drop_kp_id, drop_id = clean[:4]
    write_edited(crowdpose, "ground_truth", "edited", swap=swap_id, move=move_id, unlabel=drop_kp_id, drop=drop_id)
    r, found = _findings(crowdpose, "edited", "kp_edit")
    new = found - base_set
    assert ("left_right_swap", swap_id, "left_knee <-> right_knee") in new
    assert ("mislocated_keypoint", move_id, "left_wrist") in new
    assert ("missing_keypoint", drop_kp_id, "head") in new
    # the dropped person: its prediction is now a possible_missing object
    dropped_pred = dict(zip(crowdpose.values("ground_truth.keypoints.coco_id", unwind=True),
                                        crowdpose.values("ground_truth.keypoints.kp_base_match_id", unwind=True)))[drop_id]
    assert dropped_pred and ("possible_missing", dropped_pred) in {(k, lid) for k, lid, _ in new}
    # nothing else is new: one finding per injected error
    kinds = sorted(k for k, _, _ in new)
    assert kinds == ["left_right_swap", "mislocated_keypoint", "missing_keypoint", "possible_missing"], new
    # the swapped label is matched (through the mirror) but its written OKS is the plain one: lower
    edited_oks = dict(zip(crowdpose.values("edited.keypoints.coco_id", unwind=True),
                          crowdpose.values("edited.keypoints.kp_edit_oks", unwind=True)))
    assert 0.5 <= edited_oks[swap_id] < oks[swap_id]
    # the labels carry the tags of their findings
    tags = {i: t for ids, tag_lists in zip(crowdpose.values("edited.keypoints.coco_id"),
                                          crowdpose.values("edited.keypoints.tags"))
            for i, t in zip(ids or [], tag_lists or [])}
    assert "kp_edit:left_right_swap" in tags[swap_id] and "kp_edit:missing_keypoint" in tags[drop_kp_id]
    delete_audit(crowdpose, "kp_edit")
    delete_audit(crowdpose, "kp_base")
    crowdpose.delete_sample_field("edited")


def test_bad_input_is_a_clear_error(crowdpose):
    with pytest.raises(ValueError, match="default sigmas are for 17"):
        audit_keypoint_predictions(crowdpose, "predictions", "ground_truth", save=False)
    with pytest.raises(ValueError, match="expected Keypoints"):
        audit_keypoint_predictions(crowdpose, "predictions", "coco_id", save=False)
    ds = fo.Dataset()
    try:
        ds.add_sample(fo.Sample(filepath="/nonexistent/a.jpg", metadata=fo.ImageMetadata(width=100, height=100),
                                gt=fo.Keypoints(keypoints=[fo.Keypoint(label="p", points=[(0.1, 0.1)] * 3)]),
                                pred=fo.Keypoints(keypoints=[fo.Keypoint(label="p", points=[(0.1, 0.1)] * 2)])))
        with pytest.raises(ValueError, match="same number of points"):
            audit_keypoint_predictions(ds, "pred", "gt", sigmas=(0.1, 0.1, 0.1), save=False)
        ds.add_sample(fo.Sample(filepath="/nonexistent/b.jpg",
                                gt=fo.Keypoints(keypoints=[fo.Keypoint(label="p", points=[(0.1, 0.1)] * 2)])))
        ds.match({"filepath": "/nonexistent/a.jpg"}).set_values(
            "gt", [fo.Keypoints(keypoints=[fo.Keypoint(label="p", points=[(0.1, 0.1)] * 2)])])
        with pytest.raises(ValueError, match="needs image sizes"):
            audit_keypoint_predictions(ds, "pred", "gt", sigmas=(0.1, 0.1), save=False)
    finally:
        ds.delete()


def test_empty_and_missing_fields_do_not_crash():
    ds = fo.Dataset()
    try:
        gt = fo.Keypoints(keypoints=[fo.Keypoint(label="p", points=[(0.1, 0.1), (0.2, 0.3)], visible=[2, 2])])
        ds.add_samples([
            fo.Sample(filepath="/nonexistent/a.jpg", metadata=fo.ImageMetadata(width=100, height=80), gt=gt,
                      pred=fo.Keypoints(keypoints=[])),
            fo.Sample(filepath="/nonexistent/b.jpg", metadata=fo.ImageMetadata(width=100, height=80)),
        ])
        r = audit_keypoint_predictions(ds, "pred", "gt", sigmas=(0.1, 0.1), audit_key="empty")
        # no prediction at all: the one label is unsupported, AP 0 (COCO's value with ground truth
        # and no detections)
        assert r.findings["kind"].tolist() == ["possible_spurious"] and r.findings["score"][0] == 1.0
        assert r.metrics["AP"] == 0.0 and r.metrics["n_matched"] == 0
        ds.set_values("gt", [None, None])
        r = audit_keypoint_predictions(ds, "pred", "gt", sigmas=(0.1, 0.1), save=False)
        assert len(r.findings) == 0 and r.metrics["n_labels"] == 0
    finally:
        ds.delete()


def test_findings_reach_the_triage_queue(crowdpose):
    from iou_audit.review.queue import triage

    r = audit_keypoint_predictions(crowdpose, "predictions", "ground_truth", audit_key="kptri", **CROWDPOSE_PARAMS)
    q = triage(crowdpose, ["kptri"])
    # one queue row per flagged label, with the label's highest finding score
    labels = r.findings.groupby("label_id")["score"].max()
    assert set(q["label_id"]) == set(labels.index)
    for lid, score in zip(q["label_id"], q["score"]):
        # README (Triage): a row of one flagging audit scores that audit's score, clipped to [0.001, 0.999]
        assert score == pytest.approx(min(max(labels[lid], 0.001), 0.999))
    delete_audit(crowdpose, "kptri")

"""audit_keypoint_agreement on the CrowdPose example in a FiftyOne database:

- the real labels against the pose model's real predictions (as a second "annotator"): the OKS of
  every matched pair equals pycocotools' ``computeOks`` averaged over both directions, and the
  matching equals scipy's ``linear_sum_assignment`` on that oracle matrix;
- the real labels against a copy with injected disagreements (a left/right swap, a moved keypoint,
  a keypoint left unlabeled, a person left out): each is found as its own kind, nothing else;
- identical fields agree perfectly.
"""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.optimize import linear_sum_assignment

from iou_audit.audits.keypoints.agreement import audit_keypoint_agreement
from iou_audit.geometry.keypoints import CROWDPOSE_SIGMAS
from iou_audit.results import delete_audit

sys.path.insert(0, str(Path(__file__).parent))
from keypoint_edits import coco_ids, write_edited  # noqa: E402


@pytest.fixture(scope="module")
def crowdpose(shared_data):
    from iou_audit.examples.crowdpose import load_dataset

    ds = load_dataset(shared_data / "crowdpose-example")
    yield ds
    ds.delete()


def _coco(points_px, visible):
    """COCO annotations of skeletons: unlabeled points as COCO stores them (0, 0, 0); area and
    box from the labeled points' extent (the audit's default without a box attribute)."""
    anns = []
    for i, (p, v) in enumerate(zip(points_px, visible)):
        lab = v > 0
        x0, y0 = p[lab].min(axis=0) if lab.any() else (0.0, 0.0)
        x1, y1 = p[lab].max(axis=0) if lab.any() else (0.0, 0.0)
        kp = np.concatenate([np.where(lab[:, None], p, 0.0), v[:, None]], axis=1).reshape(-1).tolist()
        anns.append({"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "keypoints": kp,
                     "num_keypoints": int(lab.sum()), "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)})
    return anns


def _pycocotools_oks(gt_anns, dt_anns):
    coco = COCO()
    coco.dataset = {"images": [{"id": 1}], "categories": [{"id": 1, "name": "person"}], "annotations": gt_anns}
    dts = [{"image_id": 1, "category_id": 1, "keypoints": a["keypoints"], "score": 1.0} for a in dt_anns]
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dts), "keypoints")
    ev.params.kpt_oks_sigmas = CROWDPOSE_SIGMAS
    ev.params.imgIds = [1]
    ev._prepare()
    return np.asarray(ev.computeOks(1, 1))  # (dt, gt); equal scores keep the input order


def test_matches_and_oks_equal_pycocotools_and_scipy(crowdpose):
    r = audit_keypoint_agreement(crowdpose, ["ground_truth", "predictions"], audit_key="kpa", sigmas=CROWDPOSE_SIGMAS)
    checked = 0
    for sample in crowdpose.select_fields(["ground_truth", "predictions"]):
        size = np.array([sample.metadata.width, sample.metadata.height])
        g = sample.ground_truth.keypoints
        p = sample.predictions.keypoints
        g_anns = _coco([np.array(kp.points) * size for kp in g], [np.array(kp.visible, float) for kp in g])
        p_anns = _coco([np.array(kp.points) * size for kp in p], [np.full(len(kp.points), 2.0) for kp in p])
        labeled = np.array([a["num_keypoints"] > 0 for a in g_anns])
        sym = (_pycocotools_oks(p_anns, g_anns) + _pycocotools_oks(g_anns, p_anns).T) / 2  # (gt, pred)
        sym[~labeled] = 0.0  # skeletons without labeled keypoints take no part
        rows, cols = linear_sum_assignment(sym, maximize=True)
        want = {(g[i].id, p[j].id): sym[i, j] for i, j in zip(rows, cols) if sym[i, j] >= 0.5}
        got = {(kp.id, kp["kpa_match_id"]) for kp in g if kp["kpa_match_id"]}
        assert got == set(want)
        for kp in g:
            if kp["kpa_match_id"]:
                assert kp["kpa_oks"] == pytest.approx(want[kp.id, kp["kpa_match_id"]], rel=1e-9, abs=1e-12)
                checked += 1
            else:
                assert kp["kpa_oks"] == 0.0
    assert checked == int(r.tables["per_field_pair"]["matched"][0]) > 0
    delete_audit(crowdpose, "kpa")


def test_identical_fields_agree_perfectly(crowdpose):
    crowdpose.clone_sample_field("ground_truth", "copy")
    try:
        r = audit_keypoint_agreement(crowdpose, ["ground_truth", "copy"], sigmas=CROWDPOSE_SIGMAS, save=False)
        assert len(r.findings) == 0 and r.metrics["mean_oks"] == pytest.approx(1.0, abs=1e-12)
        assert r.metrics["object_f1"] == 1.0  # 9 of 10 persons have labeled keypoints, all 9 matched
        assert r.tables["per_field_pair"]["matched"].tolist() == [9]
        np.testing.assert_allclose(r.tables["per_keypoint"]["mean_similarity"], 1.0, atol=1e-12)
    finally:
        crowdpose.delete_sample_field("copy")


def test_injected_disagreements_are_found(crowdpose):
    ids = sorted(v for v, n in zip(crowdpose.values("ground_truth.keypoints.coco_id", unwind=True),
                                  crowdpose.values("ground_truth.keypoints.num_keypoints", unwind=True)) if n >= 10)
    swap_id, move_id, unlabel_id, drop_id = ids[:4]
    write_edited(crowdpose, "ground_truth", "second", swap=swap_id, move=move_id, unlabel=unlabel_id, drop=drop_id)
    try:
        r = audit_keypoint_agreement(crowdpose, ["ground_truth", "second"], audit_key="kpa2", sigmas=CROWDPOSE_SIGMAS)
        gt, second = coco_ids(crowdpose, "ground_truth"), coco_ids(crowdpose, "second")
        found = sorted((k, gt.get(lid, second.get(lid)), d.split(" (")[0].split(":")[0])
                       for k, lid, d in zip(r.findings["kind"], r.findings["label_id"], r.findings["detail"]))
        assert found == sorted([
            ("left_right_swap", swap_id, "left_knee <-> right_knee"),
            ("keypoint_disagreement", move_id, "left_wrist"),
            ("visibility_disagreement", unlabel_id, "head"),
            ("unmatched_object", drop_id, "no skeleton of 'second' matches it"),
        ]), found
        per_kp = r.tables["per_keypoint"].set_index("keypoint")
        assert per_kp.loc["left_knee", "swapped"] == per_kp.loc["right_knee", "swapped"] == 1
        assert per_kp.loc["left_wrist", "disagreements"] == 1 and per_kp.loc["head", "labeled_by_one"] == 1
        assert r.tables["per_field_pair"]["matched"].tolist() == [8]
        delete_audit(crowdpose, "kpa2")
    finally:
        crowdpose.delete_sample_field("second")


def test_empty_fields_and_bad_fields():
    import fiftyone as fo

    ds = fo.Dataset()
    try:
        ds.add_samples([fo.Sample(filepath="/nonexistent/a.jpg", metadata=fo.ImageMetadata(width=10, height=10),
                                  a=fo.Keypoints(keypoints=[fo.Keypoint(label="p", points=[(0.1, 0.1), (0.5, 0.5)])]),
                                  b=fo.Keypoints(keypoints=[]))])
        r = audit_keypoint_agreement(ds, ["a", "b"], sigmas=(0.1, 0.1), save=False)
        assert r.findings["kind"].tolist() == ["unmatched_object"] and r.metrics["object_f1"] == 0.0
        with pytest.raises(ValueError, match="two or more distinct"):
            audit_keypoint_agreement(ds, ["a", "a"], save=False)
    finally:
        ds.delete()


def test_occluded_vs_visible_flags_are_found(crowdpose):
    """Flags flipped 1 <-> 2 on planted points of a copy of the real labels: exactly those points are
    ``occlusion_disagreement`` findings, and the per-keypoint counts are numpy's on the stored flags;
    with ``compare_occlusion=False`` none."""
    import copy

    rng = np.random.default_rng(14)
    names = crowdpose.get_skeleton("ground_truth").labels
    planted, edited = set(), []
    for labels in crowdpose.values("ground_truth"):
        labels = copy.deepcopy(labels)
        for kp in labels.keypoints:
            vis = list(kp.visible)
            for j in np.flatnonzero(np.isin(vis, (1, 2)) & (rng.random(len(vis)) < 0.1)):
                vis[j] = 3 - vis[j]
                planted.add((kp.coco_id, names[j]))
            kp.visible = vis
        edited.append(labels)
    crowdpose.set_values("occl", edited)
    crowdpose.skeletons = {**crowdpose.skeletons, "occl": crowdpose.get_skeleton("ground_truth")}
    try:
        assert len(planted) >= 5
        r = audit_keypoint_agreement(crowdpose, ["ground_truth", "occl"], sigmas=CROWDPOSE_SIGMAS, save=False)
        gt = coco_ids(crowdpose, "ground_truth")
        found = {(gt[lid], d.split(" (")[0]) for k, lid, d in
                 zip(r.findings["kind"], r.findings["label_id"], r.findings["detail"])}
        assert set(r.findings["kind"]) == {"occlusion_disagreement"} and found == planted
        # per keypoint, from the stored flags: compared where both are 1 or 2 (all 9 people match)
        a = [v for vs in crowdpose.values("ground_truth.keypoints.visible") for v in vs]
        b = [v for vs in crowdpose.values("occl.keypoints.visible") for v in vs]
        assert [len(v) for v in crowdpose.values("ground_truth.keypoints")] == \
            [len(v) for v in crowdpose.values("occl.keypoints")]  # same persons, same order
        a, b = np.array(a, float), np.array(b, float)
        both = np.isin(a, (1, 2)) & np.isin(b, (1, 2))
        per_kp = r.tables["per_keypoint"]
        assert per_kp["occlusion_compared"].tolist() == both.sum(axis=0).tolist()
        assert per_kp["occlusion_disagreements"].tolist() == (both & (a != b)).sum(axis=0).tolist()
        # Krippendorff's alpha of the point states (0/1/2) per keypoint and pooled, by the textbook
        # formula on the stored flags: a unit per matched pair (the persons with labeled points)
        units = np.array([pair for pair in zip(a, b) if np.asarray(pair[0]).any()])  # (P, 2, K)
        for k, name in enumerate(names):
            want = _krippendorff_nominal(units[:, :, k].tolist())
            got = per_kp.set_index("keypoint").loc[name, "flag_alpha"]
            assert got == pytest.approx(want, abs=1e-12, nan_ok=True), name
        pooled = _krippendorff_nominal([list(u) for u in units.transpose(0, 2, 1).reshape(-1, 2).tolist()])
        assert r.metrics["flag_alpha"] == pytest.approx(pooled, abs=1e-12) and 0 < pooled < 1
        off = audit_keypoint_agreement(crowdpose, ["ground_truth", "occl"], sigmas=CROWDPOSE_SIGMAS, save=False,
                                       compare_occlusion=False)
        assert len(off.findings) == 0
    finally:
        crowdpose.delete_sample_field("occl")


def _krippendorff_nominal(units: list) -> float:
    """Krippendorff's alpha, nominal, from units' value lists (Krippendorff 2011, the coincidence
    matrix o_ck = sum_u #(c, k pairs in u) / (m_u - 1)); NaN without expected disagreement."""
    from collections import Counter

    o = Counter()
    for values in units:
        if len(values) < 2:
            continue
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    o[c, k] += 1 / (len(values) - 1)
    n_c = Counter()
    for (c, _), x in o.items():
        n_c[c] += x
    n = sum(n_c.values())
    d_o = sum(x for (c, k), x in o.items() if c != k)
    d_e = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k) / (n - 1)
    return 1 - d_o / d_e if d_e else float("nan")

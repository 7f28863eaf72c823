"""Real data check: LVIS double annotations (two independent raters, 200 COCO val images).

Loaded as two Detections fields ``r1``/``r2`` whose instance masks are the raters' polygons
rasterised by pycocotools at the image size from the file (masks cropped to their pixel extent,
as FiftyOne stores them). The audit's mean matched mask IoU and inter-annotator mAP@[.5:.95] must
equal what pycocotools computes on the same polygons: ``COCOeval(segm)`` with one rater as ground
truth and the other as detections of score 1, both directions averaged; mask IoUs from
``pycocotools.mask.iou`` with an optimal assignment (scipy) at IoU 0.5.
"""
import contextlib
import copy
import io
import json

import fiftyone as fo
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.optimize import linear_sum_assignment

from iou_audit.audits.agreement import audit_agreement
from iou_audit.geometry.dense_masks import boundary_iou

LVIS = "lvis-double-200/lvis_v1.0_val_doubly_annos_subset200.json"


def rle_of(ann, h, w):
    return mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], h, w))


@pytest.fixture(scope="module")
def lvis(shared_data):
    return json.loads((shared_data / LVIS).read_text())


def lvis_dataset(lvis):
    images = sorted(lvis["images"], key=lambda im: im["id"])  # pycocotools' imgIds order
    cats = {c["id"]: c["name"] for c in lvis["categories"]}
    by_image = {}
    for a in lvis["annotations"]:  # file order = annotation id order
        by_image.setdefault(a["image_id"], []).append(a)
    samples = []
    for im in images:
        h, w = im["height"], im["width"]
        fields = {"r1": [], "r2": []}
        for a in by_image.get(im["id"], []):
            m = mask_utils.decode(rle_of(a, h, w)).astype(bool)
            ys, xs = np.nonzero(m)
            if len(ys) == 0:
                raise AssertionError(f"annotation {a['id']} rasterises to no pixel")
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            fields[a["rater_id"]].append(fo.Detection(
                label=cats[a["category_id"]], bounding_box=[x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h],
                mask=m[y0:y1, x0:x1], lvis_id=a["id"]))
        samples.append(fo.Sample(filepath=f"/nonexistent/{im['file_name']}", metadata=fo.ImageMetadata(width=w, height=h),
                                 r1=fo.Detections(detections=fields["r1"]), r2=fo.Detections(detections=fields["r2"])))
    ds = fo.Dataset()
    ds.add_samples(samples, progress=False)
    return ds


def coco_map(lvis, ref, other):
    """pycocotools segm mAP of rater ``other`` (score 1) against rater ``ref``."""
    gt = {k: v for k, v in lvis.items() if k != "annotations"}
    gt["annotations"] = [a for a in lvis["annotations"] if a["rater_id"] == ref]
    sizes = {im["id"]: (im["height"], im["width"]) for im in lvis["images"]}
    dts = []
    for a in lvis["annotations"]:
        if a["rater_id"] == other:
            rle = rle_of(a, *sizes[a["image_id"]])
            dts.append({"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": rle, "score": 1.0})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(dts), "segm")
        # Same numbers as summarize()'s AP/AP50 (area "all", 100 detections), computed faster:
        # categories that no rater used have no ground truth (precision -1) and are skipped anyway.
        ev.params.catIds = sorted({a["category_id"] for a in lvis["annotations"]})
        ev.params.areaRng, ev.params.areaRngLbl, ev.params.maxDets = [[0, 1e10]], ["all"], [100]
        ev.evaluate(), ev.accumulate()
    p = ev.eval["precision"][:, :, :, 0, 0]  # (T, R, K)
    return float(p[p > -1].mean()), float(p[0][p[0] > -1].mean())


def matched_mask_iou(lvis):
    """Mean mask IoU of optimally matched r1-r2 pairs (IoU >= 0.5), from pycocotools' mask IoU."""
    sizes = {im["id"]: (im["height"], im["width"]) for im in lvis["images"]}
    per = {}
    for a in lvis["annotations"]:
        per.setdefault(a["image_id"], {"r1": [], "r2": []})[a["rater_id"]].append((a, rle_of(a, *sizes[a["image_id"]])))
    matched, pairs = [], []
    for d in per.values():
        if not d["r1"] or not d["r2"]:
            continue
        iou = np.asarray(mask_utils.iou([x[1] for x in d["r1"]], [x[1] for x in d["r2"]], [0] * len(d["r2"])))
        gain = np.where(iou >= 0.5, iou, 0.0)
        r, c = linear_sum_assignment(gain, maximize=True)
        ok = gain[r, c] > 0
        matched.extend(iou[r, c][ok])
        pairs.extend((d["r1"][i], d["r2"][j]) for i, j in zip(r[ok], c[ok]))
    return float(np.mean(matched)), len(matched), pairs


def test_lvis_double_annotations_match_pycocotools(lvis):
    ds = lvis_dataset(lvis)
    try:
        res = audit_agreement(ds, ["r1", "r2"], audit_key="lvis", consensus_field="consensus")
        assert res.metrics["geometry"] == "masks"
        pair = res.tables["pairs"].iloc[0]
        want_iou, want_n, pairs = matched_mask_iou(lvis)
        assert pair["matched"] == want_n
        assert pair["mean_iou"] == pytest.approx(want_iou, abs=1e-3)
        map_12, map50_12 = coco_map(lvis, "r1", "r2")
        map_21, map50_21 = coco_map(lvis, "r2", "r1")
        m = res.tables["map_pairs"].iloc[0]
        assert m["map_a_ref"] == pytest.approx(map_12, abs=1e-3)
        assert m["map_b_ref"] == pytest.approx(map_21, abs=1e-3)
        assert res.metrics["map"] == pytest.approx((map_12 + map_21) / 2, abs=1e-3)
        assert res.metrics["map50"] == pytest.approx((map50_12 + map50_21) / 2, abs=1e-3)
        # Boundary IoU (2% of the diagonal) of the first 60 matched pairs, on full-image pycocotools
        # masks, against what the audit stored on r1's labels (computed in a window around them).
        stored = dict(zip(ds.values("r1.detections.lvis_id", unwind=True),
                          ds.values("r1.detections.lvis_boundary_iou", unwind=True)))
        for (a1, rle1), (_, rle2) in pairs[:60]:
            want = boundary_iou(mask_utils.decode(rle1), mask_utils.decode(rle2))
            assert stored[a1["id"]] == pytest.approx(want, abs=1e-12)
        assert res.metrics["boundary_iou"] < pair["mean_iou"]
        # Consensus of 2 raters: one label per matched pair (quorum = both); with two members the
        # per-pixel majority keeps pixels covered by at least one, i.e. the union (pycocotools merge).
        cons = ds.values("consensus.detections", unwind=True)
        assert len(cons) == want_n
        by_members = {tuple(sorted(d.members)): d for d in cons}
        id_of = dict(zip(ds.values("r1.detections.lvis_id", unwind=True), ds.values("r1.detections.id", unwind=True)))
        id_of.update(zip(ds.values("r2.detections.lvis_id", unwind=True), ds.values("r2.detections.id", unwind=True)))
        for (a1, rle1), (a2, rle2) in pairs[:60]:
            d = by_members[tuple(sorted((id_of[a1["id"]], id_of[a2["id"]])))]
            assert int(d.mask.sum()) == int(mask_utils.area(mask_utils.merge([rle1, rle2], intersect=False)))
        print(f"LVIS-200 inter-annotator mAP@[.5:.95] {res.metrics['map']:.4f} (r1 ref {map_12:.4f}, r2 ref {map_21:.4f}); "
              f"mAP@.5 {res.metrics['map50']:.4f}; mean matched mask IoU {pair['mean_iou']:.4f} over {want_n} pairs, Boundary IoU {res.metrics['boundary_iou']:.4f}; "
              f"alpha nominal {res.metrics['alpha_nominal']:.4f} (CI {res.metrics['alpha_nominal_ci95']}), interval {res.metrics['alpha_interval']:.4f}")
    finally:
        ds.delete()

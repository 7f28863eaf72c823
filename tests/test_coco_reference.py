"""The issue's oracle: COCO val2014 (100 images) with cocoapi's fake bbox and segm results.

IoUs come from our geometry (``batched_box_iou`` on the COCO boxes, ``batched_cropped_mask_iou`` on
masks cropped to their boxes; pycocotools is used only to rasterize polygons and RLEs into pixel
masks). Matching and AP come from ``iou_audit.matching``. pycocotools' ``COCOeval`` runs on the
same files in the same test and is the reference for every IoU, every per-detection match at all ten
thresholds, the per-image TP/FP/FN at IoU 0.50 and 0.75, and the precision arrays; the AP numbers
are also checked against cocoapi's published ``val2014_fake_eval_res.txt``.
"""
from __future__ import annotations

import contextlib
import io
import json
import re

import fiftyone  # noqa: F401  imported at collection: doctests leave an ndarray in builtins._,
import numpy as np  # which breaks pydash's import (inside fiftyone's) if fiftyone loads after them
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from iou_audit.geometry.boxes import batched_box_iou
from iou_audit.geometry.masks import batched_cropped_mask_iou
from iou_audit.matching import coco_evaluate

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

COCO_DIR = "coco-val2014-100"
RESULTS = {"bbox": "instances_val2014_fakebbox100_results.json",
           "segm": "instances_val2014_fakesegm100_results.json"}


def published_stats(path, iou_type):
    """AP, AP50, AP75 printed by pycocotools in cocoapi's val2014_fake_eval_res.txt."""
    text = path.read_text()
    section = text.split(f"type={iou_type}")[1].split("type=")[0]
    values = re.findall(r"Average Precision\s+\(AP\) @\[ IoU=(\S+)\s+\| area=\s*all .*= ([0-9.]+)",
                        section)
    by_iou = {iou: float(v) for iou, v in values}
    return by_iou["0.50:0.95"], by_iou["0.50"], by_iou["0.75"]


def rasterize(segm, height, width):
    """COCO polygon / RLE -> (h, w) uint8 mask (what ``COCO.annToMask`` does)."""
    if isinstance(segm, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    elif isinstance(segm["counts"], list):
        rle = mask_utils.frPyObjects(segm, height, width)
    else:
        rle = segm
    return mask_utils.decode(rle)


def crop_to_box(mask, width, height):
    """A full-frame mask as FiftyOne stores it: cropped to its tight box, box in relative xyxy."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return np.zeros((0, 0), bool), np.zeros(4)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    return mask[y0:y1, x0:x1].astype(bool), np.array([x0 / width, y0 / height, x1 / width, y1 / height])


def flatten(anns, image_index):
    """Rows grouped by image (images in id order), file order kept within an image."""
    img = np.array([image_index[a["image_id"]] for a in anns], np.int64)
    rows = np.argsort(img, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(img, minlength=len(image_index)))])
    return [anns[i] for i in rows], rows, offsets


@pytest.fixture(scope="module", params=["bbox", "segm"])
def case(request, shared_data):
    iou_type = request.param
    root = shared_data / COCO_DIR
    gt_json = json.loads((root / "instances_val2014_100.json").read_text())
    dt_json = json.loads((root / RESULTS[iou_type]).read_text())

    # --- the oracle: pycocotools end to end
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(root / "instances_val2014_100.json"))
        coco_dt = coco_gt.loadRes(str(root / RESULTS[iou_type]))
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()

    # --- ours, from the raw JSON
    images = sorted(gt_json["images"], key=lambda im: im["id"])  # pycocotools' imgIds order
    image_index = {im["id"]: s for s, im in enumerate(images)}
    sizes = np.array([[im["width"], im["height"]] for im in images], np.float64)
    for i, d in enumerate(dt_json):
        d["id"] = i + 1  # the ids loadRes gives results
    gts, _, gt_off = flatten(gt_json["annotations"], image_index)
    dts, _, dt_off = flatten(dt_json, image_index)
    gt_crowd = np.array([bool(g["iscrowd"]) for g in gts])
    if iou_type == "bbox":
        def xyxy(anns):  # COCO bbox is [x, y, w, h] in pixels
            b = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
            return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
        values, pair_off = batched_box_iou(xyxy(dts), dt_off, xyxy(gts), gt_off, crowd2=gt_crowd)
    else:
        def cropped(anns):
            masks, boxes = [], []
            for a in anns:
                w, h = sizes[image_index[a["image_id"]]].astype(int)
                m, b = crop_to_box(rasterize(a["segmentation"], h, w), w, h)
                masks.append(m)
                boxes.append(b)
            return masks, np.array(boxes).reshape(-1, 4)
        m1, b1 = cropped(dts)
        m2, b2 = cropped(gts)
        values, pair_off = batched_cropped_mask_iou(m1, b1, dt_off, m2, b2, gt_off, sizes,
                                                    crowd2=gt_crowd)
    result = coco_evaluate(
        values, pair_off, dt_off, gt_off,
        dt_scores=np.array([d["score"] for d in dts], np.float64),
        dt_labels=np.array([d["category_id"] for d in dts]),
        gt_labels=np.array([g["category_id"] for g in gts]),
        gt_crowd=gt_crowd, max_dets=100,
        categories=np.array(sorted(c["id"] for c in gt_json["categories"])),
    )
    return dict(iou_type=iou_type, ev=ev, root=root, values=values, pair_off=pair_off,
                dt_off=dt_off, gt_off=gt_off, dts=dts, gts=gts, images=images, result=result)


def area_all_eval_imgs(ev):
    all_rng = ev.params.areaRng[0]
    return [e for e in ev.evalImgs if e is not None and e["aRng"] == all_rng]


def test_our_ious_equal_pycocotools(case):
    ev, dts, gts = case["ev"], case["dts"], case["gts"]
    dt_row = {d["id"]: r for r, d in enumerate(dts)}
    gt_row = {g["id"]: r for r, g in enumerate(gts)}
    values, po, o1, o2 = case["values"], case["pair_off"], case["dt_off"], case["gt_off"]
    checked = 0
    for (img_id, cat_id), theirs in ev.ious.items():
        if len(theirs) == 0:
            continue
        # pycocotools' rows: detections by descending score; columns: gts in file order
        d_rows = [dt_row[d["id"]] for d in sorted(ev._dts[img_id, cat_id], key=lambda d: -d["score"])]
        g_rows = [gt_row[g["id"]] for g in ev._gts[img_id, cat_id]]
        s = np.searchsorted(o1, d_rows[0], side="right") - 1
        block = values[po[s]:po[s + 1]].reshape(o1[s + 1] - o1[s], o2[s + 1] - o2[s])
        ours = block[np.ix_(np.array(d_rows) - o1[s], np.array(g_rows) - o2[s])]
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
        checked += ours.size
    assert checked > 1000


def test_every_match_equals_pycocotools_at_all_thresholds(case):
    ev, result, dts, gts = case["ev"], case["result"], case["dts"], case["gts"]
    dt_row = {d["id"]: r for r, d in enumerate(dts)}
    gt_ids = np.array([g["id"] for g in gts] + [0])  # row -1 -> id 0 (pycocotools' "unmatched")
    evaluated = np.zeros(len(dts), bool)
    n_matched = 0
    for e in area_all_eval_imgs(ev):
        rows = np.array([dt_row[i] for i in e["dtIds"]], np.int64)
        if len(rows) == 0:
            continue
        evaluated[rows] = True
        for t in range(len(ev.params.iouThrs)):
            np.testing.assert_array_equal(gt_ids[result.match[t, rows]], e["dtMatches"][t])
            np.testing.assert_array_equal(result.ignored[t, rows], e["dtIgnore"][t].astype(bool))
            n_matched += int((e["dtMatches"][t] > 0).sum())
    np.testing.assert_array_equal(result.evaluated, evaluated)
    assert n_matched > 1000  # the comparison covers real matches, not just empty ones


@pytest.mark.parametrize("iou", [0.50, 0.75])
def test_per_image_tp_fp_fn_equal_pycocotools(case, iou):
    ev, result, images = case["ev"], case["result"], case["images"]
    t = int(np.flatnonzero(np.isclose(ev.params.iouThrs, iou))[0])
    index = {im["id"]: s for s, im in enumerate(images)}
    theirs = np.zeros((3, len(images)), np.int64)
    for e in area_all_eval_imgs(ev):
        s = index[e["image_id"]]
        dtm, dtig = e["dtMatches"][t] > 0, e["dtIgnore"][t].astype(bool)
        theirs[0, s] += np.sum(dtm & ~dtig)
        theirs[1, s] += np.sum(~dtm & ~dtig)
        theirs[2, s] += np.sum((e["gtMatches"][t] == 0) & (e["gtIgnore"] == 0))
    np.testing.assert_array_equal(result.tp[t], theirs[0])
    np.testing.assert_array_equal(result.fp[t], theirs[1])
    np.testing.assert_array_equal(result.fn[t], theirs[2])
    assert theirs[0].sum() > 100 and theirs[1].sum() > 10 and theirs[2].sum() > 10


def test_precision_and_ap_equal_pycocotools_and_published(case):
    ev, result = case["ev"], case["result"]
    # precision[T, R, K, area, maxDets]: area "all" is 0, maxDets 100 is the last
    np.testing.assert_array_equal(result.precision, ev.eval["precision"][:, :, :, 0, -1])
    ours = (result.AP, result.AP50, result.AP75)
    np.testing.assert_allclose(ours, ev.stats[:3], rtol=0, atol=1e-12)
    published = published_stats(case["root"] / "val2014_fake_eval_res.txt", case["iou_type"])
    expected = {"bbox": (0.505, 0.697, 0.573), "segm": (0.320, 0.562, 0.299)}[case["iou_type"]]
    assert published == expected  # the file is what the issue quotes
    np.testing.assert_allclose(ours, published, rtol=0, atol=1e-3)


def test_example_prints_published_ap(shared_data, capsys):
    """The README's interim main job: FiftyOne dataset -> label tables -> our IoU, matching, AP."""
    from iou_audit.examples import coco_reference

    assert coco_reference.main(["--data", str(shared_data / COCO_DIR)]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^(AP\d*)\s+([0-9.]+)\s+([0-9.]+)$", out, flags=re.M)
    assert [name for name, _, _ in rows] == ["AP", "AP50", "AP75"]
    for name, ours, published in rows:
        assert abs(float(ours) - float(published)) <= 1e-3, (name, ours, published)
    assert "100 images, 839 ground-truth boxes (9 crowd), 734 predicted boxes" in out

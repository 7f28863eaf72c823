"""Prediction audit metrics against pycocotools on the COCO reference data (bbox and segm), and the
TIDE dAP of removed-prediction errors against pycocotools re-run on the edited results file."""
import contextlib
import io
import json

import numpy as np
import pytest

pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

from iou_audit.audits.predictions.coco_eval import STAT_NAMES  # noqa: E402
from iou_audit.audits.predictions.coco_io import load_coco_tables  # noqa: E402
from iou_audit.audits.predictions.core import compute_prediction_audit  # noqa: E402
from iou_audit.audits.predictions.errors import PRED_KINDS  # noqa: E402

GT = "coco-val2014-100/instances_val2014_100.json"


def _cocoeval(shared_data, results, iou_type, iou_thrs=None):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(shared_data / GT))
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iou_type)
        if iou_thrs is not None:
            ev.params.iouThrs = np.array(iou_thrs)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_metrics_equal_cocoeval_stats(shared_data, iou_type):
    res = shared_data / f"coco-val2014-100/instances_val2014_fake{iou_type}100_results.json"
    oracle = _cocoeval(shared_data, str(res), iou_type)
    pred, gt = load_coco_tables(shared_data / GT, res, iou_type)
    audit = compute_prediction_audit(pred, gt, iou_type=iou_type)
    ours = np.array([audit.metrics[k] for k in STAT_NAMES])
    np.testing.assert_allclose(ours, oracle.stats, atol=1e-3)
    # the published numbers (val2014_fake_eval_res.txt): bbox AP 0.505, segm AP 0.320
    assert round(audit.metrics["AP"], 3) == {"bbox": 0.505, "segm": 0.320}[iou_type]
    # per-class AP50 vs pycocotools' precision array (area all, 100 dets)
    p = oracle.eval["precision"][0, :, :, 0, 2]
    table = audit.tables["per_class"].set_index("class")
    for k, cat in enumerate(oracle.params.catIds):
        want = p[:, k].mean() if (p[:, k] > -1).all() else np.nan
        got = table["AP50"].get(str(cat), np.nan)
        if np.isnan(want):
            assert np.isnan(got)
        else:
            assert abs(got - want) < 1e-9


def test_per_label_iou_and_matches_equal_pycocotools_at_050(shared_data):
    res = shared_data / "coco-val2014-100/instances_val2014_fakebbox100_results.json"
    oracle = _cocoeval(shared_data, str(res), "bbox")
    pred, gt = load_coco_tables(shared_data / GT, res, "bbox")
    audit = compute_prediction_audit(pred, gt, coco_metrics=False, tide=False)
    # pycocotools' evalImgs for area "all": dtMatches at IoU 0.5 give the matched GT id per detection
    dt_ids = dict(zip(pred.label_id, audit.pred_match))
    checked = 0
    for e in oracle.evalImgs:
        if e is None or e["aRng"] != [0, 1e10]:
            continue
        for did, gid, ig in zip(e["dtIds"], e["dtMatches"][0], e["dtIgnore"][0]):
            m = dt_ids[str(did)]
            got = gt.label_id[m] if m >= 0 else "0"
            assert got == str(int(gid)), (did, gid, got)
            checked += 1
    assert checked == len(pred.label_id)
    # IoU written for a matched pair equals pycocotools' IoU of that pair
    coco_gt = COCO.__new__(COCO)
    anns = {a["id"]: a for a in json.load(open(shared_data / GT))["annotations"]}
    dets = {str(i + 1): d for i, d in enumerate(json.load(open(res)))}
    for p in np.flatnonzero(audit.pred_match >= 0)[:200]:
        g = anns[int(gt.label_id[audit.pred_match[p]])]
        d = dets[pred.label_id[p]]
        want = mask_utils.iou([d["bbox"]], [g["bbox"]], [g["iscrowd"]])[0, 0]
        assert abs(audit.pred_iou[p] - want) < 1e-9
    del coco_gt


@pytest.mark.parametrize("kind", ["duplicate", "background", "both"])
def test_tide_dap_of_removed_predictions_equals_pycocotools(shared_data, kind, tmp_path):
    res = shared_data / "coco-val2014-100/instances_val2014_fakesegm100_results.json"
    pred, gt = load_coco_tables(shared_data / GT, res, "segm")
    audit = compute_prediction_audit(pred, gt, iou_type="segm", coco_metrics=False)
    flagged = set(pred.label_id[audit.errors.pred_kind == PRED_KINDS.index(kind)].tolist())
    dets = json.load(open(res))
    kept = [d for i, d in enumerate(dets) if str(i + 1) not in flagged]
    path = tmp_path / "fixed.json"
    path.write_text(json.dumps(kept))
    base = _cocoeval(shared_data, str(res), "segm", [0.5]).stats[0]
    fixed = _cocoeval(shared_data, str(path), "segm", [0.5]).stats[0]
    assert abs(audit.metrics["AP@0.5"] - base) < 1e-3
    assert abs(audit.metrics[f"tide_dAP_{kind}"] - (fixed - base)) < 1e-3


def test_tide_kinds_follow_the_definitions_brute_force(shared_data):
    """Every unmatched prediction's kind, recomputed with pycocotools IoUs and the TIDE rules."""
    res = shared_data / "coco-val2014-100/instances_val2014_fakebbox100_results.json"
    pred, gt = load_coco_tables(shared_data / GT, res, "bbox")
    audit = compute_prediction_audit(pred, gt, coco_metrics=False, tide=False)
    W, H = gt.width, gt.height
    for p in np.flatnonzero(audit.pred_match < 0):
        s = pred.sample_index[p]
        rows = [g for g in range(gt.offsets[s], gt.offsets[s + 1]) if not gt.iscrowd[g]]
        px = lambda b: [b[0] * W[s], b[1] * H[s], (b[2] - b[0]) * W[s], (b[3] - b[1]) * H[s]]  # noqa: E731
        ious = mask_utils.iou([px(pred.box[p])], [px(gt.box[g]) for g in rows], [0] * len(rows)).reshape(-1) \
            if rows else np.zeros(0)
        same = np.array([gt.label[g] == pred.label[p] for g in rows], bool)
        ms = ious[same].max(initial=0)
        mo = ious[~same].max(initial=0)
        want = ("duplicate" if ms >= 0.5 else "class" if mo >= 0.5 else "loc" if ms >= 0.1
                else "both" if mo >= 0.1 else "background")
        assert PRED_KINDS[audit.errors.pred_kind[p]] == want

"""bench/label_errors does what its docstrings say: the noise model's rates, IoU ranges, look-alike
swaps and allocation; the detector's mAP50 (pycocotools as the oracle); the dataset it writes; and
metrics.evaluate on an oracle (AUROC 1) and on random scores (AUROC ~0.5)."""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.label_errors import ALL, ERROR_TYPES, build_case, evaluate  # noqa: E402
from bench.label_errors import simulate as sim  # noqa: E402
from bench.label_errors.sources import BCCD_LOOKALIKES, COCO_DIR, COCO_GT, DATA, load_source  # noqa: E402

SEEDS = (1, 2, 3)


def _iou(a, b):
    """IoU of two xyxy boxes, written out here (not the bench's helper)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module", params=["bccd", "coco"])
def noisy(request):
    src = load_source(request.param)
    info = sim.object_info(src)
    return src, info, [sim.inject_errors(src, info, s) for s in SEEDS]


def test_error_rate_and_annotators(noisy):
    src, info, runs = noisy
    si = src.sample_index
    for n in runs:
        events = (n.error != "clean").sum() + len(n.dropped)
        assert 0.10 <= events / len(src.box) <= 0.16  # "about 12.5 % of the objects"
        # every image has one annotator and every label carries it
        assert set(n.image_annotator) <= {a.name for a in sim.ANNOTATORS}
        rows_image = np.repeat(np.arange(src.num_samples), np.diff(n.offsets))
        assert (n.annotator == n.image_annotator[rows_image]).all()
    if src.name == "bccd":  # enough objects per annotator to see their own rates
        realised = []
        for a in sim.ANNOTATORS:
            objs = errs = 0
            for n in runs:
                objs += (n.image_annotator[si] == a.name).sum()
                errs += ((n.annotator == a.name) & (n.error != "clean")).sum() + \
                    (n.image_annotator[si[n.dropped]] == a.name).sum()
            realised.append(errs / objs)
            assert abs(errs / objs - a.rate) < 0.03, (a.name, errs / objs)
        assert np.all(np.diff(realised) > 0)


def test_mislocation_iou_ranges_and_single_edge(noisy):
    src, _, runs = noisy
    seen = set()
    for n in runs:
        for kind, (lo, hi) in (("subtle_loc", sim.IOU_RANGES["subtle_loc"]), ("bad_loc", sim.IOU_RANGES["bad_loc"]),
                               ("duplicate", sim.IOU_RANGES["duplicate"])):
            rows = np.flatnonzero(n.error == kind)
            for r in rows:
                v = _iou(n.box[r], src.box[n.host[r]])
                assert lo - 0.006 <= v <= hi + 0.006, (kind, v)
                assert n.label[r] == src.label[n.host[r]]
            seen.add(kind) if len(rows) else None
        for r in np.flatnonzero(n.error == "edge"):
            host = src.box[n.host[r]]
            assert (~np.isclose(n.box[r], host)).sum() == 1  # exactly one edge moved
            assert 1 / (1 + sim.EDGE_MOVE[1]) - 1e-9 <= _iou(n.box[r], host) <= 1 / (1 + sim.EDGE_MOVE[0]) + 1e-9 \
                or 1 - sim.EDGE_MOVE[1] - 1e-9 <= _iou(n.box[r], host) <= 1 - sim.EDGE_MOVE[0] + 1e-9
            seen.add("edge")
        a = n.offsets
        for r in np.flatnonzero(n.error == "spurious"):
            s = np.searchsorted(a, r, side="right") - 1
            objs = src.box[src.offsets[s]:src.offsets[s + 1]]
            best = max(_iou(n.box[r], o) for o in objs)
            if n.detail[r] == "nothing_there":
                assert best <= 0.1 + 1e-9
            else:
                assert n.detail[r] == "wrong_region" and best <= sim.IOU_RANGES["wrong_region"][1] + 0.006
            seen.add("spurious")
    assert seen == {"subtle_loc", "bad_loc", "duplicate", "edge", "spurious"}


def test_swaps_are_look_alikes(noisy):
    src, _, runs = noisy
    if src.name == "coco":  # the oracle is the JSON's supercategories, read here
        cats = json.load(open(DATA / COCO_DIR / COCO_GT))["categories"]
        sup = {c["name"]: c["supercategory"] for c in cats}
        ok = lambda old, new: old != new and sup[old] == sup[new]  # noqa: E731
    else:
        ok = lambda old, new: new in BCCD_LOOKALIKES[old]  # noqa: E731
    n_swaps = 0
    for n in runs:
        for r in np.flatnonzero(n.error == "swap"):
            assert ok(src.label[n.host[r]], n.label[r])
            assert np.allclose(n.box[r], src.box[n.host[r]])
            n_swaps += 1
        clean = n.error == "clean"
        assert (n.label[clean] == src.label[n.host[clean]]).all()
    assert n_swaps >= 10


def test_allocation_by_size_occlusion_truncation():
    src = load_source("bccd")
    info = sim.object_info(src)
    assert np.bincount(info.size).min() > len(src.box) / 3 - 2  # terciles
    hit = np.zeros(len(src.box))
    dropped = np.zeros(len(src.box))
    for s in SEEDS + (4, 5, 6):
        n = sim.inject_errors(src, info, s)
        e = (n.error != "clean") & (n.host >= 0)
        np.add.at(hit, n.host[e], 1)
        np.add.at(hit, n.dropped, 1)
        np.add.at(dropped, n.dropped, 1)
    assert hit[info.occluded].mean() > 1.3 * hit[~info.occluded].mean()
    assert hit[info.truncated].mean() > 1.1 * hit[~info.truncated].mean()
    small, large = info.size == sim.SMALL, info.size == sim.LARGE
    assert hit[small].mean() > 1.5 * hit[large].mean()
    assert dropped[small].mean() > 4 * dropped[large].mean()  # 1.5/0.7 allocation x 2.0/0.4 drop factor


def _pycocotools_ap50(src, pred) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cats = sorted(set(src.label.tolist()) | set(pred.label.tolist()))
    cid = {c: k + 1 for k, c in enumerate(cats)}
    W, H = src.width, src.height

    def xywh(b, s):
        return [b[0] * W[s], b[1] * H[s], (b[2] - b[0]) * W[s], (b[3] - b[1]) * H[s]]

    gt = {"images": [{"id": s, "width": int(W[s]), "height": int(H[s])} for s in range(src.num_samples)],
          "categories": [{"id": i, "name": c} for c, i in cid.items()], "annotations": []}
    for i, s in enumerate(src.sample_index):
        bb = xywh(src.box[i], s)
        gt["annotations"].append({"id": i + 1, "image_id": int(s), "category_id": cid[src.label[i]], "bbox": bb,
                                  "area": bb[2] * bb[3], "iscrowd": 0})
    psi = np.repeat(np.arange(src.num_samples), np.diff(pred.offsets))
    dets = [{"image_id": int(s), "category_id": cid[pred.label[i]], "bbox": xywh(pred.box[i], s),
             "score": float(pred.confidence[i])} for i, s in enumerate(psi)]
    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes(dets), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[1])


@pytest.mark.parametrize("source,target", [("bccd", 0.83), ("coco", 0.62)])
def test_detector_map50_on_held_out_seed(source, target):
    src = load_source(source)
    info = sim.object_info(src)
    pred = sim.simulate_detector(src, info, seed=5)
    ap50 = _pycocotools_ap50(src, pred)
    assert abs(ap50 - target) < (0.03 if source == "bccd" else 0.06), ap50  # COCO-100: few objects per class
    assert sim.detector_map50(src, pred) == pytest.approx(ap50, abs=1e-9)
    # recall falls with size: the detector finds more large than small objects
    hit = np.zeros(len(src.box), bool)
    for s in range(src.num_samples):
        a, b = src.offsets[s], src.offsets[s + 1]
        p = pred.box[pred.offsets[s]:pred.offsets[s + 1]]
        for i in range(a, b):
            hit[i] = any(_iou(src.box[i], q) >= 0.5 for q in p)
    assert hit[info.size == sim.LARGE].mean() > hit[info.size == sim.SMALL].mean() + 0.1


@pytest.fixture(scope="module")
def coco_case():
    case = build_case("coco", 2)
    yield case
    case.close()


def test_case_dataset_and_truth(coco_case):
    ds, truth = coco_case.dataset, coco_case.truth
    ids = ds.values("ground_truth.detections.id", unwind=True)
    assert sorted(ids) == sorted(truth.labels.index)
    ann = ds.values("ground_truth.detections.annotator", unwind=True)
    assert dict(zip(ids, ann)) == truth.labels["annotator"].to_dict()
    assert set(truth.labels["type"]) <= set(ERROR_TYPES) | {"clean"}
    assert "dropped" not in set(truth.labels["type"]) and len(truth.dropped) > 0
    assert all(ds.values("predictions.detections.confidence", unwind=True))
    assert not ds.has_field("ground_truth.detections.sim_error")  # nothing in the dataset tells the truth
    dup = truth.labels[truth.labels["type"] == "duplicate"]
    assert dup["pair_id"].notna().all()
    assert (truth.labels.loc[list(dup["pair_id"]), "type"] == "clean").all()


def test_evaluate_oracle_scores_one(coco_case):
    truth = coco_case.truth
    oracle = {i: float(t != "clean") for i, t in truth.labels["type"].items()}
    cands = [(sid, box, 1.0) for sid, box in zip(truth.dropped["sample_id"], truth.dropped["box"])]
    m = evaluate(coco_case, oracle, cands)
    for t in ERROR_TYPES + (ALL,):
        assert m[t]["auroc"] == 1.0 and m[t]["ap"] == pytest.approx(1.0), t
    n_labels = len(truth.labels) - truth.labels["pair_id"].notna().sum()
    assert m[ALL]["recall@10%"] == pytest.approx(min(1.0, np.ceil(0.1 * n_labels) / m[ALL]["n_pos"]))
    # without candidates every dropped object is ranked last
    assert evaluate(coco_case, oracle)["dropped"]["auroc"] == 0.0


def test_evaluate_random_scores_half(coco_case):
    truth = coco_case.truth
    rng = np.random.default_rng(0)
    aucs = {t: [] for t in ERROR_TYPES + (ALL,)}
    for _ in range(30):
        scores = {i: rng.random() for i in truth.labels.index}
        cands = [(sid, box, rng.random()) for sid, box in zip(truth.dropped["sample_id"], truth.dropped["box"])]
        cands += [(sid, np.array([0.0, 0.0, 0.05, 0.05]), rng.random()) for sid in truth.dropped["sample_id"]]
        m = evaluate(coco_case, scores, cands)
        for t in aucs:
            aucs[t].append(m[t]["auroc"])
    for t, v in aucs.items():
        assert abs(np.mean(v) - 0.5) < 0.06, (t, np.mean(v))


def test_methods_score_every_label_of_a_small_case():
    from bench.label_errors import METHODS, score

    with build_case("coco", 3, limit=15) as case:
        ids = set(case.truth.labels.index)
        sample_ids = set(case.dataset.values("id"))
        assert 0 <= case.detectable_dropped <= 1 or np.isnan(case.detectable_dropped)
        for m in METHODS:
            label_scores, candidates = score(case, m)
            assert set(label_scores) <= ids
            if m != "triage":  # the triage queue lists only flagged labels
                assert set(label_scores) == ids
            assert all(sid in sample_ids and len(box) == 4 for sid, box, _ in candidates)
            res = evaluate(case, label_scores, candidates)
            assert 0 <= res[ALL]["auroc"] <= 1


def test_peer_cache_gives_the_scores_of_a_fresh_run_on_a_rebuilt_case(tmp_path):
    """A peer's scores stored from one build and read into a second build of the same source and
    seed (new label and sample ids) give the metrics of running the peer on the second build."""
    from bench.label_errors import score

    with build_case("coco", 2, limit=12) as case:
        stored = evaluate(case, *score(case, "cleanlab", cache_dir=tmp_path))
    assert len(list(tmp_path.iterdir())) == 1
    with build_case("coco", 2, limit=12) as case:
        cached = evaluate(case, *score(case, "cleanlab", cache_dir=tmp_path))
        fresh = evaluate(case, *score(case, "cleanlab"))
    as_text = [json.dumps(x, sort_keys=True) for x in (stored, cached, fresh)]  # NaN-safe equality
    assert as_text[0] == as_text[1] == as_text[2]


@pytest.mark.parametrize("module", ["sources", "simulate", "metrics"])
def test_worked_examples(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"bench.label_errors.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

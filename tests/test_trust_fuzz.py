"""Trust suite: hypothesis property tests over random label sets.

Kernels against independent oracles (pycocotools for boxes and masks, shapely for polygons,
scipy's assignment for matching); each audit against an invariant that holds whatever the labels
(order, self-agreement, perfect predictions, an exact copy across splits); and random garbage
(NaN/inf/negative/wrong-length boxes, empty lists) never raising a low-level exception.
"""
import numpy as np
import pytest
import shapely
from bson import ObjectId
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment

import iou_audit
from iou_audit.matching import greedy_match, hungarian_match

CLEAR = (ValueError, TypeError, NotImplementedError)
DB = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
ARRAYS = settings(max_examples=200, deadline=None)

# ---------------------------------------------------------------- kernels vs oracles
coord = st.floats(0, 100, allow_nan=False)
size = st.one_of(st.just(0.0), st.floats(0.01, 60))  # sizes below 0.01 lose digits in x + w - x
xywh = st.tuples(coord, coord, size, size)
box_sets = st.lists(xywh, min_size=1, max_size=12)


def _xyxy(boxes):
    b = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    return np.c_[b[:, :2], b[:, :2] + b[:, 2:]]


@ARRAYS
@given(box_sets, box_sets, st.lists(st.booleans(), min_size=12, max_size=12))
def test_box_iou_equals_pycocotools(a, b, crowd):
    crowd = np.array(crowd[: len(b)])
    ours = iou_audit.box_iou(_xyxy(a), _xyxy(b), crowd=crowd)
    ref = np.asarray(mask_utils.iou(np.array(a, float), np.array(b, float), crowd.astype(np.uint8)), float)
    np.testing.assert_allclose(ours, ref.reshape(ours.shape), rtol=1e-9, atol=1e-12)
    assert ((ours >= 0) & (ours <= 1)).all()
    plain = iou_audit.box_iou(_xyxy(a), _xyxy(b))
    np.testing.assert_allclose(plain, iou_audit.box_iou(_xyxy(b), _xyxy(a)).T, atol=1e-15)


# Finite coordinates beyond ~1e150 overflow an area or the enclosing box to inf, and GIoU/DIoU/
# CIoU/IoS then give NaN (inf / inf): a known limit (README), kept out of the kernels' hot loops.
any_float = st.one_of(st.floats(-1e150, 1e150), st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0]))


@ARRAYS
@given(st.lists(st.tuples(any_float, any_float, any_float, any_float), min_size=1, max_size=8),
       st.lists(st.tuples(any_float, any_float, any_float, any_float), min_size=0, max_size=8),
       st.sampled_from(["iou", "giou", "diou", "ciou", "ios"]))
def test_box_metrics_on_garbage_are_finite_and_bounded(a, b, metric):
    with np.errstate(all="ignore"):
        out = iou_audit.box_iou(np.array(a), np.array(b).reshape(-1, 4), metric=metric)
        swapped = iou_audit.box_iou(np.array(b).reshape(-1, 4), np.array(a), metric=metric)
    assert out.shape == (len(a), len(b)) and np.isfinite(out).all()
    low = 0.0 if metric in ("iou", "ios") else -1.0
    assert ((out >= low - 1e-12) & (out <= 1 + 1e-12)).all()
    np.testing.assert_allclose(out, swapped.T, atol=1e-12)


@st.composite
def star_polygon(draw):
    """A simple (possibly non-convex) polygon: points sorted by angle around a centre."""
    n = draw(st.integers(3, 9))
    cx, cy = draw(st.floats(0.2, 0.8)), draw(st.floats(0.2, 0.8))
    angles = np.sort(np.array(draw(st.lists(st.floats(0, 2 * np.pi, exclude_max=True), min_size=n, max_size=n,
                                            unique=True))))
    radii = np.array(draw(st.lists(st.floats(0.02, 0.3), min_size=n, max_size=n)))
    pts = np.c_[cx + radii * np.cos(angles), cy + radii * np.sin(angles)]
    poly = shapely.Polygon(pts)
    assume(poly.is_valid and poly.area > 1e-6)
    return pts.tolist()


@ARRAYS
@given(st.lists(star_polygon(), min_size=1, max_size=5), st.lists(star_polygon(), min_size=1, max_size=5))
def test_polygon_iou_equals_shapely(a, b):
    ours = iou_audit.polygon_iou([[p] for p in a], [[q] for q in b])
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            gp, gq = shapely.Polygon(p), shapely.Polygon(q)
            ref = gp.intersection(gq).area / gp.union(gq).area
            assert ours[i, j] == pytest.approx(ref, abs=1e-9)
    np.testing.assert_allclose(ours, iou_audit.polygon_iou([[q] for q in b], [[p] for p in a]).T, atol=1e-12)


ring = st.lists(st.tuples(st.floats(-1, 2), st.floats(-1, 2)), min_size=0, max_size=7)


@ARRAYS
@given(st.lists(st.lists(ring, max_size=2), min_size=1, max_size=4),
       st.lists(st.lists(ring, max_size=2), min_size=1, max_size=4))
def test_polygon_iou_on_self_intersecting_and_degenerate_rings(a, b):
    """Bowties, lines, points, empty rings: bounded, symmetric, never NaN or an exception."""
    ours = iou_audit.polygon_iou(a, b)
    assert ours.shape == (len(a), len(b)) and np.isfinite(ours).all()
    assert ((ours >= 0) & (ours <= 1)).all()
    np.testing.assert_allclose(ours, iou_audit.polygon_iou(b, a).T, atol=1e-9)


@st.composite
def pixel_masks(draw, width=24, height=20):
    """Instance masks on pixel-aligned boxes (relative ``xyxy``) and the same masks pasted on
    the whole frame (what pycocotools compares)."""
    n = draw(st.integers(1, 5))
    masks, boxes, frames = [], [], []
    for _ in range(n):
        x0, y0 = draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1))
        x1, y1 = draw(st.integers(x0 + 1, width)), draw(st.integers(y0 + 1, height))
        seed = draw(st.integers(0, 2**31))
        m = np.random.default_rng(seed).random((y1 - y0, x1 - x0)) < draw(st.floats(0.2, 1.0))
        frame = np.zeros((height, width), np.uint8)
        frame[y0:y1, x0:x1] = m
        masks.append(m)
        boxes.append([x0 / width, y0 / height, x1 / width, y1 / height])
        frames.append(frame)
    return masks, np.array(boxes), frames


@ARRAYS
@given(pixel_masks(), pixel_masks(), st.lists(st.booleans(), min_size=5, max_size=5))
def test_mask_iou_equals_pycocotools(a, b, crowd):
    (ma, ba, fa), (mb, bb, fb) = a, b
    crowd = np.array(crowd[: len(mb)])
    ours = iou_audit.cropped_mask_iou(ma, ba, mb, bb, (24, 20), crowd=crowd)
    rle = lambda frames: mask_utils.encode(np.asfortranarray(np.stack(frames, axis=2)))
    ref = np.asarray(mask_utils.iou(rle(fa), rle(fb), crowd.astype(np.uint8)), float).reshape(ours.shape)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert ((ours >= 0) & (ours <= 1)).all()
    plain = iou_audit.cropped_mask_iou(ma, ba, mb, bb, (24, 20))
    np.testing.assert_allclose(plain, iou_audit.cropped_mask_iou(mb, bb, ma, ba, (24, 20)).T, atol=1e-15)


iou_matrices = st.integers(0, 7).flatmap(lambda n: st.integers(0, 7).flatmap(
    lambda m: st.lists(st.sampled_from([0.0, 0.3, 0.5, 0.55, 0.7, 0.9, 1.0]), min_size=n * m, max_size=n * m)
    .map(lambda v: np.array(v, float).reshape(n, m))))


def _one_to_one(r2c, c2r, ious, thresh):
    rows = np.flatnonzero(r2c >= 0)
    assert len(set(r2c[rows].tolist())) == len(rows)  # no column taken twice
    assert (c2r[r2c[rows]] == rows).all() and (c2r >= 0).sum() == len(rows)  # the two views agree
    assert (ious[rows, r2c[rows]] >= min(thresh, 1 - 1e-10)).all()


@ARRAYS
@given(iou_matrices, st.sampled_from([0.5, 0.7]), st.data())
def test_matching_is_one_to_one_and_hungarian_is_optimal(ious, thresh, data):
    n, m = ious.shape
    scores = np.array(data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    r2c, c2r = greedy_match(ious, scores, thresh)
    _one_to_one(r2c, c2r, ious, thresh)
    r2c, c2r = hungarian_match(ious, thresh)
    _one_to_one(r2c, c2r, ious, thresh)
    usable = np.where(ious >= thresh, ious, 0.0)
    i, j = linear_sum_assignment(usable, maximize=True)  # the oracle's optimum
    rows = np.flatnonzero(r2c >= 0)
    assert ious[rows, r2c[rows]].sum() == pytest.approx(usable[i, j].sum(), abs=1e-9)


# ---------------------------------------------------------------- audits on a real database
@pytest.fixture(scope="module")
def db():
    import fiftyone as fo

    d = fo.Dataset()
    yield d
    d.delete()


unit_box = st.tuples(st.floats(0, 0.9), st.floats(0, 0.9), st.floats(0.01, 0.5), st.floats(0.01, 0.5))
classes = st.sampled_from(["a", "b", "$c.d", "血"])


@st.composite
def sample_labels(draw):
    """Up to 8 labels, some of them near-copies of earlier ones (so duplicates, conflicts and
    containments occur, not only scattered boxes)."""
    out = []
    for _ in range(draw(st.integers(0, 8))):
        if out and draw(st.booleans()):
            (x, y, w, h), cls = draw(st.sampled_from(out))
            jitter = draw(st.floats(-0.02, 0.02))
            out.append(((x + jitter, y, w, h * draw(st.sampled_from([1.0, 0.5]))), draw(st.sampled_from([cls, "a"]))))
        else:
            out.append((draw(unit_box), draw(classes)))
    return out


label_sets = st.lists(sample_labels(), min_size=1, max_size=5)


def _fill(d, label_sets, fields=("gt",), conf=None, **extra):
    """Replace the dataset's samples: one per label set, the same labels in every field of
    ``fields`` (separate labels, separate ids)."""
    import fiftyone as fo

    d.clear()
    samples = []
    for k, labels in enumerate(label_sets):
        s = fo.Sample(filepath=f"/nonexistent/{k}.jpg", metadata=fo.ImageMetadata(width=640, height=480))
        for f in fields:
            s[f] = fo.Detections(detections=[
                fo.Detection(label=lab, bounding_box=list(b), **({"confidence": conf[k][j]} if conf and f == "pred" else {}))
                for j, (b, lab) in enumerate(labels)])
        for name, values in extra.items():
            s[name] = values[k]
        samples.append(s)
    d.add_samples(samples, progress=False)
    return d


def _pairs(findings):
    """Findings as a set independent of label order (pair members unordered)."""
    return {(k, s, frozenset((a, b)) - {""}, round(float(v), 9))
            for k, s, a, b, v in zip(findings["kind"], findings["sample_id"], findings["label_id"],
                                     findings["other_label_id"], findings["score"])}


@DB
@given(label_sets, st.randoms(use_true_random=False))
def test_duplicates_findings_do_not_depend_on_label_order(db, labels, rnd):
    _fill(db, labels)
    first = iou_audit.audit_duplicates(db, "gt", save=False)
    for doc in db._sample_collection.find({}, {"gt": 1}):
        dets = doc["gt"]["detections"]
        rnd.shuffle(dets)
        db._sample_collection.update_one({"_id": doc["_id"]}, {"$set": {"gt.detections": dets}})
    again = iou_audit.audit_duplicates(db, "gt", save=False)
    assert _pairs(first.findings) == _pairs(again.findings)
    event(f"duplicate findings: {min(len(first.findings), 3)}+")


@DB
@given(label_sets)
def test_agreement_of_a_field_with_its_copy_is_perfect(db, labels):
    _fill(db, labels, fields=("gt", "copy"))
    r = iou_audit.audit_agreement(db, ["gt", "copy"], save=False)
    assert len(r.findings) == 0, r.findings[["kind", "label", "score"]]
    n = sum(len(x) for x in labels)
    if n:
        assert r.metrics["f1"] == pytest.approx(1.0) and r.metrics["mean_iou"] == pytest.approx(1.0)


@DB
@given(label_sets, st.data())
def test_predictions_equal_to_labels_give_ap_1_and_no_errors(db, labels, data):
    conf = [data.draw(st.lists(st.floats(0.01, 1), min_size=len(x), max_size=len(x))) for x in labels]
    _fill(db, labels, fields=("gt", "pred"), conf=conf)
    r = iou_audit.audit_predictions(db, "pred", "gt", save=False)
    assert len(r.findings) == 0, r.findings[["kind", "label", "score"]]
    if sum(len(x) for x in labels):
        assert r.metrics["AP@0.5"] == pytest.approx(1.0)
        assert r.metrics["AP"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_images")


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.integers(0, 2**31), min_size=2, max_size=6, unique=True), st.data())
def test_splits_audit_finds_an_exact_copy_across_splits(db, image_dir, seeds, data):
    from PIL import Image

    paths = []
    for seed in seeds:
        p = image_dir / f"{seed}.png"
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 48, 3), np.uint8)).save(p)
        paths.append(str(p))
    copied = data.draw(st.integers(0, len(paths) - 1))
    copy = image_dir / f"{seeds[copied]}_copy.png"
    copy.write_bytes(open(paths[copied], "rb").read())
    splits = data.draw(st.lists(st.sampled_from(["train", "val", "test"]), min_size=len(paths), max_size=len(paths)))
    copy_split = data.draw(st.sampled_from(sorted({"train", "val", "test"} - {splits[copied]})))

    import fiftyone as fo

    db.clear()
    db.add_samples([fo.Sample(filepath=p, split=s) for p, s in zip([*paths, str(copy)], [*splits, copy_split])],
                   progress=False)
    r = iou_audit.audit_splits(db, split_field="split", label_field=None, save=False)
    exact = r.findings[r.findings["kind"] == "leak_exact"]
    by_id = dict(zip(db.values("id"), db.values("filepath")))
    pairs = {frozenset((by_id[a], by_id[b])) for a, b in zip(exact["sample_id"], exact["other_sample_id"])}
    assert frozenset((paths[copied], str(copy))) in pairs
    assert len(pairs) == 1  # random noise images are not copies of each other


garbage_box = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=6),
    st.tuples(st.floats(-2, 2), st.floats(-2, 2), st.floats(-1, 1), st.floats(-1, 1)).map(list),
    st.none())
garbage_sets = st.lists(st.lists(st.tuples(garbage_box, st.sampled_from(["a", "b", None])), max_size=5),
                        min_size=1, max_size=4)
AUDITS = {
    "duplicates": lambda d: iou_audit.audit_duplicates(d, "gt", audit_key="fz"),
    "agreement": lambda d: iou_audit.audit_agreement(d, ["gt", "ann"], audit_key="fz"),
    "predictions": lambda d: iou_audit.audit_predictions(d, "ann", "gt", audit_key="fz"),
    "splits": lambda d: iou_audit.audit_splits(d, split_field="split", label_field="gt", audit_key="fz"),
}


def _state(d):
    docs = list(d._sample_collection.find({}, {"last_modified_at": 0}, sort=[("_id", 1)]))
    d.reload()
    return docs, sorted(d.get_field_schema(flat=True)), d.list_runs(), d.list_saved_views()


@pytest.mark.parametrize("audit", AUDITS)
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(labels=garbage_sets)
def test_audits_on_random_garbage_raise_clear_errors_or_make_findings(db, audit, labels):
    """Boxes of any length and value, None boxes, labels without a class, empty lists (written
    raw, as a broken importer would): a finding or a clear error with nothing written."""
    good = [[((0.1, 0.1, 0.2, 0.2), "a")]] * len(labels)
    _fill(db, good, fields=("gt", "ann"), split=["train", "val", "test", "val"])
    broken = set()
    for doc, lab in zip(db._sample_collection.find({}, {"gt": 1}, sort=[("_id", 1)]), labels):
        template = doc["gt"]["detections"][0]
        dets = [{**template, "_id": ObjectId(), "bounding_box": box, "label": cls} for box, cls in lab]
        broken |= {str(d["_id"]) for d in dets if not _valid(d["bounding_box"])}
        db._sample_collection.update_one({"_id": doc["_id"]}, {"$set": {"gt.detections": dets}})
    before = _state(db)
    try:
        r = AUDITS[audit](db)
    except CLEAR as e:
        assert _state(db) == before, f"partial write before {e!r}"
        event(f"{audit}: refused ({type(e).__name__})")
        return
    event(f"{audit}: findings")
    if audit == "duplicates":  # every broken box is reported, no valid one is called degenerate
        f = r.findings
        assert set(f.loc[f["kind"] == "degenerate_box", "label_id"]) == broken
    assert iou_audit.load_audit(db, "fz").findings["kind"].tolist() == r.findings["kind"].tolist()
    iou_audit.delete_audit(db, "fz")
    assert _state(db)[1:] == before[1:]


def _valid(box):
    """A box any audit can use: 4 finite numbers of positive width and height in float64 (a
    width that vanishes next to a huge corner, x + w == x, is no width)."""
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        return False
    x, y, w, h = map(float, box)
    return bool(np.isfinite([x, y, w, h, x + w, y + h]).all() and x + w > x and y + h > y)

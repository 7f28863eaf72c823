"""Duplicate audit compute core: every expected value comes from shapely, FiftyOne's own mask
renderer, or the construction of the case (identical boxes, zero-size boxes), never from our code."""
import fiftyone as fo
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from iou_audit.audits.duplicates import box_problems, duplicate_findings, pair_overlaps
from iou_audit.table import read_label_table


def _shapely_iou_ios(a, b):
    pa, pb = shapely.box(*a), shapely.box(*b)
    inter = pa.intersection(pb).area
    union = pa.area + pb.area - inter
    return (inter / union if union > 0 else 0.0), (inter / min(pa.area, pb.area) if inter > 0 else 0.0)


def _dataset_with(dets_per_sample, width=100, height=100):
    ds = fo.Dataset()
    samples = []
    for i, dets in enumerate(dets_per_sample):
        s = fo.Sample(filepath=f"/nonexistent/{i}.png", ground_truth=fo.Detections(detections=dets))
        s["metadata"] = fo.ImageMetadata(width=width, height=height)
        samples.append(s)
    ds.add_samples(samples)
    return ds


def _det(label, x1, y1, x2, y2, **kw):
    return fo.Detection(label=label, bounding_box=[x1, y1, x2 - x1, y2 - y1], **kw)


def test_constructed_cases_give_each_kind_once():
    ds = _dataset_with([
        [_det("a", .1, .1, .3, .3), _det("a", .1, .1, .3, .3),      # exact copy -> duplicate, IoU 1
         _det("b", .6, .6, .9, .9), _det("c", .6, .6, .9, .9),      # same box, other class -> conflict
         _det("a", .5, .0, .9, .4), _det("a", .6, .1, .7, .2)],     # 0.1x0.1 inside 0.4x0.4 -> contained
        [_det("a", .2, .2, .2, .5),                                  # zero width -> degenerate
         _det("a", .8, .8, 1.2, 1.0)],                               # half outside -> out_of_bounds
    ])
    try:
        t = read_label_table(ds, "ground_truth")
        f, attrs = duplicate_findings(t, iou_thresh=0.75)
        by_kind = f.groupby("kind").size().to_dict()
        assert by_kind == {"duplicate": 1, "class_conflict": 1, "contained": 1, "degenerate_box": 1,
                           "out_of_bounds": 1}
        ids = t.label_id
        dup = f[f.kind == "duplicate"].iloc[0]
        assert (dup.label_id, dup.other_label_id, dup.score) == (ids[1], ids[0], 1.0)
        assert attrs["dup_of"] == {ids[1]: ids[0]}
        conflict = f[f.kind == "class_conflict"].iloc[0]
        assert (conflict.label_id, conflict.other_label_id) == (ids[3], ids[2])
        contained = f[f.kind == "contained"].iloc[0]
        assert (contained.label_id, contained.other_label_id) == (ids[5], ids[4])
        iou, ios = _shapely_iou_ios(t.box[4], t.box[5])
        assert contained.iou == pytest.approx(iou) and contained.score == pytest.approx(ios) == 1.0
        assert f[f.kind == "degenerate_box"].label_id.tolist() == [ids[6]]
        oob = f[f.kind == "out_of_bounds"].iloc[0]
        assert oob.label_id == ids[7] and oob.score == pytest.approx(0.5)  # 0.2 of 0.4 width outside
        assert attrs["max_iou"][ids[0]] == attrs["max_iou"][ids[1]] == 1.0
        assert ids[2] not in attrs["max_iou"]  # its only overlap is with another class
        assert attrs["max_iou"][ids[4]] == attrs["max_iou"][ids[5]] == pytest.approx(1 / 16)
        assert set(f.sample_id[f.kind == "out_of_bounds"]) == {ds.last().id}
    finally:
        ds.delete()


def test_box_problems_nan_and_negative():
    d, o, frac = box_problems(np.array([[np.nan, 0, 1, 1], [.5, .5, .4, .9], [-.5, 0, .5, 1], [0, 0, 1, 1.0005]]))
    assert d.tolist() == [True, True, False, False]
    assert o.tolist() == [False, False, True, False]  # 5e-4 overshoot is within rounding tolerance
    assert frac[2] == pytest.approx(0.5)


def test_thresholds_are_validated():
    ds = _dataset_with([[_det("a", .1, .1, .2, .2)]])
    try:
        t = read_label_table(ds, "ground_truth")
        with pytest.raises(ValueError, match="iou_thresh"):
            duplicate_findings(t, iou_thresh=1.5)
        with pytest.raises(ValueError, match="geometry"):
            duplicate_findings(t, geometry="circles")
    finally:
        ds.delete()


box_st = st.tuples(st.integers(0, 8), st.integers(0, 8), st.integers(1, 6), st.integers(1, 6)).map(
    lambda t: (t[0] / 10, t[1] / 10, min(t[0] + t[2], 10) / 10, min(t[1] + t[3], 10) / 10))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from("ab"), box_st), max_size=6), min_size=1, max_size=4),
       st.sampled_from([0.5, 0.75, 0.9]))
def test_pairs_match_shapely_bruteforce(samples, thresh):
    """The set of duplicate / conflict / contained pairs equals a shapely brute force over all pairs."""
    ds = _dataset_with([[_det(c, *b) for c, b in dets] for dets in samples])
    try:
        t = read_label_table(ds, "ground_truth")
        f, _ = duplicate_findings(t, iou_thresh=thresh, conflict_iou=0.95, contain_ios=0.95)
        expected = set()
        for s in range(t.num_samples):
            rows = range(t.offsets[s], t.offsets[s + 1])
            for i in rows:
                for j in rows:
                    if j <= i:
                        continue
                    iou, ios = _shapely_iou_ios(t.box[i], t.box[j])
                    same = t.label[i] == t.label[j]
                    if same and iou >= thresh - 1e-12:
                        expected.add(("duplicate", t.label_id[j], t.label_id[i]))
                    elif not same and iou >= 0.95 - 1e-12:
                        expected.add(("class_conflict", t.label_id[j], t.label_id[i]))
                    elif same and ios >= 0.95 - 1e-12:
                        ai = shapely.box(*t.box[i]).area
                        aj = shapely.box(*t.box[j]).area
                        small, big = (j, i) if aj <= ai else (i, j)
                        expected.add(("contained", t.label_id[small], t.label_id[big]))
        pairs = f[f.kind.isin(["duplicate", "class_conflict", "contained"])]
        got = set(zip(pairs.kind, pairs.label_id, pairs.other_label_id))
        assert got == expected
        for _, r in pairs.iterrows():
            i, j = (np.flatnonzero(t.label_id == r.label_id)[0], np.flatnonzero(t.label_id == r.other_label_id)[0])
            assert r.iou == pytest.approx(_shapely_iou_ios(t.box[i], t.box[j])[0], abs=1e-9)
    finally:
        ds.delete()


def _full_mask(det, width, height):
    """The label's mask placed in the frame by FiftyOne's own renderer (the oracle)."""
    return fo.Detections(detections=[det]).to_segmentation(frame_size=(width, height),
                                                           mask_targets={1: det.label}).mask > 0


def test_mask_geometry_matches_fiftyone_rendering():
    """Two boxes with IoU 1 but masks covering different halves: mask IoU decides, as rendered by
    ``Detections.to_segmentation``; a box-only audit calls it a duplicate."""
    rng = np.random.default_rng(0)
    left = np.zeros((20, 20), bool); left[:, :12] = True
    right = np.zeros((20, 20), bool); right[:, 8:] = True
    blob = rng.random((20, 20)) > 0.3
    dets = [_det("a", .1, .1, .3, .3, mask=left), _det("a", .1, .1, .3, .3, mask=right),
            _det("a", .1, .1, .3, .3, mask=left.copy()), _det("b", .2, .2, .4, .4, mask=blob)]
    ds = _dataset_with([dets])
    try:
        t = read_label_table(ds, "ground_truth")
        ri, rj, iou, ios, used = pair_overlaps(t, "auto")
        full = [_full_mask(d, 100, 100) for d in ds.first().ground_truth.detections]
        for i, j, v, s, g in zip(ri, rj, iou, ios, used):
            inter = (full[i] & full[j]).sum()
            expected_iou = inter / (full[i] | full[j]).sum()
            expected_ios = inter / min(full[i].sum(), full[j].sum())
            assert g == "masks"
            assert v == pytest.approx(expected_iou, abs=1e-12) and s == pytest.approx(expected_ios, abs=1e-12)
        f, _ = duplicate_findings(t, iou_thresh=0.75)
        assert set(zip(f.kind, f.label_id)) == {("duplicate", t.label_id[2])}  # left vs left copy only
        fb, _ = duplicate_findings(t, iou_thresh=0.75, geometry="boxes")
        assert set(fb.label_id[fb.kind == "duplicate"]) == {t.label_id[1], t.label_id[2]}
    finally:
        ds.delete()


def test_filled_polylines_use_polygon_iou():
    tri1 = [[(0.1, 0.1), (0.5, 0.1), (0.1, 0.5)]]   # lower-left triangle of the box
    tri2 = [[(0.5, 0.5), (0.5, 0.1), (0.1, 0.5)]]   # upper-right triangle: same box, IoU 0 as polygons
    tri3 = [[(0.1, 0.1), (0.5, 0.1), (0.1, 0.49)]]
    ds = fo.Dataset()
    try:
        ds.add_sample(fo.Sample(filepath="/nonexistent/p.png", poly=fo.Polylines(polylines=[
            fo.Polyline(label="a", points=p, closed=True, filled=True) for p in (tri1, tri2, tri3)])))
        t = read_label_table(ds, "poly")
        ri, rj, iou, ios, used = pair_overlaps(t)
        shapes = [shapely.Polygon(p[0]) for p in (tri1, tri2, tri3)]
        for i, j, v in zip(ri, rj, iou):
            a, b = shapes[i], shapes[j]
            inter = a.intersection(b).area
            assert v == pytest.approx(inter / (a.area + b.area - inter), abs=1e-9)
        f, _ = duplicate_findings(t, iou_thresh=0.75)
        assert set(zip(f.kind, f.label_id, f.other_label_id)) == {("duplicate", t.label_id[2], t.label_id[0])}
    finally:
        ds.delete()


def test_samples_without_labels_and_empty_views():
    from iou_audit.audits.duplicates import audit_duplicates

    ds = _dataset_with([[_det("a", .1, .1, .3, .3), _det("a", .1, .1, .3, .3)], []])
    ds.add_sample(fo.Sample(filepath="/nonexistent/none.png"))  # ground_truth is None
    try:
        result = audit_duplicates(ds, "ground_truth", audit_key="d", save=False)
        assert result.counts() == {"duplicate": 1}
        assert result.metrics["n_labels"] == 2
        empty = audit_duplicates(ds.limit(0), "ground_truth", audit_key="d", save=False)
        assert len(empty.findings) == 0 and empty.metrics["n_duplicate"] == 0
        with pytest.raises(ValueError, match="nope"):
            audit_duplicates(ds, "nope", save=False)
    finally:
        ds.delete()

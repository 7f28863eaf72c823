"""audit_agreement on real FiftyOne datasets: what lands in the dataset, consensus, coverage."""
import fiftyone as fo
import numpy as np
import pytest

from iou_audit.audits.agreement import audit_agreement
from iou_audit.results import list_audits, load_audit


def det(label, xyxy, **kw):
    x1, y1, x2, y2 = xyxy
    return fo.Detection(label=label, bounding_box=[x1, y1, x2 - x1, y2 - y1], **kw)


X, Y, Z = [0, 0, .2, .2], [.5, .5, .7, .7], [.8, .0, .95, .1]


@pytest.fixture
def three(dataset):
    s0 = fo.Sample(filepath="/nonexistent/0.jpg",
                   a=fo.Detections(detections=[det("cat", X), det("car", Y)]),
                   b=fo.Detections(detections=[det("cat", [0, 0, .2, .22]), det("car", Y)]),
                   c=fo.Detections(detections=[det("dog", X), det("cup", Z)]))
    s1 = fo.Sample(filepath="/nonexistent/1.jpg", covered=["a", "b"],
                   a=fo.Detections(detections=[det("cat", X)]), b=fo.Detections(detections=[det("cat", X)]),
                   c=fo.Detections())
    dataset.add_samples([s0, s1])
    return dataset


def test_audit_writes_tags_attributes_counts_and_consensus(three):
    before = three.values("a.detections.bounding_box")
    res = audit_agreement(three, ["a", "b", "c"], consensus_field="consensus", coverage_field="covered")
    assert res.counts() == {"class_conflict": 1, "missing_in_annotator": 1, "extra_in_annotator": 1}
    assert res.metrics["n_objects"] == 4
    assert "agreement" in list_audits(three)
    assert load_audit(three, "agreement").counts() == res.counts()
    # tags on the offending labels
    assert three.count_label_tags("c") == {"agreement:class_conflict": 1, "agreement:extra_in_annotator": 1}
    # per-label attributes: the cat cluster has 3 annotators on sample 0
    n = three.values("a.detections.agreement_n_annotators")
    assert n == [[3, 2], [2]]
    # per-sample values
    assert three.values("agreement_f1")[1] == 1.0
    # consensus: sample 0 has cat (3/3) and car (2/3); the cup (1/3) is below quorum
    cons = three.values("consensus.detections")
    assert [d.label for d in cons[0]] == ["cat", "car"]
    cat = cons[0][0]
    assert cat.bounding_box[3] == pytest.approx(np.average([.2, .22, .2], weights=_weights()), abs=1e-9)
    assert len(cat.members) == 3 and 0 < cat.confidence <= 1
    # sample 1: c did not cover it, so the cat is 2 of 2 covering annotators
    assert [d.label for d in cons[1]] == ["cat"] and cons[1][0].confidence == pytest.approx(1.0)
    assert three.values("a.detections.bounding_box") == before


def _weights():
    # member weights = mean IoU with the two others; IoU(X, b's box) = 0.04/0.044
    i = 0.04 / 0.044
    return [(i + 1) / 2, (i + i) / 2, (1 + i) / 2]


def test_rerun_same_key_replaces_and_annotator_attr_mode(dataset):
    dataset.add_samples([fo.Sample(filepath="/nonexistent/x.jpg", gt=fo.Detections(detections=[
        det("cat", X, rater="r1"), det("cat", X, rater="r2"), det("dog", Z, rater="r2")]))])
    r1 = audit_agreement(dataset, "gt", annotator_attr="rater")
    r2 = audit_agreement(dataset, "gt", annotator_attr="rater")
    assert r1.counts() == r2.counts() == {"extra_in_annotator": 1}
    assert dataset.count_label_tags("gt") == {"agreement:extra_in_annotator": 1}
    assert r2.tables["pairs"][["annotator_a", "annotator_b", "f1"]].values.tolist() == [["r1", "r2", pytest.approx(2 / 3)]]


def test_bad_input_errors_name_the_problem(three):
    with pytest.raises(ValueError, match="label fields"):
        audit_agreement(three, ["a"])
    with pytest.raises(ValueError, match="unknown annotators"):
        three.set_values("covered", [["a", "zed"], None])
        audit_agreement(three, ["a", "b", "c"], coverage_field="covered")


def test_filled_polylines_use_polygon_iou(dataset):
    from shapely.geometry import Polygon

    tri = [(0.1, 0.1), (0.5, 0.1), (0.1, 0.5)]
    tri2 = [(0.12, 0.1), (0.5, 0.12), (0.1, 0.45)]
    poly = lambda pts, lab: fo.Polyline(label=lab, points=[pts], closed=True, filled=True)  # noqa: E731
    dataset.add_samples([fo.Sample(filepath="/nonexistent/p.jpg",
                                   a=fo.Polylines(polylines=[poly(tri, "road")]),
                                   b=fo.Polylines(polylines=[poly(tri2, "road")]))])
    res = audit_agreement(dataset, ["a", "b"], compute_map=False)
    want = Polygon(tri).intersection(Polygon(tri2)).area / Polygon(tri).union(Polygon(tri2)).area
    assert res.metrics["geometry"] == "polygons"
    assert res.tables["pairs"].mean_iou.iloc[0] == pytest.approx(want, abs=1e-12)


def test_labels_without_mask_fall_back_to_boxes(dataset):
    sq = np.ones((4, 4), bool)
    both = lambda: fo.Detections(detections=[  # noqa: E731
        fo.Detection(label="x", bounding_box=[.1, .1, .1, .1], mask=sq), fo.Detection(label="y", bounding_box=[.5, .5, .2, .2])])
    dataset.add_sample(fo.Sample(filepath="/nonexistent/m.jpg", metadata=fo.ImageMetadata(width=40, height=40), a=both(), b=both()))
    r = audit_agreement(dataset, ["a", "b"], save=False)
    assert r.metrics["geometry"] == "masks"
    assert r.tables["pairs"][["matched", "mean_iou"]].values.tolist() == [[2, 1.0]]

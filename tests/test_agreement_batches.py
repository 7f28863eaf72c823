"""Batched agreement audit == single pass: findings, every table, metrics and written values.

The single pass (batch_size >= number of samples) is the configuration checked against the external
oracles (pycocotools mAP and mask IoU in test_agreement_lvis.py, kalphacv values in
test_agreement_core.py); here small batches must reproduce it. Data: random crowded images with
three annotators (two simulated from the first: jitter, misses, extras, class swaps), including
empty images and an uncovered annotator, so clusters, alpha units and mAP detections fall in
every batch and at batch edges.
"""
import fiftyone as fo
import numpy as np
import pandas as pd
import pytest

from iou_audit.audits.agreement import audit_agreement
from iou_audit.simulate.annotators import AnnotatorNoise, add_simulated_annotators

B, C = "sim_annotator_b", "sim_annotator_c"


@pytest.fixture
def crowded(dataset):
    rng = np.random.default_rng(7)
    samples = []
    for i in range(45):
        n = 0 if i % 11 == 3 else int(rng.integers(1, 12))
        xy = rng.uniform(0, 0.7, (n, 2))
        wh = rng.uniform(0.05, 0.3, (n, 2))
        dets = [fo.Detection(label=str(rng.choice(["RBC", "WBC", "Platelets"])), bounding_box=[*p, *s])
                for p, s in zip(xy.tolist(), wh.tolist())]
        cov = None if i % 5 else ["ground_truth", B]  # every 5th image: annotator c did not label it
        samples.append(fo.Sample(filepath=f"/nonexistent/{i}.jpg", ground_truth=fo.Detections(detections=dets),
                                 covered_by=cov))
    dataset.add_samples(samples)
    add_simulated_annotators(dataset, noise=AnnotatorNoise(p_miss=0.15, p_swap=0.15, extra_rate=0.3), seed=5)
    return dataset


def _written(ds, key):
    out = {}
    for f in ("ground_truth", B, C):
        out[f] = (ds.values(f"{f}.detections.{key}_iou"), ds.values(f"{f}.detections.{key}_n_annotators"),
                  ds.values(f"{f}.detections.tags"))
    for col in ("f1", "mean_iou", "alpha"):
        out[col] = ds.values(f"{key}_{col}")
    return out


@pytest.mark.parametrize("iou_thresh", [0.5, 0.6])  # 0.6: the curve (from 0.5) re-matches inside every batch
def test_small_batches_equal_one_pass(crowded, iou_thresh):
    one = audit_agreement(crowded, ["ground_truth", B, C], iou_thresh=iou_thresh, audit_key="one", batch_size=1000,
                          consensus_field="fused_one", coverage_field="covered_by")
    many = audit_agreement(crowded, ["ground_truth", B, C], iou_thresh=iou_thresh, audit_key="many", batch_size=4,
                           consensus_field="fused_many", coverage_field="covered_by")
    assert len(one.findings) > 20 and set(one.findings.kind) >= {"missing_in_annotator", "extra_in_annotator",
                                                                 "class_conflict", "low_agreement"}
    pd.testing.assert_frame_equal(one.findings, many.findings)
    assert one.tables.keys() == many.tables.keys()
    for name in one.tables:
        pd.testing.assert_frame_equal(one.tables[name], many.tables[name], rtol=1e-12, atol=1e-12, obj=name)
    assert one.metrics.keys() == many.metrics.keys()
    for k, v in one.metrics.items():
        np.testing.assert_allclose(np.asarray(v, float), np.asarray(many.metrics[k], float), rtol=1e-12, err_msg=k) \
            if not isinstance(v, str) else (v == many.metrics[k]) or pytest.fail(k)
    w1, w2 = _written(crowded, "one"), _written(crowded, "many")
    for f in ("ground_truth", B, C):
        assert w1[f][0] == w2[f][0] and w1[f][1] == w2[f][1], f
        tags = lambda w, key: [sorted(t[len(key) + 1:] for t in ts or [] if t.startswith(key + ":"))  # noqa: E731
                               for ts in sum(w[f][2], [])]
        assert tags(w1, "one") == tags(w2, "many") and any(tags(w1, "one")), f
    assert w1["f1"] == w2["f1"] and w1["alpha"] == w2["alpha"]
    strip = lambda d: [[(x.label, x.bounding_box, x.confidence, x.members) for x in (s.detections if s else [])] for s in d]  # noqa: E731
    assert strip(crowded.values("fused_one")) == strip(crowded.values("fused_many"))


def test_annotator_attribute_batches_equal_one_pass(crowded):
    # One field, annotator as a label attribute; batches of 1 sample: annotators missing from a batch.
    merged = []
    for dets in zip(*(crowded.values(f) for f in ("ground_truth", B, C))):
        labels = []
        for name, d in zip(("ann_a", "ann_b", "ann_c"), dets):
            for x in (d.detections if d else []):
                labels.append(fo.Detection(label=x.label, bounding_box=x.bounding_box, annotator=name))
        merged.append(fo.Detections(detections=labels))
    crowded.set_values("merged", merged)
    one = audit_agreement(crowded, "merged", annotator_attr="annotator", audit_key="one", batch_size=1000)
    many = audit_agreement(crowded, "merged", annotator_attr="annotator", audit_key="many", batch_size=1)
    assert len(one.findings) > 20
    pd.testing.assert_frame_equal(one.findings, many.findings)
    for name in one.tables:
        pd.testing.assert_frame_equal(one.tables[name], many.tables[name], rtol=1e-12, atol=1e-12, obj=name)
    assert crowded.values("merged.detections.one_iou") == crowded.values("merged.detections.many_iou")

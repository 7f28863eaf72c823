"""The triage queue's combined suspicion on hand-made audits: every expected score follows from the
README's rule (naive-Bayes log-odds, annotator error rates by EM), computed here step by step with
plain floats, never from the code under test."""
import math

import fiftyone as fo
import pytest

from iou_audit.results import AuditResult, make_findings, save_audit
from iou_audit.review import triage

P = [0.05, 0.1, 0.02, 0.3, 0.08, 0.6, 0.04, 0.1, 0.2, 0.03, 0.07, 0.9]  # prior's suspicion per label
ANNOTATOR = ["ann1"] * 6 + ["ann2"] * 6
SMOOTHING = 20.0   # README: pseudo-labels at the base rate in each annotator's rate
W_PRIOR = 0.25     # README: the labels-only prior's weight w_s


def lo(p):
    return math.log(p / (1 - p))


def sig(x):
    return 1 / (1 + math.exp(-x))


@pytest.fixture
def ds():
    d = fo.Dataset()
    samples = []
    for s in range(3):
        dets = [fo.Detection(label="RBC", bounding_box=[0.1 + 0.2 * k, 0.1, 0.1, 0.1], annotator=ANNOTATOR[4 * s + k])
                for k in range(4)]
        samples.append(fo.Sample(filepath=f"/nonexistent/{s}.png", gt=fo.Detections(detections=dets)))
    d.add_samples(samples)
    ids = [i for v in d.values("gt.detections.id") for i in v]
    sids = [s for s, v in zip(d.values("id"), d.values("gt.detections.id")) for _ in v]
    # a labels-only prior scoring every label (findings for p >= 0.5, as the audit emits them)
    prior = AuditResult("label_prior", "hp", {"label_field": "gt"}, make_findings(
        [{"kind": "size_outlier", "sample_id": sids[k], "field": "gt", "label_id": ids[k], "label": "RBC",
          "score": P[k], "detail": "area z +4.0 in its class"} for k in range(12) if P[k] >= 0.5], audit="label_prior"))
    save_audit(d, prior, label_attributes={"gt": {"suspicion": dict(zip(ids, P))}})
    # a flagging audit: one duplicate at 0.9 on label 1
    save_audit(d, AuditResult("duplicates", "hd", {}, make_findings([
        {"kind": "duplicate", "sample_id": sids[1], "field": "gt", "label_id": ids[1], "other_field": "gt",
         "other_label_id": ids[0], "label": "RBC", "score": 0.9, "iou": 0.9, "detail": "RBC vs RBC: IoU 0.900 (boxes)"}],
        audit="duplicates")))
    yield d, ids
    d.delete()


def _evidence():
    base = sum(P) / len(P)  # the only scoring source: its mean is the base rate
    e = [W_PRIOR * (lo(p) - lo(base)) for p in P]
    e[1] += lo(0.9) - lo(base)  # the duplicate flag
    return base, e


def test_without_annotators_each_label_scores_its_naive_bayes_posterior(ds):
    ds, ids = ds
    base, e = _evidence()
    q = triage(ds, every_label=True, annotator_attr=None)
    assert len(q) == 12 and "annotator_error_rates" not in q.attrs
    got = dict(zip(q["label_id"], q["score"]))
    for lid, ev in zip(ids, e):
        assert got[lid] == pytest.approx(sig(lo(base) + ev), abs=1e-9)
    # with one scoring source and no annotator, an unflagged label's odds are the base odds times
    # the prior's likelihood ratio to the power w_s
    odds = base / (1 - base) * ((P[0] / (1 - P[0])) / (base / (1 - base))) ** W_PRIOR
    assert got[ids[0]] == pytest.approx(odds / (1 + odds), abs=1e-9)
    assert list(q["score"]) == sorted(q["score"], reverse=True)
    # without every_label: only flagged rows (the two prior findings and the duplicate)
    assert set(triage(ds, annotator_attr=None)["label_id"]) == {ids[1], ids[5], ids[11]}


def test_annotator_error_rates_are_the_em_fixed_point(ds):
    ds, ids = ds
    base, e = _evidence()
    rate = {"ann1": base, "ann2": base}
    for _ in range(500):  # the documented EM, by hand
        new = {}
        for a in rate:
            qs = [sig(lo(rate[a]) + ev) for ev, who in zip(e, ANNOTATOR) if who == a]
            new[a] = (sum(qs) + SMOOTHING * base) / (len(qs) + SMOOTHING)
        rate = new
    q = triage(ds, every_label=True)
    assert q.attrs["annotator_error_rates"] == pytest.approx(rate, abs=1e-7)
    got = dict(zip(q["label_id"], q["score"]))
    for lid, ev, who in zip(ids, e, ANNOTATOR):
        assert got[lid] == pytest.approx(sig(lo(rate[who]) + ev), abs=1e-6)
    # ann1's labels carry more evidence (the duplicate at 0.9 on top of 0.1, and 0.6, 0.3): less reliable
    assert rate["ann1"] > rate["ann2"]


def test_agreement_fields_are_annotators():
    d = fo.Dataset()
    try:
        d.add_samples([fo.Sample(filepath=f"/nonexistent/a{s}.png", **{
            f: fo.Detections(detections=[fo.Detection(label="RBC", bounding_box=[0.1 + 0.2 * k, 0.1, 0.1, 0.1])
                                         for k in range(3)]) for f in ("ann_a", "ann_b")}) for s in range(4)])
        a_ids = [i for v in d.values("ann_a.detections.id") for i in v]
        b_ids = [i for v in d.values("ann_b.detections.id") for i in v]
        sids = [s for s, v in zip(d.values("id"), d.values("ann_a.detections.id")) for _ in v]
        flags = {("ann_a", a_ids[0]): 0.8, ("ann_a", a_ids[4]): 0.6, ("ann_b", b_ids[2]): 0.3}
        rows = [{"kind": "low_agreement", "sample_id": sids[(a_ids if f == "ann_a" else b_ids).index(lid)],
                 "field": f, "label_id": lid, "label": "RBC", "score": s, "detail": "x"} for (f, lid), s in flags.items()]
        save_audit(d, AuditResult("agreement", "agr", {"label_fields": ["ann_a", "ann_b"], "annotator_attr": None},
                                  make_findings(rows, audit="agreement")))
        base = 0.1  # README: no scoring source
        # README: rates are estimated only from labels a scoring source scores (flags are one-sided
        # evidence); with none, every annotator keeps the base rate and a row scores its flag
        q = triage(d)
        assert not q.attrs.get("annotator_error_rates")
        got = dict(zip(q["label_id"], q["score"]))
        assert got[a_ids[0]] == pytest.approx(sig(lo(base) + lo(0.8) - lo(base)), abs=1e-9)
        assert got[b_ids[2]] == pytest.approx(0.3, abs=1e-9)
    finally:
        d.delete()


def test_two_models_are_two_scoring_sources(ds):
    ds, ids = ds
    q1 = [0.9, 0.2, 0.95, 0.5, 0.99, 0.3, 0.9, 0.8, 0.7, 0.95, 0.9, 0.1]   # each model's <key>_quality
    q2 = [0.8, 0.4, 0.9, 0.9, 0.95, 0.2, 0.85, 0.9, 0.6, 0.9, 0.95, 0.3]
    for key, q in (("m1", q1), ("m2", q2)):
        save_audit(ds, AuditResult("predictions", key, {"gt_field": "gt", "pred_field": "pred"}, make_findings()),
                   label_attributes={"gt": {"quality": dict(zip(ids, q))}})
    q = triage(ds, audit_keys=["m1", "m2"], every_label=True, annotator_attr=None)
    b1, b2 = (sum(1 - x for x in q) / len(q) for q in (q1, q2))   # each model's base rate: its mean 1 - quality
    base = (b1 + b2) / 2
    got = dict(zip(q["label_id"], q["score"]))
    for lid, x1, x2 in zip(ids, q1, q2):
        expected = sig(lo(base) + lo(1 - x1) - lo(b1) + lo(1 - x2) - lo(b2))
        assert got[lid] == pytest.approx(expected, abs=1e-9)

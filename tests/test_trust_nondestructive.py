"""Trust suite: audits and operators never change an original label (class, geometry, masks,
ids, tags, attributes), and after delete_audit the dataset is exactly what it was."""
import hashlib

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest
from bson import json_util

import iou_audit

OP = "@iou-audit/iou-audit/"
LABEL_FIELDS = {"gt": "detections", "ann": "detections", "pred": "detections", "poly": "polylines"}


@pytest.fixture(scope="module")
def ds(shared_data):
    rng = np.random.default_rng(3)
    images = sorted((shared_data / "bccd" / "JPEGImages").glob("*.jpg"))[:12]
    samples = []
    for i, p in enumerate(images):
        boxes = [[*rng.uniform(0, .6, 2), *rng.uniform(.05, .3, 2)] for _ in range(6)]
        boxes.append(list(boxes[0]))  # a duplicate
        def dets(jit, conf=None, masks=False):
            out = []
            for k, b in enumerate(boxes):
                b = [b[0] + jit * rng.normal(), b[1], b[2], b[3]]
                d = fo.Detection(label=["RBC", "WBC"][k % 2], bounding_box=b, tags=["orig_tag"], note=f"n{k}",
                                 **({"confidence": conf} if conf else {}))
                if masks:
                    d.mask = rng.random((int(b[3] * 480) or 1, int(b[2] * 640) or 1)) > 0.3
                out.append(d)
            return fo.Detections(detections=out)
        poly = fo.Polylines(polylines=[fo.Polyline(label="RBC", points=[[(b[0], b[1]), (b[0] + b[2], b[1]), (b[0], b[1] + b[3])]],
                                                   closed=True, filled=True, tags=["p"]) for b in boxes])
        samples.append(fo.Sample(filepath=str(p), split=["train", "val", "test"][i % 3], tags=["s_tag"],
                                 gt=dets(0, masks=True), ann=dets(0.01), pred=dets(0.02, conf=0.8), poly=poly))
    samples.append(fo.Sample(filepath=str(images[0]), split="test", gt=dets(0), ann=None, pred=None, poly=None))  # copy
    d = fo.Dataset()
    d.add_samples(samples)
    d.compute_metadata()
    yield d
    d.delete()


def _strip(doc, keys):
    return {k: v for k, v in doc.items() if not any(k.startswith(f"{key}_") for key in keys)}


def label_hash(d, keys=()):
    """Hash of every original label: everything but the audits' own ``<key>_`` attributes and
    ``<key>:`` tags."""
    h = hashlib.sha256()
    for doc in d._sample_collection.find({}, sort=[("_id", 1)]):
        for field, lst in LABEL_FIELDS.items():
            for label in ((doc.get(field) or {}).get(lst) or []):
                label = _strip(label, keys)
                label["tags"] = [t for t in label.get("tags", []) if not any(t.startswith(f"{k}:") for k in keys)]
                h.update(json_util.dumps(label, sort_keys=True).encode())
        rest = _strip({k: v for k, v in doc.items() if k not in LABEL_FIELDS and k not in ("last_modified_at", "cons")}, keys)
        h.update(json_util.dumps(rest, sort_keys=True).encode())
    return h.hexdigest()


def full_state(d):
    d.reload()
    docs = [{k: v for k, v in doc.items() if k != "last_modified_at"}
            for doc in d._sample_collection.find({}, sort=[("_id", 1)])]
    return (json_util.dumps(docs, sort_keys=True), sorted(d.get_field_schema(flat=True)), d.list_runs(),
            d.list_saved_views(), d.count_label_tags(), d.count_sample_tags())


RUNS = [
    ("dup_gt", lambda d: iou_audit.audit_duplicates(d, "gt", audit_key="dup_gt")),
    ("dup_poly", lambda d: iou_audit.audit_duplicates(d, "poly", audit_key="dup_poly")),
    ("agr", lambda d: iou_audit.audit_agreement(d, ["gt", "ann", "pred"], audit_key="agr", consensus_field="cons")),
    ("pred", lambda d: iou_audit.audit_predictions(d, "pred", "gt", audit_key="pred")),
    ("pred_segm", lambda d: iou_audit.audit_predictions(d, "gt", "gt", audit_key="pred_segm", iou_type="segm")),
    ("spl", lambda d: iou_audit.audit_splits(d, split_field="split", label_field="gt", audit_key="spl")),
    ("op_dup", lambda d: foo.execute_operator(OP + "audit_duplicates", ctx=dict(dataset=d, params={"label_field": "gt", "audit_key": "op_dup"}))),
    ("op_agr", lambda d: foo.execute_operator(OP + "audit_agreement", ctx=dict(dataset=d, params={"label_fields": ["gt", "ann"], "audit_key": "op_agr"}))),
    ("op_pred", lambda d: foo.execute_operator(OP + "audit_predictions", ctx=dict(dataset=d, params={"pred_field": "pred", "gt_field": "gt", "audit_key": "op_pred"}))),
    ("op_spl", lambda d: foo.execute_operator(OP + "audit_splits", ctx=dict(dataset=d, params={"split_source": "field", "split_field": "split", "audit_key": "op_spl"}))),
]


def test_every_audit_and_operator_leaves_original_labels_untouched(ds):
    original_state = full_state(ds)
    original = label_hash(ds)
    done = []
    for key, run in RUNS:
        run(ds)
        done.append(key)
        ds.reload()
        assert label_hash(ds, done) == original, f"{key} changed an original label"
        run(ds)  # re-running replaces (the consensus field too: the run owns it), still non-destructive
        assert label_hash(ds, done) == original, f"re-running {key} changed an original label"
    assert sorted(iou_audit.list_audits(ds)) == sorted(done)
    assert ds.count("cons.detections") > 0  # the consensus field the user asked for
    for key in done:
        iou_audit.delete_audit(ds, key)
    assert not ds.has_field("cons")  # the consensus field is in the run's manifest: deleted with it
    assert full_state(ds) == original_state

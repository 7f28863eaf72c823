"""Trust suite, the rest of issue 10's bad-input list: broken masks where masks are compared
(every mask-reading audit), polygons and other wrong label types in every audit, 5,000 labels in
one sample, existing fields with unicode names, an empty view, and the same inputs through the
operators and the CLI. Each is a finding or a clear error naming the field/sample/value, with the
labels byte-identical afterwards (hashed, as in test_trust_nondestructive)."""
import hashlib
import traceback

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest
from bson import json_util

import iou_audit
from iou_audit.cli import main

CLEAR = (ValueError, TypeError, NotImplementedError)
OP = "@iou-audit/iou-audit/"
RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def images(shared_data):
    return [str(p) for p in sorted((shared_data / "bccd" / "JPEGImages").glob("*.jpg"))[:4]]


def _dets(boxes, labels=None, conf=None, masks=False):
    labels = labels or ["a"] * len(boxes)
    out = []
    for lab, b in zip(labels, boxes):
        d = fo.Detection(label=lab, bounding_box=list(b), **({"confidence": conf} if conf else {}))
        if masks:
            d.mask = np.ones((max(int(b[3] * 480), 1), max(int(b[2] * 640), 1)), bool)
        out.append(d)
    return fo.Detections(detections=out)


BOXES = [[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2], [0.11, 0.1, 0.2, 0.2]]


@pytest.fixture
def ds(images):
    d = fo.Dataset()
    d.add_samples([fo.Sample(filepath=p, split=["train", "val", "test", "val"][i],
                             metadata=fo.ImageMetadata(width=640, height=480),
                             gt=_dets(BOXES, ["a", "b", "a"], masks=True), ann=_dets(BOXES, ["a", "b", "a"], masks=True),
                             pred=_dets(BOXES, ["a", "b", "a"], conf=0.9, masks=True),
                             cls=fo.Classification(label="x"),
                             kp=fo.Keypoints(keypoints=[fo.Keypoint(label="a", points=[(0.1, 0.1), (0.2, 0.2)])]),
                             seg=fo.Segmentation(mask=np.zeros((4, 4), np.uint8)),
                             poly=fo.Polylines(polylines=[fo.Polyline(label="a", points=[[(0.1, 0.1), (0.3, 0.1), (0.2, 0.3)]],
                                                                      closed=True, filled=True)]))
                   for i, p in enumerate(images)])
    yield d
    if not d.deleted:
        d.delete()


def label_hash(d, skip=()):
    """Hash of every sample document but the fields audits add (``k_*``/``k2_*``) and the labels'
    ``k_*`` attributes and ``k:`` tags: what must never change."""
    h = hashlib.sha256()
    for doc in d._root_dataset._sample_collection.find({}, sort=[("_id", 1)]):
        doc = {k: v for k, v in doc.items() if k not in ("last_modified_at", *skip) and not k.startswith(("k_", "k2_"))}
        for v in doc.values():
            for lst in ("detections", "polylines", "keypoints"):
                for label in (v.get(lst) or []) if isinstance(v, dict) else []:
                    for a in [a for a in label if a.startswith(("k_", "k2_"))]:
                        del label[a]
                    label["tags"] = [t for t in label.get("tags", []) if not t.startswith(("k:", "k2:"))]
        h.update(json_util.dumps(doc, sort_keys=True).encode())
    return h.hexdigest()


def snapshot(d, skip=()):
    d = d._root_dataset
    d.reload()
    return label_hash(d, skip), sorted(d.get_field_schema(flat=True)), d.count_label_tags(), sorted(d.list_runs()), sorted(d.list_saved_views())


def checked(d, fn, names=()):
    """Run ``fn(d)``: a clear exception (naming one of ``names``) leaves ``d`` unchanged, success
    leaves every original label unchanged; anything low-level fails the test."""
    before = snapshot(d)
    try:
        r = fn(d)
    except CLEAR as e:
        assert snapshot(d) == before, f"partial write before {e!r}"
        if names:
            assert any(str(n) in str(e) for n in names), f"{e} does not name any of {names}"
        return e
    assert snapshot(d)[0] == before[0], "an original label changed"
    return r


MASK_AUDITS = {
    "duplicates": lambda d: iou_audit.audit_duplicates(d, "gt", geometry="masks", audit_key="k"),
    "agreement": lambda d: iou_audit.audit_agreement(d, ["gt", "ann"], geometry="masks", audit_key="k"),
    "predictions_gt": lambda d: iou_audit.audit_predictions(d, "pred", "gt", geometry="masks", audit_key="k"),
    "predictions_pred": lambda d: iou_audit.audit_predictions(d, "gt", "pred", geometry="masks", audit_key="k"),
}
MASKS = {  # set on the first label of every sample's gt
    "does_not_fit": np.ones((300, 2), bool),
    "float": RNG.random((96, 128)).astype(np.float32),
    "float_nan": np.full((96, 128), np.nan, np.float32),
    "int64_values": RNG.integers(-5, 300, (96, 128)),
    "uint8_3d": np.ones((96, 128, 3), np.uint8),
    "one_d": np.ones(128, bool),
    "empty": np.zeros((0, 0), bool),
    "huge": np.ones((3000, 3000), bool),
    "missing": None,
}


@pytest.mark.parametrize("audit", MASK_AUDITS)
@pytest.mark.parametrize("case", MASKS)
def test_broken_masks_where_masks_are_compared(ds, case, audit):
    if case == "huge" and audit != "agreement":
        pytest.skip("one audit on a 9 MB mask is enough")
    for s in ds:
        s.gt.detections[0].mask = MASKS[case]
        s.save()
    r = checked(ds, MASK_AUDITS[audit], names=["gt", "mask", *ds.values("id")])
    if isinstance(r, Exception):  # refused only what cannot be read as a 2-D mask, naming the label
        assert case in ("one_d", "uint8_3d"), r
        assert "field 'gt'" in str(r) and ds.first().gt.detections[0].id in str(r) or ds.values("id")[0] in str(r), r
    else:
        iou_audit.delete_audit(ds, "k")


WRONG_TYPES = ["cls", "kp", "seg", "split", "metadata", "filepath"]


@pytest.mark.parametrize("field", WRONG_TYPES + ["poly"])
def test_wrong_label_types_in_every_audit(ds, field):
    calls = {
        "duplicates": lambda d: iou_audit.audit_duplicates(d, field, audit_key="k"),
        "agreement": lambda d: iou_audit.audit_agreement(d, [field, "gt"], audit_key="k"),
        "agreement_same": lambda d: iou_audit.audit_agreement(d, [field, field], audit_key="k"),
        "predictions_pred": lambda d: iou_audit.audit_predictions(d, field, "gt", audit_key="k"),
        "predictions_gt": lambda d: iou_audit.audit_predictions(d, "pred", field, audit_key="k"),
        "splits": lambda d: iou_audit.audit_splits(d, split_field="split", label_field=field, audit_key="k"),
    }
    for name, call in calls.items():
        r = checked(ds, call, names=[field])
        if field == "poly" and name == "duplicates":
            assert not isinstance(r, Exception), r  # Polylines are a supported duplicates geometry
        elif not isinstance(r, Exception):
            assert field == "poly", (name, field)
        if not isinstance(r, Exception):
            iou_audit.delete_audit(ds, "k")


@pytest.mark.parametrize("audit", ["duplicates", "agreement", "predictions", "splits"])
def test_5000_labels_in_one_sample(ds, audit):
    xy = RNG.uniform(0, 0.95, (5000, 2))
    many = _dets(np.c_[xy, np.full((5000, 2), 0.04)])
    s = ds.first()
    s["gt"], s["ann"] = many, _dets(np.c_[xy + 0.001, np.full((5000, 2), 0.04)])
    s["pred"] = _dets(np.c_[xy, np.full((5000, 2), 0.04)], conf=0.5)
    s.save()
    calls = {
        "duplicates": lambda d: iou_audit.audit_duplicates(d, "gt", audit_key="k"),
        "agreement": lambda d: iou_audit.audit_agreement(d, ["gt", "ann"], audit_key="k"),
        "predictions": lambda d: iou_audit.audit_predictions(d, "pred", "gt", audit_key="k"),
        "splits": lambda d: iou_audit.audit_splits(d, split_field="split", label_field="gt", audit_key="k"),
    }
    r = checked(ds, calls[audit])
    assert not isinstance(r, Exception), r
    if audit == "agreement":  # every label matched its shifted copy
        sid = ds.first().id
        assert not (r.findings["sample_id"].eq(sid) & r.findings["kind"].isin(["missing_in_annotator", "extra_in_annotator"])).any()
    if audit == "predictions":
        assert r.metrics["AP@0.5"] == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["标签", "é" * 200, "x" * 1000])
def test_existing_fields_with_odd_names(ds, name):
    """Fields FiftyOne accepts under unusual names are audited like any other (or refused by
    FiftyOne itself when it creates the field, never half-way through an audit)."""
    try:
        ds.clone_sample_field("gt", name)
    except Exception as e:  # FiftyOne's own refusal of the name: nothing of ours involved
        pytest.skip(f"FiftyOne refuses the field name: {e}")
    for call in (lambda d: iou_audit.audit_duplicates(d, name, audit_key="k"),
                 lambda d: iou_audit.audit_agreement(d, [name, "ann"], audit_key="k"),
                 lambda d: iou_audit.audit_predictions(d, "pred", name, audit_key="k"),
                 lambda d: iou_audit.audit_splits(d, split_field="split", label_field=name, audit_key="k")):
        r = checked(ds, call)
        assert not isinstance(r, Exception), r
        assert set(r.findings["field"]) - {""} <= {name, "ann", "pred"}
        iou_audit.delete_audit(ds, "k")


EMPTY_AUDITS = {
    "duplicates": lambda d: iou_audit.audit_duplicates(d, "gt", audit_key="k"),
    "agreement": lambda d: iou_audit.audit_agreement(d, ["gt", "ann"], audit_key="k"),
    "predictions": lambda d: iou_audit.audit_predictions(d, "pred", "gt", audit_key="k"),
    "splits": lambda d: iou_audit.audit_splits(d, split_field="split", label_field="gt", audit_key="k"),
}


@pytest.mark.parametrize("audit", EMPTY_AUDITS)
@pytest.mark.parametrize("which", ["limit0", "no_match", "labels_filtered_out"])
def test_empty_view_is_an_empty_result_or_a_clear_error(ds, audit, which):
    view = {"limit0": ds.limit(0), "no_match": ds.match_tags("nothing"),
            "labels_filtered_out": ds.filter_labels("gt", fo.ViewField("label") == "zzz", only_matches=False)
            .filter_labels("ann", fo.ViewField("label") == "zzz", only_matches=False)
            .filter_labels("pred", fo.ViewField("label") == "zzz", only_matches=False)}[which]
    r = checked(view, EMPTY_AUDITS[audit], names=["view", "sample", "empty"])
    if isinstance(r, Exception):
        assert audit == "agreement" and which != "labels_filtered_out" and "the view is empty" in str(r), r
    else:
        assert len(r.findings[~r.findings["kind"].isin(["possible_missing", "unreadable_image"])]) == 0 or which == "labels_filtered_out"
        iou_audit.delete_audit(ds, "k")


# --- operators: the same inputs through execute_operator
def _op(d, name, params, view=None, skip=()):
    before = snapshot(d, skip)
    try:
        r = foo.execute_operator(OP + name, ctx=dict(dataset=d, view=view, params=params))
        assert snapshot(d, skip)[0] == before[0], f"{name} changed an original label"
        return r
    except Exception as e:  # ExecutionError carries the operator's traceback text
        text = "".join(traceback.format_exception(e))
        last = [ln for ln in text.strip().splitlines() if ln and not ln.startswith(" ")][-1]
        assert last.split(":")[0].rsplit(".", 1)[-1] in {"ValueError", "TypeError", "NotImplementedError",
                                                          "ExecutionError"}, last
        assert "KeyError" not in text and "IndexError" not in text and "pymongo.errors" not in text, text[-2000:]
        assert snapshot(d, skip) == before
        return e


OP_WRONG_TYPES = [
    ("audit_duplicates", {"label_field": "cls"}), ("audit_duplicates", {"label_field": "split"}),
    ("audit_agreement", {"label_fields": ["gt", "kp"]}), ("audit_agreement", {"label_fields": ["gt", "gt"]}),
    ("audit_predictions", {"pred_field": "seg", "gt_field": "gt"}),
    ("audit_predictions", {"pred_field": "pred", "gt_field": "poly"}),
    ("audit_splits", {"split_source": "field", "split_field": "split", "label_field": "cls"}),
    ("audit_splits", {"split_source": "field", "split_field": "gt"}),
    ("audit_duplicates", {"label_field": "$gt"}), ("audit_duplicates", {"label_field": "gt.detections"}),
    ("audit_agreement", {"label_fields": ["gt", "标签"]}), ("audit_predictions", {"pred_field": "f" * 500, "gt_field": "gt"}),
    ("audit_splits", {"split_source": "field", "split_field": "$split"}),
    ("audit_agreement", {"label_fields": ["gt", "ann"], "consensus_field": "a.b"}),
]


@pytest.mark.parametrize("name,params", OP_WRONG_TYPES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OP_WRONG_TYPES)])
def test_operators_refuse_wrong_label_types_and_field_names(ds, name, params):
    r = _op(ds, name, {**params, "audit_key": "k"})
    assert isinstance(r, Exception), r.result


OP_RUNS = {
    "audit_duplicates": {"label_field": "gt"}, "audit_agreement": {"label_fields": ["gt", "ann"]},
    "audit_predictions": {"pred_field": "pred", "gt_field": "gt"},
    "audit_splits": {"split_source": "field", "split_field": "split", "label_field": "gt"},
}
DATA_CASES = {
    "nan_and_negative_boxes": lambda s: (setattr(s.gt.detections[0], "bounding_box", [np.nan, 0.1, 0.2, 0.2]),
                                         setattr(s.gt.detections[1], "bounding_box", [0.1, 0.1, -0.2, 0.2])),
    "none_field": lambda s: s.__setitem__("gt", None),
    "empty_list": lambda s: s.__setitem__("gt", fo.Detections()),
    "no_class": lambda s: [setattr(d, "label", None) for d in s.gt.detections],
    "odd_class": lambda s: [setattr(d, "label", "血 $x.y" + "é" * 300) for d in s.gt.detections],
    "no_metadata": lambda s: setattr(s, "metadata", None),
    "single_split": lambda s: s.__setitem__("split", "train"),
    "split_none": lambda s: s.__setitem__("split", None),
}


@pytest.mark.parametrize("op", OP_RUNS)
@pytest.mark.parametrize("case", DATA_CASES)
def test_operators_on_odd_data(ds, op, case):
    for s in ds:
        DATA_CASES[case](s)
        s.save()
    # missing image sizes are computed from the (real) files, as the readers document: the only
    # change outside the audit's own fields, and it must be the files' true sizes
    skip = ("metadata",) if case == "no_metadata" else ()
    r = _op(ds, op, {**OP_RUNS[op], "audit_key": "k"}, skip=skip)
    assert not isinstance(r, Exception), r
    if skip and op != "audit_splits":
        from PIL import Image
        for s in ds.select_fields():
            assert (s.metadata.width, s.metadata.height) == Image.open(s.filepath).size
    _op(ds, "delete_audit", {"audit_key": "k"})


@pytest.mark.parametrize("op", OP_RUNS)
def test_operators_on_an_empty_view(ds, op):
    r = _op(ds, op, {**OP_RUNS[op], "audit_key": "k", "view_target": "CURRENT_VIEW"}, view=ds.limit(0))
    if not isinstance(r, Exception):
        assert sum(v for k, v in r.result.items() if k.startswith("n_") and isinstance(v, int)) == 0, r.result
        _op(ds, "delete_audit", {"audit_key": "k"})


# --- CLI
CLI_WRONG = [
    ["duplicates", "--field", "cls"], ["duplicates", "--field", "split"], ["agreement", "--fields", "gt", "kp"],
    ["agreement", "--fields", "gt", "gt"], ["predictions", "--pred-field", "seg", "--gt-field", "gt"],
    ["predictions", "--pred-field", "pred", "--gt-field", "poly"],
    ["splits", "--split-field", "split", "--label-field", "cls"], ["splits", "--split-field", "gt"],
    ["duplicates", "--field", "gt", "--audit-key", "é" * 3 + "$"], ["list"], ["export", "--audit-key", "k", "x.txt"],
    ["duplicates", "--field", "$gt"], ["duplicates", "--field", "gt.detections"], ["agreement", "--fields", "gt", "标签"],
    ["predictions", "--pred-field", "f" * 500, "--gt-field", "gt"], ["splits", "--split-field", "$split"],
    ["agreement", "--fields", "gt", "ann", "--consensus-field", "a.b"],
]


@pytest.mark.parametrize("args", CLI_WRONG, ids=["-".join(a[:2]) + str(i) for i, a in enumerate(CLI_WRONG)])
def test_cli_refuses_wrong_label_types_and_field_names(ds, args, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = snapshot(ds)
    rc = main([args[0], "-d", ds.name, *args[1:]])
    out, err = capsys.readouterr()
    if args == ["list"]:
        assert rc == 0 and "(none)" in out
        return
    assert rc != 0 and "Traceback" not in out + err and err.strip(), (rc, out, err)
    assert snapshot(ds) == before


@pytest.mark.parametrize("case", ["nan_and_negative_boxes", "empty_list", "no_class", "single_split"])
def test_cli_on_odd_data(ds, case, capsys):
    for s in ds:
        DATA_CASES[case](s)
        s.save()
    for args in (["duplicates", "--field", "gt"], ["agreement", "--fields", "gt", "ann"],
                 ["predictions", "--pred-field", "pred", "--gt-field", "gt"],
                 ["splits", "--split-field", "split", "--label-field", "gt"]):
        rc = main([args[0], "-d", ds.name, *args[1:], "--audit-key", "k"])
        out, err = capsys.readouterr()
        assert rc == 0 and "Traceback" not in out + err, (args, rc, err)
        iou_audit.delete_audit(ds, "k")


def test_cli_on_an_empty_dataset(capsys):
    d = fo.Dataset()
    d.add_sample_field("gt", fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    try:
        rc = main(["duplicates", "-d", d.name, "--field", "gt", "--audit-key", "k"])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err and (rc == 0 or err.strip()), (rc, out, err)
    finally:
        d.delete()


@pytest.mark.parametrize("where", ["missing_dir", "is_a_dir", "no_permission_dir"])
def test_cli_export_to_an_unwritable_path_is_a_clear_error(ds, tmp_path, capsys, where):
    iou_audit.audit_duplicates(ds, "gt", audit_key="k")
    target = {"missing_dir": tmp_path / "nope" / "out.csv", "is_a_dir": tmp_path,
              "no_permission_dir": tmp_path / "ro" / "out.csv"}[where]
    if where == "no_permission_dir":
        import os
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere")
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o500)
    if where == "is_a_dir":
        args = ["export", "-d", ds.name, "--audit-key", "k", str(target), "--format", "csv"]
    else:
        args = ["export", "-d", ds.name, "--audit-key", "k", str(target)]
    rc = main(args)
    out, err = capsys.readouterr()
    assert rc != 0 and "Traceback" not in out + err and str(target) in err, (rc, out, err)
    assert not target.is_file()


def test_no_operator_writes_files():
    """Export paths outside a chosen directory cannot happen through the plugin: no operator takes
    a path or opens a file (files are written only by the CLI's ``export``, to the path the user
    names)."""
    import pathlib
    import re

    plugin = pathlib.Path(__file__).resolve().parents[1] / "plugin"
    for src in plugin.glob("*.py"):
        text = src.read_text()
        assert not re.search(r"\bopen\(|\.to_(csv|json|parquet)\(|write_(text|bytes)\(|shutil\.", text), src.name


@pytest.mark.parametrize("dtype", ["float_fractions", "float_0_2", "int64", "bool_not_fitting"])
def test_consensus_masks_read_masks_as_fiftyone_renders_them(dtype):
    """Majority masks (agreement consensus) equal the per-pixel majority of FiftyOne's own
    ``Detection.to_segmentation`` renders, whatever the mask's dtype or shape (float fractions
    render as 0, as in the IoU kernels)."""
    from iou_audit.audits.agreement.consensus import majority_mask

    w, h = 40, 30
    rng = np.random.default_rng(5)
    masks, boxes, renders = [], [], []
    for k in range(3):
        x0, y0 = int(rng.integers(0, 10)), int(rng.integers(0, 8))
        x1, y1 = x0 + int(rng.integers(15, 28)), y0 + int(rng.integers(12, 20))
        shape = (y1 - y0, x1 - x0) if dtype != "bool_not_fitting" else (7, 9)
        m = {"float_fractions": lambda: rng.random(shape), "float_0_2": lambda: rng.random(shape) * 2,
             "int64": lambda: rng.integers(0, 3, shape), "bool_not_fitting": lambda: rng.random(shape) > 0.4}[dtype]()
        box = [x0 / w, y0 / h, x1 / w, y1 / h]
        masks.append(m)
        boxes.append(box)
        det = fo.Detection(mask=m, bounding_box=[box[0], box[1], box[2] - box[0], box[3] - box[1]])
        renders.append(det.to_segmentation(frame_size=(w, h)).mask != 0)
    expected = 2 * np.sum(renders, axis=0) >= len(renders)
    got = majority_mask(masks, np.array(boxes), (w, h))
    full = np.zeros((h, w), bool)
    if got is not None:
        m, (bx0, by0, bx1, by1) = got
        full[round(by0 * h):round(by1 * h), round(bx0 * w):round(bx1 * w)] = m
    assert (full == expected).all(), (full.sum(), expected.sum())

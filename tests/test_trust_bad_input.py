"""Trust suite: bad input to every audit, operator and CLI command gives a clear error (naming the
field, sample or value) with nothing written, or a finding; never a low-level exception."""
import traceback

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest
from bson import ObjectId

import iou_audit
from iou_audit.cli import main

CLEAR = (ValueError, TypeError, NotImplementedError)
CLEAR_NAMES = {c.__name__ for c in CLEAR}
OP = "@iou-audit/iou-audit/"


@pytest.fixture(scope="module")
def images(shared_data):
    return [str(p) for p in sorted((shared_data / "bccd" / "JPEGImages").glob("*.jpg"))[:4]]


def _dets(boxes, labels=None, conf=None):
    labels = labels or ["a"] * len(boxes)
    return fo.Detections(detections=[fo.Detection(label=l, bounding_box=list(b), **({"confidence": conf} if conf else {}))
                                     for l, b in zip(labels, boxes)])


@pytest.fixture
def ds(images):
    d = fo.Dataset()
    boxes = [[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]]
    d.add_samples([fo.Sample(filepath=p, split=["train", "val", "test", "val"][i], metadata=fo.ImageMetadata(width=640, height=480),
                             gt=_dets(boxes, ["a", "b"]), ann=_dets(boxes, ["a", "b"]),
                             pred=_dets(boxes, ["a", "b"], conf=0.9)) for i, p in enumerate(images)])
    yield d
    if not d.deleted:
        d.delete()


def snapshot(d):
    d = d._root_dataset
    d.reload()
    return (sorted(d.get_field_schema(flat=True)), d.count_label_tags(), sorted(d.list_runs()),
            sorted(d.list_saved_views()), d.count_values("gt.detections.label"))


AUDITS = {
    "duplicates": lambda d, key="k": iou_audit.audit_duplicates(d, "gt", audit_key=key),
    "agreement": lambda d, key="k": iou_audit.audit_agreement(d, ["gt", "ann"], audit_key=key),
    "predictions": lambda d, key="k": iou_audit.audit_predictions(d, "pred", "gt", audit_key=key),
    "predictions_as_pred": lambda d, key="k": iou_audit.audit_predictions(d, "gt", "ann", audit_key=key),
    "splits": lambda d, key="k": iou_audit.audit_splits(d, split_field="split", label_field="gt", audit_key=key),
}


def checked(d, fn, names=()):
    """Run ``fn(d)``: a clear exception (naming one of ``names``) leaves ``d`` unchanged; anything
    else low-level fails the test. Returns the result or the exception."""
    before = snapshot(d)
    try:
        return fn(d)
    except CLEAR as e:
        assert snapshot(d) == before, f"partial write before {e!r}"
        if names:
            assert any(str(n) in str(e) for n in names), f"{e} does not name any of {names}"
        return e


def _raw(d, path, value, which=0):
    sid = d.values("id")[which]
    d._sample_collection.update_one({"_id": ObjectId(sid)}, {"$set": {path: value}})
    return sid


# --- malformed geometry: findings (duplicates reports degenerate/out-of-bounds boxes), never a crash
BOXES = {
    "nan": [np.nan, 0.1, 0.2, 0.2], "inf": [np.inf, 0.1, 0.2, 0.2], "negative": [0.1, 0.1, -0.2, 0.2],
    "zero_size": [0.1, 0.1, 0.0, 0.0], "out_of_range": [1.5, 1.5, 0.2, 0.2], "len3": [0.1, 0.1, 0.2],
    "len5": [0.1, 0.1, 0.2, 0.2, 0.3], "none": None, "strings": ["a", "b", "c", "d"], "object": {"x": 1},
}
KIND = {"out_of_range": "out_of_bounds"}


@pytest.mark.parametrize("audit", AUDITS)
@pytest.mark.parametrize("case", BOXES)
def test_bad_boxes(ds, case, audit):
    _raw(ds, "gt.detections.0.bounding_box", BOXES[case])
    r = checked(ds, AUDITS[audit])
    assert not isinstance(r, Exception), r
    if audit == "duplicates":
        assert KIND.get(case, "degenerate_box") in set(r.findings["kind"])
    iou_audit.delete_audit(ds, "k")


STRUCTURE = {  # (path, value): the read must refuse, naming the sample
    "list_is_a_string": ("gt.detections", "oops"),
    "element_not_a_label": ("gt.detections.0", 5),
    "field_not_a_document": ("gt", 7),
    "confidence_is_text": ("pred.detections.0.confidence", "high"),
}


@pytest.mark.parametrize("audit", AUDITS)
@pytest.mark.parametrize("case", STRUCTURE)
def test_malformed_label_documents(ds, case, audit):
    sid = _raw(ds, *STRUCTURE[case])
    r = checked(ds, AUDITS[audit], names=[sid])
    uses = {"confidence_is_text": ("predictions",)}.get(case)
    if uses is None or audit in uses:
        assert isinstance(r, ValueError), r


@pytest.mark.parametrize("audit", AUDITS)
def test_duplicate_label_ids(ds, audit):
    s = ds.first()
    s.gt.detections[1]._id = s.gt.detections[0]._id
    s.save()
    r = checked(ds, AUDITS[audit], names=[s.gt.detections[0].id])
    assert isinstance(r, ValueError) and "unique" in str(r)


def _mutate(ds, fn):
    for s in ds:
        fn(s)
        s.save()


LABEL_CASES = {
    "none_field": lambda s: s.__setitem__("gt", None),
    "empty_list": lambda s: s.__setitem__("gt", fo.Detections()),
    "no_class": lambda s: [setattr(d, "label", None) for d in s.gt.detections],
    "unicode_dollar_dot_long_class": lambda s: [setattr(d, "label", "血球 $x.y " + "é" * 400) for d in s.gt.detections],
    "mask_does_not_fit": lambda s: setattr(s.gt.detections[0], "mask", np.ones((300, 2), bool)),
    "mask_float_dtype": lambda s: setattr(s.gt.detections[0], "mask", np.random.default_rng(0).random((96, 128)).astype(np.float32)),
    "mask_uint8_3d": lambda s: setattr(s.gt.detections[0], "mask", np.ones((96, 128, 3), np.uint8)),
    "mask_huge": lambda s: setattr(s.gt.detections[0], "mask", np.ones((3000, 3000), bool)),
    "mask_empty": lambda s: setattr(s.gt.detections[0], "mask", np.zeros((0, 0), bool)),
    "no_metadata": lambda s: setattr(s, "metadata", None),
    "3000_labels": lambda s: s.__setitem__("gt", _dets(np.c_[np.random.default_rng(1).uniform(0, .9, (3000, 2)),
                                                             np.full((3000, 2), 0.05)])),
}


@pytest.mark.parametrize("audit", AUDITS)
@pytest.mark.parametrize("case", LABEL_CASES)
def test_odd_but_valid_labels(ds, case, audit):
    if case == "mask_huge" and audit not in ("duplicates", "agreement"):
        pytest.skip("one mask-reading audit pair is enough for a 9 MB mask")
    _mutate(ds, LABEL_CASES[case])
    r = checked(ds, AUDITS[audit])
    assert not isinstance(r, Exception), r
    iou_audit.delete_audit(ds, "k")


def test_masks_without_image_size_name_the_sample(ds):
    _mutate(ds, lambda s: (setattr(s, "metadata", None), setattr(s, "filepath", "/nonexistent/" + s.id + ".jpg"),
                           setattr(s.gt.detections[0], "mask", np.ones((5, 5), bool)),
                           s.gt.detections.append(fo.Detection(label="a", bounding_box=[0.1, 0.1, 0.2, 0.2],
                                                               mask=np.ones((5, 5), bool)))))
    r = checked(ds, AUDITS["duplicates"], names=ds.values("id"))
    assert isinstance(r, ValueError) and "metadata" in str(r)


def test_polygons_self_intersecting_and_degenerate(ds):
    bowtie = [[(0.1, 0.1), (0.3, 0.3), (0.3, 0.1), (0.1, 0.3)]]
    line = [[(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)]]
    point = [[(0.5, 0.5)]]
    two = [[(0.5, 0.5), (0.6, 0.6)]]
    for s in ds:
        s["poly"] = fo.Polylines(polylines=[fo.Polyline(label="a", points=p, filled=True, closed=True)
                                            for p in (bowtie, bowtie, line, point, two, [])])
        s["poly2"] = fo.Polylines(polylines=[fo.Polyline(label="a", points=bowtie, filled=True, closed=True)])
        s.save()
    r = checked(ds, lambda d: iou_audit.audit_duplicates(d, "poly", audit_key="p"))
    assert "duplicate" in set(r.findings["kind"])  # the two bowties
    assert "degenerate_box" in set(r.findings["kind"])  # the empty polyline has no extent
    r = checked(ds, lambda d: iou_audit.audit_agreement(d, ["poly", "poly2"], audit_key="p2"))
    assert not isinstance(r, Exception), r


@pytest.mark.parametrize("audit", AUDITS)
def test_empty_view(ds, audit):
    r = checked(ds.limit(0), AUDITS[audit])
    assert isinstance(r, Exception) or len(r.findings) == 0


WRONG_FIELDS = {
    "missing": "nope", "classification": "cls", "dollar": "$gt", "dotted": "gt.detections", "empty": "",
    "unicode": "标签", "long": "f" * 500, "sample_scalar": "split",
}


@pytest.mark.parametrize("case", WRONG_FIELDS)
def test_wrong_or_hostile_label_fields(ds, case):
    s = ds.first()
    s["cls"] = fo.Classification(label="x")
    s.save()
    name = WRONG_FIELDS[case]
    calls = [lambda d: iou_audit.audit_duplicates(d, name), lambda d: iou_audit.audit_agreement(d, [name, "gt"]),
             lambda d: iou_audit.audit_predictions(d, name, "gt"), lambda d: iou_audit.audit_predictions(d, "pred", name),
             lambda d: iou_audit.audit_splits(d, split_field="split", label_field=name or "x")]
    for call in calls:
        r = checked(ds, call, names=[name] if name else ["field"])
        assert isinstance(r, CLEAR), r
    # as a new consensus field: a fresh identifier is accepted, an existing or non-identifier name refused
    cons = "gt" if case == "missing" else name
    refuse = bool(cons) and (not cons.isidentifier() or ds.get_field(cons) is not None)
    r = checked(ds, lambda d: iou_audit.audit_agreement(d, ["gt", "ann"], consensus_field=cons, audit_key="c"),
                names=[cons] if cons else ["field"])
    assert isinstance(r, CLEAR) == refuse, r


KEYS = ["../x", "a.b", "$x", "", "x y", "k" * 500, None, 5, "a:b", "ü-x"]


@pytest.mark.parametrize("audit", AUDITS)
def test_hostile_audit_keys(ds, audit):
    for key in KEYS:
        r = checked(ds, lambda d: AUDITS[audit](d, key=key), names=["audit_key"])
        if isinstance(r, Exception):
            continue
        assert key == "k" * 500  # a valid identifier: accepted, and removable
        assert iou_audit.list_audits(ds) == [key]
        iou_audit.delete_audit(ds, key)
    for key in KEYS:
        for fn in (iou_audit.load_audit, iou_audit.delete_audit):
            with pytest.raises(ValueError):
                fn(ds, key)


def test_consensus_field_that_exists_writes_nothing(ds):
    r = checked(ds, lambda d: iou_audit.audit_agreement(d, ["gt", "ann"], consensus_field="pred", audit_key="c"),
                names=["pred"])
    assert isinstance(r, ValueError)


SPLIT_CASES = {
    "all_none": lambda s: s.__setitem__("split", None),
    "single_split": lambda s: s.__setitem__("split", "train"),
    "numbers": lambda s: s.__setitem__("sx", 3),
}


@pytest.mark.parametrize("case", SPLIT_CASES)
def test_split_fields(ds, case):
    _mutate(ds, SPLIT_CASES[case])
    field = "sx" if case == "numbers" else "split"
    r = checked(ds, lambda d: iou_audit.audit_splits(d, split_field=field, label_field="gt", audit_key="s"))
    if not isinstance(r, Exception):
        assert not (r.findings["kind"].str.startswith("leak")).any()
    for tags in (["train"], [], ["train", "train"]):
        checked(ds, lambda d: iou_audit.audit_splits(d, split_tags=tags, audit_key="s2"))
    r = checked(ds, lambda d: iou_audit.audit_splits(d, split_field="nope"), names=["nope"])
    assert isinstance(r, ValueError)


# --- operators: the same refusals through execute_operator, never a low-level exception
def _op(ds, name, params):
    before = snapshot(ds)
    try:
        return foo.execute_operator(OP + name, ctx=dict(dataset=ds, params=params))
    except Exception as e:  # ExecutionError carries the operator's traceback text
        text = "".join(traceback.format_exception(e))
        last = [l for l in text.strip().splitlines() if l and not l.startswith(" ")][-1]
        assert last.split(":")[0].rsplit(".", 1)[-1] in {"ValueError", "TypeError", "NotImplementedError",
                                                          "ExecutionError"}, last
        assert "KeyError" not in text and "IndexError" not in text and "pymongo.errors" not in text, text[-2000:]
        assert snapshot(ds) == before
        return e


OP_CASES = [
    ("audit_duplicates", {"label_field": "nope"}),
    ("audit_duplicates", {"label_field": "gt", "audit_key": "../x"}),
    ("audit_duplicates", {"label_field": "gt", "audit_key": "$x"}),
    ("audit_duplicates", {"label_field": "gt", "iou_thresh": 7}),
    ("audit_agreement", {"label_fields": ["gt"], "audit_key": "a.b"}),
    ("audit_agreement", {"label_fields": ["gt", "nope"]}),
    ("audit_agreement", {"label_fields": ["gt", "ann"], "consensus_field": "pred"}),
    ("audit_predictions", {"pred_field": "pred", "gt_field": "nope"}),
    ("audit_predictions", {"pred_field": "pred", "gt_field": "gt", "audit_key": ""}),
    ("audit_splits", {"split_source": "field", "split_field": "nope"}),
    ("audit_splits", {"split_source": "field", "split_field": "split", "audit_key": "k" * 500 + "$"}),
    ("delete_audit", {"audit_key": "never_ran"}),
    ("delete_audit", {"audit_key": "../x"}),
]


@pytest.mark.parametrize("name,params", OP_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OP_CASES)])
def test_operators_refuse_bad_input(ds, name, params):
    r = _op(ds, name, params)
    assert isinstance(r, Exception), r.result


@pytest.mark.parametrize("name,params", [c for c in OP_CASES if c[0] != "delete_audit"],
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(OP_CASES) if n != "delete_audit"])
def test_delegated_operators_refuse_bad_input(ds, name, params):
    """The same refusals when the run is queued and executed by a delegated worker: the operation
    fails with the clear error (not a low-level one) and nothing is written."""
    from fiftyone.operators.delegated import DelegatedOperationService

    before = snapshot(ds)
    try:
        res = foo.execute_operator(OP + name, ctx=dict(dataset=ds, request_delegation=True,
                                                       params={**params, "delegate": True}))
    except Exception as e:  # refused while queueing by the form's validation, naming the input
        text = "".join(traceback.format_exception(e))
        last = [line for line in text.strip().splitlines() if line and not line.startswith(" ")][-1]
        assert "Validation error. Path:" in last or last.split(":")[0].rsplit(".", 1)[-1] in CLEAR_NAMES, last
        assert "KeyError" not in text and "IndexError" not in text and "pymongo.errors" not in text, text[-2000:]
        assert snapshot(ds) == before
        return
    assert res.delegated, res.result
    dos = DelegatedOperationService()
    dos.execute_queued_operations(operator=OP + name, dataset_name=ds.name)
    doc = dos.get(res.result["id"])
    try:
        assert doc.run_state == "failed", doc.result
        error = str(doc.result.error)
        last = [line for line in error.strip().splitlines() if line and not line.startswith(" ")][-1]
        assert last.split(":")[0].rsplit(".", 1)[-1] in CLEAR_NAMES, last
        assert "KeyError" not in error and "IndexError" not in error and "pymongo.errors" not in error, error[-2000:]
    finally:
        dos.delete_operation(doc.id)
    assert snapshot(ds) == before


def test_operator_on_malformed_labels(ds):
    _raw(ds, "gt.detections", "oops")
    assert isinstance(_op(ds, "audit_duplicates", {"label_field": "gt"}), Exception)


# --- CLI: non-zero exit with a message, never a traceback
CLI_CASES = [
    ["duplicates", "--field", "nope"], ["duplicates", "--field", "gt", "--audit-key", "../x"],
    ["duplicates", "--field", "gt", "--audit-key", "$x"], ["duplicates", "--field", "gt", "--batch-size", "0"],
    ["agreement", "--fields", "gt", "nope"], ["agreement", "--fields", "gt", "ann", "--audit-key", "a.b"],
    ["agreement", "--fields", "gt", "ann", "--consensus-field", "pred"],
    ["predictions", "--pred-field", "pred", "--gt-field", "nope"],
    ["predictions", "--pred-field", "pred", "--gt-field", "gt", "--audit-key", ""],
    ["splits", "--split-field", "nope"], ["splits", "--split-field", "split", "--audit-key", "a/b"],
    ["export", "--audit-key", "never_ran", "out.csv"], ["export", "--audit-key", "../x", "out.csv"],
]


@pytest.mark.parametrize("args", CLI_CASES, ids=["-".join(a[:2]) + str(i) for i, a in enumerate(CLI_CASES)])
def test_cli_refuses_bad_input(ds, args, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = snapshot(ds)
    rc = main([args[0], "-d", ds.name, *args[1:]])
    out, err = capsys.readouterr()
    assert rc != 0 and "Traceback" not in out + err and err.strip(), (rc, out, err)
    assert snapshot(ds) == before


def test_cli_malformed_labels(ds, capsys):
    sid = _raw(ds, "gt.detections.0", 5)
    assert main(["duplicates", "-d", ds.name, "--field", "gt"]) != 0
    assert sid in capsys.readouterr().err

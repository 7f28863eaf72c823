"""The keypoint operators (``plugin/keypoints.py``) through FiftyOne's operator executor on the real
CrowdPose example: the forms offer Keypoints fields only (and the box audits' forms never do), the
stored run equals the library call's, the published AP comes out through the operator, and the
delegated path runs through FiftyOne's delegated-operation service."""
from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import pandas as pd
import pytest
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext, ExecutionError

from iou_audit.audits.keypoints import audit_keypoint_agreement, audit_keypoint_duplicates, audit_keypoint_predictions
from iou_audit.geometry.keypoints import CROWDPOSE_AREA_FACTOR, CROWDPOSE_SIGMAS
from iou_audit.results import list_audits, load_audit

PLUGIN = "@iou-audit/iou-audit"
PREDICTIONS = f"{PLUGIN}/audit_keypoint_predictions"
AGREEMENT = f"{PLUGIN}/audit_keypoint_agreement"
DUPLICATES = f"{PLUGIN}/audit_keypoint_duplicates"
#: faster-coco-eval's published result on these files (shared/data/crowdpose-example/README)
PUBLISHED = {"AP": 0.7877215935879303, "AP50": 0.9881188118811886, "AP75": 0.7314356435643564,
             "AR": 0.8222222222222223}
CROWDPOSE_FORM = {"skeleton": "crowdpose", "score_attribute": "score", "box_attribute": "bbox", "area_ranges": False}
CROWDPOSE_LIBRARY = dict(sigmas=tuple(CROWDPOSE_SIGMAS), score_attribute="score", box_attribute="bbox",
                         area_factor=CROWDPOSE_AREA_FACTOR, area_ranges=False)


@pytest.fixture(scope="module")
def crowdpose(shared_data):
    from iou_audit.examples.crowdpose import load_dataset

    ds = load_dataset(shared_data / "crowdpose-example", name="op-crowdpose")
    ds.add_sample_field("boxes", fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    yield ds
    ds.delete()


def _inputs(uri, ds, params=None):
    ctx = ExecutionContext(request_params={"dataset_name": ds.name, "params": params or {}})
    return foo.get_operator(uri).resolve_input(ctx).type.properties


def _same_run(ds, key, library):
    """The run stored by the operator equals the library call's result (findings and metrics)."""
    stored = load_audit(ds, key)
    pd.testing.assert_frame_equal(stored.findings.reset_index(drop=True), library.findings.reset_index(drop=True),
                                  check_dtype=False)
    assert set(stored.metrics) == set(library.metrics)
    for name, value in library.metrics.items():
        assert stored.metrics[name] == pytest.approx(value, nan_ok=True), name


def test_forms_offer_keypoints_fields_only(crowdpose):
    props = _inputs(PREDICTIONS, crowdpose)
    assert {"pred_field", "gt_field", "skeleton", "sigmas", "oks_thresh", "score_attribute", "box_attribute",
            "area_ranges", "point_similarity", "min_score", "audit_key", "delegate"} <= set(props)
    assert sorted(props["pred_field"].type.values) == ["ground_truth", "predictions"]
    assert sorted(props["gt_field"].type.values) == ["ground_truth", "predictions"]
    assert props["pred_field"].default == "predictions" and props["gt_field"].default == "ground_truth"
    assert props["skeleton"].type.values == ["coco", "crowdpose"]
    agreement = _inputs(AGREEMENT, crowdpose)
    assert [c.value for c in agreement["label_fields"].view.choices] == ["ground_truth", "predictions"]
    assert {"low_oks", "point_similarity", "skeleton"} <= set(agreement)
    duplicates = _inputs(DUPLICATES, crowdpose)
    assert sorted(duplicates["field"].type.values) == ["ground_truth", "predictions"]


def test_box_audit_forms_never_offer_keypoints_fields(crowdpose):
    for uri, names in ((f"{PLUGIN}/audit_duplicates", ("label_field",)),
                       (f"{PLUGIN}/audit_predictions", ("pred_field", "gt_field"))):
        props = _inputs(uri, crowdpose)
        for name in names:
            assert props[name].type.values == ["boxes"], (uri, name)
    choices = _inputs(f"{PLUGIN}/audit_agreement", crowdpose)["label_fields"].view.choices
    assert [c.value for c in choices] == ["boxes"]
    for audit in ("duplicates", "agreement", "predictions"):
        props = _inputs(f"{PLUGIN}/run_sharded_audit", crowdpose, {"audit": audit})
        offered = {v for n in ("label_field", "pred_field", "gt_field") if n in props for v in props[n].type.values}
        if "label_fields" in props:
            offered |= {c.value for c in props["label_fields"].view.choices}
        assert offered == {"boxes"}, audit


def test_box_audit_refusing_keypoints_names_the_keypoint_operators(crowdpose):
    from iou_audit import audit_duplicates, audit_predictions

    # the operator's form refuses the field (it is not among its choices) ...
    with pytest.raises(ExecutionError, match="label_field. Reason: Invalid enum value"):
        foo.execute_operator(f"{PLUGIN}/audit_duplicates", ctx=dict(dataset=crowdpose, params={
            "label_field": "ground_truth", "audit_key": "box_on_kp"}))
    # ... and the library call names the keypoint audits and their operators
    named = "operators audit_keypoint_predictions, audit_keypoint_agreement, audit_keypoint_duplicates"
    with pytest.raises(ValueError, match=named):
        audit_duplicates(crowdpose, "ground_truth", audit_key="box_on_kp")
    with pytest.raises(ValueError, match=named):
        audit_predictions(crowdpose, "predictions", "ground_truth", audit_key="box_on_kp")
    assert "box_on_kp" not in list_audits(crowdpose)


def test_predictions_operator_published_ap_and_stored_run(crowdpose):
    res = foo.execute_operator(PREDICTIONS, ctx=dict(dataset=crowdpose, params={
        "pred_field": "predictions", "gt_field": "ground_truth", "audit_key": "kp_op", **CROWDPOSE_FORM}))
    for name, want in PUBLISHED.items():
        assert res.result[name] == pytest.approx(want, abs=1e-12), name
    library = audit_keypoint_predictions(crowdpose, "predictions", "ground_truth", save=False, **CROWDPOSE_LIBRARY)
    crowdpose.reload()
    _same_run(crowdpose, "kp_op", library)
    assert res.result["n_mislocated_keypoint"] == library.counts().get("mislocated_keypoint", 0) == 1
    assert load_audit(crowdpose, "kp_op").config["sigmas"] == pytest.approx(list(CROWDPOSE_SIGMAS))
    requests = [r["operator_uri"] for r in res.executor.to_json()["requests"]]
    assert "reload_dataset" in requests and "set_view" in requests


def test_duplicates_operator_explicit_sigmas(crowdpose):
    sigmas = ", ".join(str(s) for s in CROWDPOSE_SIGMAS)
    res = foo.execute_operator(DUPLICATES, ctx=dict(dataset=crowdpose, params={
        "field": "predictions", "sigmas": sigmas, "audit_key": "kpdup_op"}))
    assert res.result["n_duplicate_skeleton"] == 1  # the model's person predicted twice (OKS 0.949)
    library = audit_keypoint_duplicates(crowdpose, "predictions", save=False, sigmas=tuple(CROWDPOSE_SIGMAS))
    crowdpose.reload()
    _same_run(crowdpose, "kpdup_op", library)
    with pytest.raises(ExecutionError, match="sigmas must be numbers separated by commas, got '0.079, x'"):
        foo.execute_operator(DUPLICATES, ctx=dict(dataset=crowdpose, params={
            "field": "predictions", "sigmas": "0.079, x", "audit_key": "kpdup_bad"}))
    # 14 points without sigmas: the library's clear error reaches the operator
    with pytest.raises(ExecutionError, match="default sigmas are for 17"):
        foo.execute_operator(DUPLICATES, ctx=dict(dataset=crowdpose, params={
            "field": "predictions", "audit_key": "kpdup_bad"}))
    assert "kpdup_bad" not in list_audits(crowdpose)


def test_agreement_operator_delegated(crowdpose):
    res = foo.execute_operator(AGREEMENT, ctx=dict(dataset=crowdpose, request_delegation=True, params={
        "label_fields": ["ground_truth", "predictions"], "skeleton": "crowdpose", "audit_key": "kpagr_bg",
        "delegate": True}))
    assert res.delegated
    dos = DelegatedOperationService()
    dos.execute_queued_operations(operator=AGREEMENT, dataset_name=crowdpose.name)
    doc = dos.get(res.result["id"])
    try:
        assert doc.run_state == "completed", doc.result
        assert doc.result.result["mean_oks"] == pytest.approx(0.8802, abs=5e-5)
        assert doc.result.result["object_f1"] == pytest.approx(0.75)
        library = audit_keypoint_agreement(crowdpose, ["ground_truth", "predictions"], save=False,
                                           sigmas=tuple(CROWDPOSE_SIGMAS))
        crowdpose.reload()
        _same_run(crowdpose, "kpagr_bg", library)
        assert doc.status.progress == pytest.approx(1.0)
    finally:
        dos.delete_operation(doc.id)


def test_predictions_operator_delegated(crowdpose):
    res = foo.execute_operator(PREDICTIONS, ctx=dict(dataset=crowdpose, request_delegation=True, params={
        "pred_field": "predictions", "gt_field": "ground_truth", "audit_key": "kp_bg", "delegate": True,
        **CROWDPOSE_FORM}))
    assert res.delegated
    dos = DelegatedOperationService()
    dos.execute_queued_operations(operator=PREDICTIONS, dataset_name=crowdpose.name)
    doc = dos.get(res.result["id"])
    try:
        assert doc.run_state == "completed", doc.result
        assert doc.result.result["AP"] == pytest.approx(PUBLISHED["AP"], abs=1e-12)
        crowdpose.reload()
        assert load_audit(crowdpose, "kp_bg").metrics["AP"] == pytest.approx(PUBLISHED["AP"], abs=1e-12)
    finally:
        dos.delete_operation(doc.id)

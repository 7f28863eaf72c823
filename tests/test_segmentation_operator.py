"""The segmentation operator (``plugin/segmentation.py``) through FiftyOne's operator executor on a
small real dataset (masks in the database and PNG files, built as in
test_segmentation_agreement_audit.py): the form offers Segmentation fields only, the stored run
equals the library call's, and FiftyOne's ``evaluate_segmentations`` (independent oracle) gives the
same mIoU and pixel accuracy; the delegated path runs through FiftyOne's delegated-operation service."""
from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import pandas as pd
import pytest
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext
from test_segmentation_agreement_audit import VALUES, seg_dataset  # noqa: F401 (fixture)

from iou_audit.audits.segmentation import audit_segmentation_agreement
from iou_audit.results import list_audits, load_audit

URI = "@iou-audit/iou-audit/audit_segmentation_agreement"


def _same_run(ds, key, library):
    stored = load_audit(ds, key)
    pd.testing.assert_frame_equal(stored.findings.reset_index(drop=True), library.findings.reset_index(drop=True),
                                  check_dtype=False)
    assert set(stored.metrics) == set(library.metrics)
    for name, value in library.metrics.items():
        assert stored.metrics[name] == pytest.approx(value, nan_ok=True), name


def _fiftyone_oracle(ds):
    """mIoU and pixel accuracy of FiftyOne's evaluate_segmentations (its pixel confusion matrix) on the
    samples with both masks."""
    res = ds.exists("r2").evaluate_segmentations("r2", gt_field="r1", mask_targets={v: str(v) for v in VALUES})
    cm = res.pixel_confusion_matrix.astype(float)
    inter = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - inter
    present = union > 0
    # accuracy over all pixels from its confusion matrix: res.metrics()["accuracy"] leaves out class 0
    # (FiftyOne's "missing" background class), a different definition
    return float((inter[present] / union[present]).mean()), float(inter.sum() / cm.sum())


def test_form_offers_segmentation_fields_only(seg_dataset):  # noqa: F811
    ds, _ = seg_dataset
    ds.add_sample_field("boxes", fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    ctx = ExecutionContext(request_params={"dataset_name": ds.name, "params": {}})
    props = foo.get_operator(URI).resolve_input(ctx).type.properties
    assert [c.value for c in props["fields"].view.choices] == ["r1", "r2"]
    assert {"low_miou", "min_class_pixels", "regions_field", "resize", "audit_key", "delegate"} <= set(props)
    assert foo.get_operator(URI).resolve_delegation(ctx) is None


def test_operator_equals_library_and_fiftyone(seg_dataset):  # noqa: F811
    ds, _ = seg_dataset
    res = foo.execute_operator(URI, ctx=dict(dataset=ds, params={
        "fields": ["r1", "r2"], "audit_key": "seg_op", "regions_field": "seg_regions", "min_region_pixels": 20}))
    library = audit_segmentation_agreement(ds, ["r1", "r2"], save=False, audit_key="seg_op",
                                           regions_field="seg_regions", min_region_pixels=20)
    ds.reload()
    _same_run(ds, "seg_op", library)
    miou, accuracy = _fiftyone_oracle(ds)
    assert res.result["miou"] == pytest.approx(miou, abs=1e-12)
    assert res.result["pixel_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert res.result["n_missing_mask"] == 1 and res.result["n_class_missing"] == 1
    assert "seg_regions" in ds.get_field_schema()


def test_operator_delegated(seg_dataset):  # noqa: F811
    ds, _ = seg_dataset
    res = foo.execute_operator(URI, ctx=dict(dataset=ds, request_delegation=True, params={
        "fields": ["r1", "r2"], "audit_key": "seg_bg", "delegate": True}))
    assert res.delegated
    dos = DelegatedOperationService()
    dos.execute_queued_operations(operator=URI, dataset_name=ds.name)
    doc = dos.get(res.result["id"])
    try:
        assert doc.run_state == "completed", doc.result
        miou, accuracy = _fiftyone_oracle(ds)
        assert doc.result.result["miou"] == pytest.approx(miou, abs=1e-12)
        ds.reload()
        assert "seg_bg" in list_audits(ds)
        assert load_audit(ds, "seg_bg").metrics["pixel_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    finally:
        dos.delete_operation(doc.id)

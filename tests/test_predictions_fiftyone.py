"""audit_predictions on real FiftyOne datasets: per-label writes vs evaluate_detections, confusion matrix vs
FiftyOne's, tags/views/counts, constructed error cases, the CLI and the operator (immediate and delegated)."""
import fiftyone as fo
import numpy as np
import pytest

from iou_audit.audits.predictions.audit import audit_predictions
from iou_audit.simulate.predictions import add_simulated_predictions

N_IMAGES = 40


@pytest.fixture(scope="module")
def bccd(shared_data, tmp_path_factory):
    """The first BCCD images (FiftyOne's VOC importer) with SIMULATED predictions."""
    src = shared_data / "bccd"
    tmp = tmp_path_factory.mktemp("bccd")
    (tmp / "JPEGImages").mkdir()
    (tmp / "Annotations").mkdir()
    for xml in sorted((src / "Annotations").glob("*.xml"))[:N_IMAGES]:
        (tmp / "Annotations" / xml.name).symlink_to(xml)
        jpg = src / "JPEGImages" / (xml.stem + ".jpg")
        (tmp / "JPEGImages" / jpg.name).symlink_to(jpg)
    ds = fo.Dataset.from_dir(dataset_type=fo.types.VOCDetectionDataset, data_path=str(tmp / "JPEGImages"),
                             labels_path=str(tmp / "Annotations"), label_field="ground_truth", progress=False)
    add_simulated_predictions(ds, "ground_truth", "sim_predictions", seed=3)
    yield ds
    ds.delete()


def _labels(ds, field, attrs):
    vals = ds.values([f"{field}.detections.{a}" for a in attrs])
    return [dict(zip(attrs, row)) for cols in zip(*vals) for row in zip(*[c or [] for c in cols])]


@pytest.mark.parametrize("classwise", [True, False])
def test_per_label_writes_equal_evaluate_detections(bccd, classwise):
    key = "pa" if classwise else "pg"
    result = audit_predictions(bccd, "sim_predictions", "ground_truth", classwise=classwise, audit_key=key,
                               coco_metrics=False, tide=False)
    ev = bccd.evaluate_detections("sim_predictions", gt_field="ground_truth", eval_key="ev", classwise=classwise,
                                  iou=0.5, progress=False)
    try:
        for field in ("sim_predictions", "ground_truth"):
            rows = _labels(bccd, field, ["id", "ev", "ev_id", "ev_iou", f"{key}_match_id", f"{key}_iou"])
            assert rows
            for r in rows:
                assert r[f"{key}_match_id"] == r["ev_id"], r
                if r["ev_id"]:
                    assert abs(r[f"{key}_iou"] - r["ev_iou"]) < 1e-9
                else:
                    assert r[f"{key}_iou"] == 0.0
        if classwise:
            assert result.metrics["tp"] == bccd.sum("ev_tp")
            assert result.metrics["fp"] == bccd.sum("ev_fp")
            assert result.metrics["fn"] == bccd.sum("ev_fn")
        else:
            # FiftyOne's confusion matrix (rows: ground truth, columns: predictions, "(none)" = unmatched)
            classes = sorted(set(bccd.distinct("ground_truth.detections.label"))
                             | set(bccd.distinct("sim_predictions.detections.label")))
            fo_cm = ev.confusion_matrix(classes=classes + ["(none)"])
            cm = result.tables["confusion"].loc[classes + ["unmatched"], classes + ["unmatched"]].to_numpy().copy()
            cm[-1, -1] = fo_cm[-1, -1]
            np.testing.assert_array_equal(cm, fo_cm)
    finally:
        bccd.delete_evaluation("ev")


def test_read_in_batches_equals_one_read_and_evaluate_detections(bccd, monkeypatch):
    """Both fields read 7 samples at a time (6 batches of the 40): every per-label write still equals
    evaluate_detections, and metrics, tables and findings equal those of one read."""
    import pandas as pd

    from iou_audit.audits.predictions import audit as pred_audit

    one = audit_predictions(bccd, "sim_predictions", "ground_truth", save=False)
    monkeypatch.setattr(pred_audit, "READ_BATCH", 7)
    result = audit_predictions(bccd, "sim_predictions", "ground_truth", audit_key="pb")
    bccd.evaluate_detections("sim_predictions", gt_field="ground_truth", eval_key="ev", iou=0.5, progress=False)
    try:
        for field in ("sim_predictions", "ground_truth"):
            rows = _labels(bccd, field, ["ev_id", "ev_iou", "pb_match_id", "pb_iou"])
            assert rows
            for r in rows:
                assert r["pb_match_id"] == r["ev_id"], r
                assert abs(r["pb_iou"] - (r["ev_iou"] if r["ev_id"] else 0.0)) < 1e-9
        assert (result.metrics["tp"], result.metrics["fp"], result.metrics["fn"]) == (
            bccd.sum("ev_tp"), bccd.sum("ev_fp"), bccd.sum("ev_fn"))
    finally:
        bccd.delete_evaluation("ev")
    assert result.metrics.keys() == one.metrics.keys()
    for k, v in one.metrics.items():
        assert result.metrics[k] == v or (v != v and result.metrics[k] != result.metrics[k]), k
    for name, table in one.tables.items():
        pd.testing.assert_frame_equal(result.tables[name], table)
    pd.testing.assert_frame_equal(result.findings, one.findings)


def test_tags_counts_quality_views(bccd):
    result = audit_predictions(bccd, "sim_predictions", "ground_truth", audit_key="pt", min_score=0.3)
    counts = result.counts()
    assert counts, "simulated predictions should disagree with some labels"
    for kind, n in counts.items():
        field = "sim_predictions" if kind in ("possible_missing", "duplicate_prediction") else "ground_truth"
        assert bccd.count_label_tags(f"{field}").get(f"pt:{kind}", 0) == n
        assert bccd.has_saved_view(f"pt-{kind}")
        assert bccd.sum(f"pt_{kind}") == n
    q = np.array(bccd.values("pt_quality"), float)
    assert len(q) == len(bccd) and np.all((q >= 0) & (q <= 1))
    lq = [x for xs in bccd.values("ground_truth.detections.pt_quality") for x in xs]
    assert len(lq) == bccd.count("ground_truth.detections") and min(lq) >= 0 and max(lq) <= 1
    assert set(result.tables) >= {"per_class", "confusion", "tide", "per_sample"}
    assert 0 <= result.metrics["AP"] <= 1


def test_constructed_errors(dataset):
    """One image; each label and prediction set up to show one error kind (see errors.py formulas)."""
    gt = [("cat", [0.1, 0.1, 0.2, 0.2]), ("dog", [0.5, 0.5, 0.2, 0.2]), ("cat", [0.1, 0.6, 0.2, 0.2])]
    preds = [("cat", [0.15, 0.1, 0.2, 0.2], 0.95),   # on label 0, shifted right: IoU 0.6 -> mislocated
             ("cat", [0.5, 0.5, 0.2, 0.2], 0.9),     # exactly on the "dog": class swap
             ("dog", [0.7, 0.1, 0.1, 0.1], 0.97),    # nothing labelled there: possible missing
             ("cat", [0.15, 0.1, 0.2, 0.2], 0.6)]    # second copy of the first: duplicate prediction
    dataset.add_sample(fo.Sample(
        filepath="/nonexistent/a.jpg", metadata=fo.ImageMetadata(width=100, height=100),
        ground_truth=fo.Detections(detections=[fo.Detection(label=l, bounding_box=b) for l, b in gt]),
        predictions=fo.Detections(detections=[fo.Detection(label=l, bounding_box=b, confidence=c)
                                              for l, b, c in preds])))
    r = audit_predictions(dataset, "predictions", "ground_truth", min_score=0.3, coco_metrics=False)
    f = r.findings.set_index("kind")
    gt_ids = dataset.values("ground_truth.detections.id")[0]
    pr_ids = dataset.values("predictions.detections.id")[0]
    assert f.loc["mislocated", "label_id"] == gt_ids[0]
    assert f.loc["mislocated", "score"] == pytest.approx(0.95 * (0.75 - 0.6) / 0.25)
    assert f.loc["mislocated", "detail"].startswith(("left edge off by -0.25", "right edge off by -0.25"))
    assert f.loc["class_swap", "label_id"] == gt_ids[1]
    assert f.loc["class_swap", "other_label_id"] == pr_ids[1]
    assert f.loc["class_swap", "score"] == pytest.approx(0.9)
    assert f.loc["possible_spurious", "label_id"] == gt_ids[2]
    assert f.loc["possible_spurious", "score"] == pytest.approx(0.5)
    assert f.loc["possible_missing", "label_id"] == pr_ids[2]
    assert f.loc["possible_missing", "score"] == pytest.approx(0.97)
    assert f.loc["duplicate_prediction", "label_id"] == pr_ids[3]
    assert dataset.values("predictions.detections.predictions_error")[0] == ["tp", "class", "background", "duplicate"]
    # image quality: 1 - the largest suspicion in the image (the 0.97 possible_missing)
    assert dataset.values("predictions_quality")[0] == pytest.approx(0.03)
    # TIDE: removing the duplicate does not change AP (it ranks below the TP), the background box
    # is a "dog" FP ranked first among dog predictions of an image whose only dog label is taken by nothing
    assert r.metrics["tide_dAP_duplicate"] == pytest.approx(0.0, abs=1e-12)


def test_hungarian_and_bad_input(bccd):
    r = audit_predictions(bccd, "sim_predictions", "ground_truth", method="hungarian", audit_key="ph",
                          coco_metrics=False, tide=False, save=False)
    assert r.metrics["tp"] > 0
    with pytest.raises(ValueError, match="method"):
        audit_predictions(bccd, "sim_predictions", "ground_truth", method="optimal", save=False)
    with pytest.raises(ValueError, match="nope"):
        audit_predictions(bccd, "nope", "ground_truth", save=False)


def test_cli_predictions(bccd, capsys):
    from iou_audit.cli import main

    assert main(["predictions", "--dataset", bccd.name, "--pred-field", "sim_predictions",
                 "--audit-key", "pcli"]) == 0
    out = capsys.readouterr().out
    assert "TIDE" in out and "findings per kind" in out
    assert "pcli" in bccd.list_runs()
    assert main(["predictions", "--dataset", "no-such-dataset", "--pred-field", "x"]) != 0


def test_operator_immediate_and_delegated(bccd):
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    uri = "@iou-audit/iou-audit/audit_predictions"
    params = dict(pred_field="sim_predictions", gt_field="ground_truth", iou_thresh=0.5, method="greedy",
                  classwise=True, min_score=0.5, audit_key="pop")
    res = foo.execute_operator(uri, ctx=dict(dataset=bccd, params=params))
    assert res.error is None, res.error
    assert res.result["audit_key"] == "pop" and "pop" in bccd.list_runs()
    n_tagged = bccd.count_label_tags("ground_truth")
    assert sum(v for k, v in n_tagged.items() if k.startswith("pop:")) == sum(
        res.result[f"n_{k}"] for k in ("possible_spurious", "mislocated", "class_swap"))

    params = dict(params, audit_key="pdel", delegate=True)
    foo.execute_operator(uri, ctx=dict(dataset=bccd, params=params), request_delegation=True)
    DelegatedOperationService().execute_queued_operations(operator=uri, dataset_name=bccd.name)
    bccd.reload()
    assert "pdel" in bccd.list_runs()
    assert bccd.has_field("ground_truth.detections.pdel_quality")


def test_run_demo_predictions_writes_simulated_field(bccd):
    from iou_audit.demo import run_demo_predictions

    ds = bccd.clone()
    try:
        ds.delete_sample_field("sim_predictions")
        result = run_demo_predictions(ds, audit_key="demo")
        n_gt = ds.count("ground_truth.detections")
        assert 0.8 * n_gt < ds.count("sim_predictions.detections") < 1.3 * n_gt
        assert "demo" in ds.list_runs() and result.metrics["tp"] > 0.8 * n_gt
        assert result.metrics["AP50"] > 0.8  # the simulated detector is decent by construction
    finally:
        ds.delete()

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


def _context_samples(n=30, seed=0):
    """Images where the labels are right and a detector finds them (0.9 confidence, corners jittered
    by U(-0.03, 0.03) of the box): the data the scores are calibrated on (noise, recall, precision)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gt = [("cat", [0.1, 0.1, 0.2, 0.2]), ("cat", [0.5, 0.1, 0.2, 0.2]), ("dog", [0.1, 0.6, 0.2, 0.2])]
        preds = [(lab, list(np.array(b) + rng.uniform(-0.03, 0.03, 4) * 0.2), 0.9) for lab, b in gt]
        out.append(fo.Sample(
            filepath=f"/nonexistent/ctx{i}.jpg", metadata=fo.ImageMetadata(width=100, height=100),
            ground_truth=fo.Detections(detections=[fo.Detection(label=lab, bounding_box=b) for lab, b in gt]),
            predictions=fo.Detections(detections=[fo.Detection(label=lab, bounding_box=b, confidence=c)
                                                  for lab, b, c in preds])))
    return out


def test_constructed_errors(dataset):
    """One image; each label and prediction set up to show one error kind (see errors.py and
    calibration.py), next to 30 images where labels and detector agree (the scores' calibration data)."""
    from iou_audit.audits.predictions.calibration import ERROR_PRIOR, MISS_RATE, MISS_SHRINK

    gt = [("cat", [0.1, 0.1, 0.2, 0.2]), ("dog", [0.5, 0.5, 0.2, 0.2]), ("cat", [0.1, 0.6, 0.2, 0.2])]
    preds = [("cat", [0.15, 0.1, 0.2, 0.2], 0.95),   # on label 0, shifted right: IoU 0.6 -> mislocated
             ("cat", [0.5, 0.5, 0.2, 0.2], 0.9),     # exactly on the "dog": class swap
             ("dog", [0.7, 0.1, 0.1, 0.1], 0.97),    # nothing labelled there: possible missing
             ("cat", [0.15, 0.1, 0.2, 0.2], 0.6)]    # second copy of the first: duplicate prediction
    dataset.add_sample(fo.Sample(
        filepath="/nonexistent/a.jpg", metadata=fo.ImageMetadata(width=100, height=100),
        ground_truth=fo.Detections(detections=[fo.Detection(label=lab, bounding_box=b) for lab, b in gt]),
        predictions=fo.Detections(detections=[fo.Detection(label=lab, bounding_box=b, confidence=c)
                                              for lab, b, c in preds])))
    dataset.add_samples(_context_samples())
    r = audit_predictions(dataset, "predictions", "ground_truth", min_score=0.3, coco_metrics=False)
    f = r.findings.set_index("kind")
    gt_ids = dataset.first().ground_truth.detections
    pr_ids = dataset.first().predictions.detections
    gt_ids, pr_ids = [d.id for d in gt_ids], [d.id for d in pr_ids]
    # nothing in the 30 agreeing images is a finding
    extra = r.findings[~r.findings["label_id"].isin(gt_ids + pr_ids)]
    assert extra.empty, extra[["kind", "label", "score", "detail"]].to_string()
    assert f.loc["mislocated", "label_id"] == gt_ids[0]
    # a quarter of the box off, where the detector's edges scatter by ~3 %: certain
    assert f.loc["mislocated", "score"] > 0.99
    assert f.loc["mislocated", "detail"].startswith(("left edge off by -0.25", "right edge off by -0.25"))
    assert f.loc["class_swap", "label_id"] == gt_ids[1]
    assert f.loc["class_swap", "other_label_id"] == pr_ids[1]
    assert f.loc["class_swap", "score"] > 0.5
    # the unsupported cat: the detector missed none of the 62 cats but this one, so its miss rate,
    # shrunk level by level (all cats, then the cats of its size octave: the same 62) from MISS_RATE, is ~3 %
    m = MISS_RATE
    for _ in range(2):
        m = (1 + MISS_SHRINK * m) / (62 + MISS_SHRINK)
    lr = 1 / m
    assert f.loc["possible_spurious", "label_id"] == gt_ids[2]
    assert f.loc["possible_spurious", "score"] == pytest.approx(ERROR_PRIOR * lr / (ERROR_PRIOR * lr + 1 - ERROR_PRIOR))
    assert f.loc["possible_missing", "label_id"] == pr_ids[2]
    assert f.loc["possible_missing", "score"] > 0.9  # dog predictions at 0.9+ are right 30 times of 31
    assert f.loc["duplicate_prediction", "label_id"] == pr_ids[3]
    assert dataset.first().predictions.detections[0]["predictions_error"] == "tp"
    assert [d["predictions_error"] for d in dataset.first().predictions.detections] == [
        "tp", "class", "background", "duplicate"]
    # image quality: 1 - the largest suspicion in the image
    assert dataset.first()["predictions_quality"] == pytest.approx(1 - r.findings["score"].max(), abs=1e-6)
    # TIDE: removing the duplicate prediction barely changes AP (it ranks below the TP)
    assert r.metrics["tide_dAP_duplicate"] == pytest.approx(0.0, abs=1e-6)


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


def test_extra_prediction_fields(bccd):
    """A second prediction field changes the label scores only: matched ids, metrics and TIDE stay
    those of the main field (checked against evaluate_detections' TP/FP/FN on the main field)."""
    add_simulated_predictions(bccd, "ground_truth", "sim_predictions_2", seed=4)
    try:
        one = audit_predictions(bccd, "sim_predictions", "ground_truth", audit_key="pe1", coco_metrics=False)
        two = audit_predictions(bccd, "sim_predictions", "ground_truth", audit_key="pe2", coco_metrics=False,
                                extra_pred_fields=["sim_predictions_2"])
        ev = bccd.evaluate_detections("sim_predictions", gt_field="ground_truth", eval_key="ev2", iou=0.5,
                                      progress=False)
        assert two.metrics["tp"] == bccd.sum("ev2_tp") == one.metrics["tp"]
        assert two.metrics["fn"] == bccd.sum("ev2_fn") and two.metrics["fp"] == bccd.sum("ev2_fp")
        assert bccd.values("ground_truth.detections.pe2_match_id") == bccd.values("ground_truth.detections.ev2_id")
        q1 = np.array(bccd.values("ground_truth.detections.pe1_quality", unwind=True), float)
        q2 = np.array(bccd.values("ground_truth.detections.pe2_quality", unwind=True), float)
        assert q1.shape == q2.shape and not np.allclose(q1, q2) and np.all((q2 >= 0) & (q2 <= 1))
        from iou_audit import load_audit

        assert list(load_audit(bccd, "pe2").config["extra_pred_fields"]) == ["sim_predictions_2"]
        with pytest.raises(ValueError, match="nope"):
            audit_predictions(bccd, "sim_predictions", "ground_truth", extra_pred_fields=["nope"], save=False)
        del ev
    finally:
        bccd.delete_evaluation("ev2")
        bccd.delete_sample_field("sim_predictions_2")

"""iou_audit.results.evidence: the samples and labels behind each chart element, against oracles
computed directly from the dataset (the planted labels, fiftyone.utils.iou, FiftyOne's own
evaluate_detections and aggregations), never from the evidence functions themselves."""
import numpy as np
import pandas as pd
import pytest
from _review_data import build, label_ids, pairwise_oracle, planted_duplicates
from fiftyone import ViewField as F
from fiftyone.utils.iou import compute_ious

from iou_audit.results import evidence as ev
from iou_audit.results import load_audit


@pytest.fixture(scope="module")
def audited(shared_data, tmp_path_factory):
    ds = build(shared_data, tmp_path_factory.mktemp("evidence"))
    yield ds
    ds.delete()


def _selected(sel):
    return {f: set(ids) for f, ids in sel.labels.items()}


def test_kind_class_bar_is_the_planted_duplicate_pairs(audited):
    ds = audited
    result = load_audit(ds, "dups")
    planted, holder = planted_duplicates(ds)
    # the duplicate audit's bars: one trace per class, stacked by kind
    chart = ev.charts(result, ds)["kinds"]
    bars = {t["name"]: dict(zip(t["y"], t["x"])) for t in chart.traces}
    for label, ids in planted.items():
        assert bars[label]["duplicate"] == len(ids) // 2
        sel = ev.select(ds, result, "kinds", {"y": "duplicate", "x": 1, "id": "duplicate", "trace": label})
        assert _selected(sel) == {"ground_truth": ids}
        view = ev.selection_view(ds, sel)
        assert label_ids(view, "ground_truth") == ids
        assert set(view.values("id")) == set(sel.sample_ids) == {holder[i] for i in ids}
        # every other label field is hidden
        assert view.count("ann_b.detections") == 0 and view.count("preds.detections") == 0
    assert sum(bars[c].get("duplicate", 0) for c in bars) == sum(len(v) for v in planted.values()) // 2


def test_matrix_cell_is_where_two_annotators_disagree(audited):
    ds = audited
    result = load_audit(ds, "ag")
    expected, samples = pairwise_oracle(ds, "ann_a", "ann_b")
    assert expected["ann_a"] and expected["ann_b"]
    sel = ev.select(ds, result, "matrix", {"x": "ann_b", "y": "ann_a"})
    assert _selected(sel) == expected
    assert set(sel.sample_ids) == samples
    view = ev.selection_view(ds, sel)
    assert label_ids(view, "ann_a") == expected["ann_a"] and label_ids(view, "ann_b") == expected["ann_b"]
    assert view.count("ann_c.detections") == 0
    # the stored pair table agrees with the recomputed matching: unmatched = n - matched
    d = ev.pair_disagreements(ds, result, "ann_a", "ann_b")
    pair = result.tables["pairs"].set_index(["annotator_a", "annotator_b"]).loc[("ann_a", "ann_b")]
    assert (d.reason == "only_a").sum() == pair.n_a - pair.matched
    assert (d.reason == "only_b").sum() == pair.n_b - pair.matched
    assert (d.reason == "class").sum() == 2 * (pair.matched - pair.matched_same_class)
    # the heatmap shows the stored pair values, symmetric, diagonal empty
    z = ev.charts(result, ds)["matrix"].traces[0]["z"]
    assert z[0][1] == z[1][0] == round(float(pair.f1), 3) and z[0][0] is None


def test_histogram_bins_hold_the_labels_fiftyone_counts_in_them(audited):
    ds = audited
    result = load_audit(ds, "ag")
    chart = ev.charts(result, ds)["iou_hist"]
    counts = chart.traces[0]["y"]
    edges = np.linspace(0, 1, ev.IOU_BINS + 1)
    fields = ["ann_a", "ann_b", "ann_c"]
    total = sum(ds.filter_labels(f, F("ag_iou") != None).count(f"{f}.detections") for f in fields)  # noqa: E711
    assert sum(counts) == total > 0
    checked = 0
    for i, n in enumerate(counts):
        lo, hi = edges[i], edges[i + 1]
        expr = (F("ag_iou") >= lo) & ((F("ag_iou") <= hi) if i == ev.IOU_BINS - 1 else (F("ag_iou") < hi))
        oracle = {f: label_ids(ds.filter_labels(f, expr), f) for f in fields}
        assert n == sum(len(v) for v in oracle.values()), i
        if n:
            sel = ev.select(ds, result, "iou_hist", {"x": (lo + hi) / 2, "idx": i, "id": str(i)})
            assert _selected(sel) == {f: v for f, v in oracle.items() if v}
            checked += 1
    assert checked >= 2


def test_confusion_cells_equal_fiftyone_class_blind_evaluation(audited):
    ds = audited
    result = load_audit(ds, "pr")
    cm = result.tables["confusion"]
    # FiftyOne's class-blind matching: a matched pair shares ids (``fo_cm_id``); a cross-class pair
    # is marked fp/fn but still matched, which is what a confusion cell counts
    pred_label = dict(zip(*[sum(x, []) for x in ds.values(["preds.detections.id", "preds.detections.label"])]))
    gt_rows = list(zip(*[sum(x, []) for x in ds.values(["ann_a.detections.id", "ann_a.detections.label",
                                                         "ann_a.detections.fo_cm_id"])]))
    pred_rows = list(zip(*[sum(x, []) for x in ds.values(["preds.detections.id", "preds.detections.label",
                                                           "preds.detections.fo_cm_id"])]))
    for g in cm.index:
        for p in cm.columns:
            if g == "unmatched" and p == "unmatched":
                continue
            if g == "unmatched":
                want = {"preds": {i for i, lab, m in pred_rows if lab == p and not m}}
            elif p == "unmatched":
                want = {"ann_a": {i for i, lab, m in gt_rows if lab == g and not m}}
            else:
                pairs = [(i, m) for i, lab, m in gt_rows if lab == g and m and pred_label[m] == p]
                want = {"ann_a": {i for i, _ in pairs}, "preds": {m for _, m in pairs}}
            want = {f: v for f, v in want.items() if v}
            assert int(cm.loc[g, p]) == max([len(v) for v in want.values()] or [0]), (g, p)
            sel = ev.select(ds, result, "confusion", {"x": p, "y": g})
            assert _selected(sel) == want, (g, p)


def test_per_class_bars_select_fiftyone_false_positives_and_negatives(audited):
    ds = audited
    result = load_audit(ds, "pr")
    for c in result.tables["per_class"]["class"]:
        fp = label_ids(ds.filter_labels("preds", (F("fo_cw") == "fp") & (F("label") == c)), "preds")
        fn = label_ids(ds.filter_labels("ann_a", (F("fo_cw") == "fn") & (F("label") == c)), "ann_a")
        assert _selected(ev.select(ds, result, "per_class", {"x": c, "trace": "precision"})) == ({"preds": fp} if fp else {})
        assert _selected(ev.select(ds, result, "per_class", {"x": c, "trace": "recall"})) == ({"ann_a": fn} if fn else {})
        both = ev.select(ds, result, "per_class", {"x": c, "trace": "AP"})
        assert _selected(both) == {k: v for k, v in {"preds": fp, "ann_a": fn}.items() if v}


def test_tide_bars_select_their_counted_errors(audited):
    ds = audited
    result = load_audit(ds, "pr")
    tide = result.tables["tide"].set_index("error")["count"]
    for error, n in tide.items():
        sel = ev.select(ds, result, "tide", {"x": error})
        assert sel.n_labels == n, error
    # background errors overlap no label at all (FiftyOne's IoU, threshold 0.1)
    sel = ev.select(ds, result, "tide", {"x": "background"})
    for sid in sel.sample_ids:
        s = ds[sid]
        bg = [d for d in s.preds.detections if d.id in set(sel.labels["preds"])]
        assert np.asarray(compute_ious(bg, s.ann_a.detections)).max(initial=0) < 0.1


def test_split_evidence_leak_pair_and_drift_samples(audited):
    ds = audited
    result = load_audit(ds, "sp")
    leaks = ev.leak_pairs(result)
    names = dict(zip(ds.values("id"), [p.rsplit("/", 1)[-1] for p in ds.values("filepath")]))
    assert {frozenset((names[a], names[b])) for a, b in zip(leaks.sample_id, leaks.other_sample_id)} >= {
        frozenset(("img0.jpg", "copy_of_img0.jpg"))}
    drift = ev.charts(result, ds)["drift"]
    assert len(drift.traces[0]["x"]) == result.tables["drift_tests"]["effect_size"].notna().sum()
    row = result.tables["drift_tests"].iloc[0]
    sel = ev.select(ds, result, "drift", {"id": "0", "idx": 0})
    assert set(sel.sample_ids) == set(ds.match(F("split").is_in([row.split_a, row.split_b])).values("id"))


def test_queue_filter_and_pages():
    f = pd.DataFrame({"kind": ["a", "b", "a", "a"], "label": ["x", "y", "y", "x"], "score": [0.2, 0.9, 0.7, 0.4],
                      "audits": [["dups"], ["ag"], ["ag", "pr"], ["pr"]]})
    rows, n, pages = ev.queue_page(f, {"kind": "a"}, page_size=2)
    assert rows["score"].tolist() == [0.7, 0.4] and n == 3 and pages == 2
    rows, _, _ = ev.queue_page(f, {"kind": "a"}, page_size=2, page=1)
    assert rows["score"].tolist() == [0.2]
    assert ev.queue_page(f, {"audits": "pr", "label": "x"})[0]["score"].tolist() == [0.4]
    assert ev.filter_choices(f, ["kind", "audits"]) == {"kind": ["a", "b"], "audits": ["ag", "dups", "pr"]}


def test_staleness_counts_samples_edited_after_the_run_not_later_audits(audited):
    ds = audited
    # the audits ran one after the other: the later runs' writes do not make the earlier stale
    assert all(ev.staleness(ds, k)["n_modified"] == 0 for k in ("dups", "ag", "pr", "sp"))
    s = ds.first()
    s.ann_b.detections[0].label = "edited"
    s.save()
    assert ds.match(F("last_modified_at") > ds.get_run_info("sp").timestamp).count() >= 1  # FiftyOne saw it
    for key in ("dups", "ag", "pr", "sp"):
        st = ev.staleness(ds, key)
        assert st["n_modified"] == 1 and "1 sample modified" in st["message"], key


def test_matrix_cell_with_one_field_split_by_an_annotator_attribute(dataset):
    """One label field, the annotator in a label attribute: the cell's labels are those two
    annotators' (FiftyOne reads the attribute back), with the stored pair table's counts."""
    import fiftyone as fo

    from iou_audit.audits.agreement import audit_agreement

    rng = np.random.default_rng(1)
    samples = []
    for k in range(6):
        dets = []
        for c in range(5):
            for ann in ("x", "y", "z"):
                if rng.uniform() < 0.15:
                    continue
                dx = 0.03 if rng.uniform() < 0.2 else 0.0
                dets.append(fo.Detection(label="A" if rng.uniform() < 0.85 else "B", annotator=ann,
                                         bounding_box=[0.25 * (c % 4) + 0.05 + dx, 0.25 * (c // 4) + 0.05, 0.15, 0.15]))
        samples.append(fo.Sample(filepath=f"/nonexistent/{k}.jpg", gt=fo.Detections(detections=dets)))
    dataset.add_samples(samples)
    audit_agreement(dataset, "gt", annotator_attr="annotator", audit_key="ag")
    result = load_audit(dataset, "ag")
    pair = result.tables["pairs"].set_index(["annotator_a", "annotator_b"]).loc[("x", "y")]
    d = ev.pair_disagreements(dataset, result, "x", "y")
    assert (d.reason == "only_a").sum() == pair.n_a - pair.matched
    assert (d.reason == "only_b").sum() == pair.n_b - pair.matched
    assert (d.reason == "class").sum() == 2 * (pair.matched - pair.matched_same_class)
    view = ev.selection_view(dataset, ev.select(dataset, result, "matrix", {"x": "y", "y": "x"}))
    assert view.count("gt.detections") == len(d) > 0
    assert set(view.distinct("gt.detections.annotator")) == {"x", "y"}

"""The review panel, driven headlessly through its real execute -> render pipeline.

Each click is one ``execute_operator`` call with ``__method__``, ``panel_id`` and ``panel_state``
(and the params the App sends: ``path``/``x``/``y``/``idx`` for a plot, ``row`` for a table row);
the view it sets is rebuilt from the ``set_view`` request and its sample ids and visible label ids
are compared with oracles computed from the dataset (planted labels, fiftyone.utils.iou,
FiftyOne's aggregations).
"""
import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest
from _panel_events import Event
from _review_data import build, label_ids, pairwise_oracle, planted_duplicates
from fiftyone import ViewField as F

from iou_audit.audits.duplicates import audit_duplicates
from iou_audit.results import load_audit
from iou_audit.review import triage


@pytest.fixture(scope="module")
def audited(shared_data, tmp_path_factory):
    ds = build(shared_data, tmp_path_factory.mktemp("panel"))
    yield ds
    ds.delete()


def _open(ds, key):
    return Event(ds, "select_audit", value=key)


ALL_FIELDS = ["ground_truth", "ann_a", "ann_b", "ann_c", "preds"]


def test_every_audit_shows_its_charts(audited):
    expected = {"dups": {"kinds"}, "ag": {"kinds", "matrix", "iou_hist", "class_agreement", "threshold_curve",
                                           "annotators"},
                "pr": {"kinds", "confusion", "per_class", "tide"}, "sp": {"kinds", "drift"}}
    for key, charts in expected.items():
        e = _open(audited, key)
        assert set(e.state["charts"]) == charts, key
        assert charts <= set(e.data) and charts <= set(e.properties), key
        for name in charts:  # every plot is clickable and calls the panel back
            assert e.properties[name]["view"].get("on_click", "").endswith("#on_chart_click"), (key, name, e.properties[name]["view"])
        assert e.state["stale"] == ""


def test_bar_click_shows_the_duplicate_pairs_only(audited):
    ds = audited
    planted, holder = planted_duplicates(ds)
    e = _open(ds, "dups")
    label = sorted(planted)[0]
    click = Event(ds, "on_chart_click", e.state, path="kinds", y="duplicate", x=len(planted[label]) // 2,
                  id="duplicate", trace=label, idx=0)
    assert click.labels(ALL_FIELDS) == {"ground_truth": planted[label]}
    assert set(click.view.values("id")) == {holder[i] for i in planted[label]}
    assert "duplicate" in click.state["showing"]


def test_heatmap_cell_shows_both_annotators_labels_where_they_disagree(audited):
    ds = audited
    expected, samples = pairwise_oracle(ds, "ann_b", "ann_c")
    e = _open(ds, "ag")
    click = Event(ds, "on_chart_click", e.state, path="matrix", x="ann_c", y="ann_b", z=0.8)
    assert click.labels(ALL_FIELDS) == expected
    assert set(click.view.values("id")) == samples
    # samples ordered by suspicion: an unmatched label (score 1) comes before a low-IoU pair
    assert len(click.view) == len(samples)


def test_matrix_metric_switch(audited):
    e = _open(audited, "ag")
    pairs = [(r["annotator_a"], r["annotator_b"], r["mean_iou"]) for r in
             load_audit(audited, "ag").tables["pairs"].to_dict("records")]
    m = Event(audited, "select_metric", e.state, value="mean_iou")
    z = m.data["matrix"][0]["z"]
    names = m.data["matrix"][0]["x"]
    for a, b, v in pairs:
        assert z[names.index(a)][names.index(b)] == round(v, 3)
    assert m.state["metric"] == "mean_iou"


def test_histogram_bin_shows_the_labels_fiftyone_counts_in_it(audited):
    ds = audited
    e = _open(ds, "ag")
    counts = e.data["iou_hist"][0]["y"]
    i = int(np.argmax(counts))
    lo, hi = np.linspace(0, 1, len(counts) + 1)[i:i + 2]
    last = i == len(counts) - 1  # the last bin holds 1.0 too
    expr = (F("ag_iou") >= lo) & ((F("ag_iou") <= hi) if last else (F("ag_iou") < hi))
    oracle = {f: label_ids(ds.filter_labels(f, expr), f) for f in ("ann_a", "ann_b", "ann_c")}
    oracle = {f: v for f, v in oracle.items() if v}
    assert counts[i] == sum(len(v) for v in oracle.values())
    click = Event(ds, "on_chart_click", e.state, path="iou_hist", x=(lo + hi) / 2, y=counts[i], idx=i, id=str(i))
    assert click.labels(ALL_FIELDS) == oracle
    assert set(click.view.values("id")) == set(ds.filter_labels("ann_a", expr).values("id")) | set(
        ds.filter_labels("ann_b", expr).values("id")) | set(ds.filter_labels("ann_c", expr).values("id"))


def test_confusion_cell_click(audited):
    ds = audited
    e = _open(ds, "pr")
    z, xs, ys = (e.data["confusion"][0][k] for k in ("z", "x", "y"))
    # the busiest off-diagonal cell between two classes
    cells = [(z[r][c], ys[r], xs[c]) for r in range(len(ys)) for c in range(len(xs))
             if ys[r] != xs[c] and "unmatched" not in (ys[r], xs[c])]
    n, g, p = max(cells)
    click = Event(ds, "on_chart_click", e.state, path="confusion", x=p, y=g, z=n)
    got = click.labels(ALL_FIELDS)
    assert len(got["ann_a"]) == len(got["preds"]) == n > 0
    # FiftyOne's class-blind evaluation matched each of those labels to one of those predictions
    matched = {m for ids in click.view.values("ann_a.detections.fo_cm_id") for m in ids}
    assert matched == got["preds"]
    assert set(click.view.distinct("ann_a.detections.label")) == {g}
    assert set(click.view.distinct("preds.detections.label")) == {p}


def test_queue_is_the_cross_audit_triage_queue(audited):
    ds = audited
    e = _open(ds, "dups")
    q = triage(ds)  # the default queue: open, confirmed, changed since review
    assert e.state["n_queue"] == len(q) > 20
    assert [r["row_id"] for r in e.state["queue"]] == q["row_id"].head(20).tolist()
    assert set(e.state["choices"]["audit"]) == {"dups", "ag", "pr", "sp"}
    cols = [c["key"] for c in e.properties["queue"]["view"]["columns"]]
    assert cols == ["rank", "kind", "label", "score", "mark"]
    assert e.properties["queue"]["view"]["componentsProps"]["table"]["sx"]["minWidth"] == 0  # fits the panel
    assert e.properties["queue"]["view"]["on_click_row"].endswith("#open_finding")
    nxt = Event(ds, "next_page", e.state)
    assert nxt.state["page"] == 1 and nxt.state["queue"][0]["rank"] == 21
    assert [r["row_id"] for r in nxt.state["queue"]] == q["row_id"].iloc[20:40].tolist()
    srt = Event(ds, "sort_queue", e.state, value="score")
    scores = [r["score"] for r in srt.state["queue"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == round(float(q["score"].max()), 3)


def test_queue_row_shows_that_rows_labels_only(audited):
    ds = audited
    planted, holder = planted_duplicates(ds)
    e = Event(ds, "filter_queue", _open(ds, "dups").state, path="filters2.filter_audit", value="dups")
    e = Event(ds, "filter_queue", e.state, path="filters.filter_kind", value="duplicate")
    # one queue row per flagged label of a planted pair (FiftyOne: the labels tagged dups:duplicate)
    tagged = label_ids(ds.filter_labels("ground_truth", F("tags").contains("dups:duplicate")), "ground_truth")
    assert tagged == set().union(*planted.values())
    assert 0 < e.state["n_queue"] <= len(tagged)
    for i, row in enumerate(e.state["queue"]):
        click = Event(ds, "open_finding", e.state, row=i)
        got = click.labels(ALL_FIELDS)
        # exactly the planted pair of that label: it and the box it duplicates, nothing else
        assert list(got) == ["ground_truth"] and len(got["ground_truth"]) == 2
        pair = [ids for ids in planted.values() if got["ground_truth"] <= ids]
        assert pair and len({holder[i] for i in got["ground_truth"]}) == 1
        assert set(click.view.values("id")) == {holder[i] for i in got["ground_truth"]}
        assert "duplicate" in click.state["detail"]


def test_queue_filters_match_fiftyone_counts(audited):
    ds = audited
    e = _open(ds, "dups")
    f = Event(ds, "filter_queue", e.state, path="filters.filter_kind", value="class_conflict")
    assert f.state["queue"] and all("class_conflict" in r["kind"] or "+" in r["kind"] for r in f.state["queue"])
    # each class_conflict row is one label tagged ag:class_conflict (FiftyOne's tag count)
    assert f.state["n_queue"] == ds.count_label_tags().get("ag:class_conflict", 0)
    back = Event(ds, "filter_queue", f.state, path="filters.filter_kind", value="(all)")
    assert back.state["n_queue"] == e.state["n_queue"]
    ann_b = Event(ds, "filter_queue", e.state, path="filters.filter_field", value="ann_b")
    assert ann_b.state["n_queue"] == len(triage(ds).query("field == 'ann_b'"))


def test_mark_not_an_error_then_clear(audited):
    ds = audited
    e = _open(ds, "dups")
    n = e.state["n_queue"]
    row = e.state["queue"][0]
    marked = Event(ds, "mark_ok", e.state, row=0)
    assert marked.state["n_queue"] == n - 1
    assert row["row_id"] not in [r["row_id"] for r in marked.state["queue"]]
    assert any(r["operator_uri"] == "notify" for r in marked.requests)
    assert ds.count_label_tags().get("review:not_an_error", 0) >= 1  # FiftyOne sees the decision's tag
    # a review mark is not a change the audits missed: no stale warning
    assert Event(ds, "refresh", marked.state).state["stale"] == ""
    reviewed = Event(ds, "filter_queue", marked.state, path="filters2.filter_state", value="not_an_error")
    assert [r["row_id"] for r in reviewed.state["queue"]] == [row["row_id"]]
    assert reviewed.state["queue"][0]["state"] == "not_an_error"
    cleared = Event(ds, "mark_clear", reviewed.state, row=0)
    assert cleared.state["n_queue"] == 0
    assert ds.count_label_tags().get("review:not_an_error", 0) == 0
    confirmed = Event(ds, "mark_error", e.state, row=0)
    assert confirmed.state["queue"][0]["row_id"] == row["row_id"] and confirmed.state["queue"][0]["state"] == "confirmed"
    Event(ds, "mark_clear", confirmed.state, row=0)


def test_leak_pairs_show_both_thumbnails_and_open_the_pair(audited):
    ds = audited
    e = _open(ds, "sp")
    names = dict(zip(ds.values("id"), [p.rsplit("/", 1)[-1] for p in ds.values("filepath")]))
    leaks = e.state["leaks"]
    pair = [i for i, leak in enumerate(leaks)
            if {names[leak["sample_id"]], names[leak["other_sample_id"]]} == {"img0.jpg", "copy_of_img0.jpg"}]
    assert pair
    i = pair[0]
    assert e.state[f"leak_{i}"]["a"].startswith("/media?filepath=") and "img0.jpg" in e.state[f"leak_{i}"]["a"] + \
        e.state[f"leak_{i}"]["b"]
    assert e.properties[f"leak_{i}"]["type"]["properties"]["a"]["view"]["name"] == "ImageView"
    click = Event(ds, "open_leak", e.state, index=i)
    assert set(click.view.values("id")) == {leaks[i]["sample_id"], leaks[i]["other_sample_id"]}
    drift = Event(ds, "open_drift", e.state, row=0)
    row = e.state["drift_tests"][0]
    a, b = row["test"].split(" ")[1].split("/")
    assert set(drift.view.values("id")) == set(ds.match(F("split").is_in([a, b])).values("id"))


def _dataset_with_duplicates(ds):
    box = [0.1, 0.1, 0.3, 0.3]
    near = [0.1005, 0.1, 0.3, 0.3]
    ds.add_samples([
        fo.Sample(filepath=f"/nonexistent/{i}.jpg", gt=fo.Detections(detections=[
            fo.Detection(label="cell", bounding_box=box),
            fo.Detection(label="cell", bounding_box=near if i < 3 else [0.6, 0.6, 0.2, 0.2]),
            fo.Detection(label="cell", bounding_box=[0.5, 0.5, 0.0, 0.1]),  # degenerate
        ])) for i in range(5)
    ])
    return audit_duplicates(ds, "gt", audit_key="dups")


def test_stale_run_says_so_and_rerun_prompts(dataset):
    result = _dataset_with_duplicates(dataset)
    e = Event(dataset, "on_load")
    assert e.state["audit_key"] == "dups" and e.state["stale"] == ""
    bars = {t["name"]: dict(zip(t["y"], t["x"])) for t in e.data["kinds"]}
    assert bars == {"cell": result.counts()} == {"cell": {"duplicate": 3, "degenerate_box": 5}}
    s = dataset.first()
    s.gt.detections[0].bounding_box = [0.2, 0.2, 0.1, 0.1]
    s.save()
    e = Event(dataset, "refresh", e.state)
    assert e.state["stale"].startswith("1 sample modified") and "stale" in e.properties
    rerun = Event(dataset, "rerun", e.state)
    prompt = [r for r in rerun.requests if r["operator_uri"] == "prompt_user_for_operation"]
    assert prompt and prompt[0]["params"]["operator_uri"] == "@iou-audit/iou-audit/audit_duplicates"
    assert prompt[0]["params"]["params"]["audit_key"] == "dups"


def test_panel_with_no_audits_says_so(dataset):
    dataset.add_sample(fo.Sample(filepath="/nonexistent/x.jpg"))
    e = Event(dataset, "on_load")
    assert e.state["audit_key"] is None and e.state["queue"] == [] and "No iou-audit runs" in e.state["header"]


def test_stale_sharded_run_offers_changed_samples_only(dataset):
    """A sharded run that kept its parts: once stale, the panel offers "Changed only", which opens
    the incremental re-run; executing it leaves the run fresh with the edit's finding gone."""
    import fiftyone.utils.iou  # noqa: F401  (the oracle below)

    from iou_audit import shards

    _dataset_with_duplicates(dataset)
    shards.run_sharded(dataset, "duplicates", "sdups", n_shards=2, keep_parts=True, label_field="gt", batch_size=2)
    e = _open(dataset, "sdups")
    assert e.state["incremental"] is True and e.state["stale"] == ""
    assert "rerun_changed" not in e.properties["buttons"]["type"]["properties"]  # fresh: nothing to re-run
    s = dataset.first()
    s.gt.detections[1].bounding_box = [0.6, 0.6, 0.2, 0.2]  # no longer a near-copy of detection 0
    s.save()
    e = Event(dataset, "refresh", e.state)
    assert e.state["stale"].startswith("1 sample modified")
    assert "rerun_changed" in e.properties["buttons"]["type"]["properties"]
    prompt = [r for r in Event(dataset, "rerun_changed", e.state).requests
              if r["operator_uri"] == "prompt_user_for_operation"]
    assert prompt[0]["params"]["operator_uri"] == "@iou-audit/iou-audit/rerun_changed_audit"
    assert prompt[0]["params"]["params"] == {"audit_key": "sdups"}
    res = foo.execute_operator("@iou-audit/iou-audit/rerun_changed_audit",
                               ctx=dict(dataset=dataset, params=prompt[0]["params"]["params"]))
    assert res.error is None, res.error_message
    assert res.result["n_changed"] == 1
    e = Event(dataset, "refresh", e.state)
    assert e.state["stale"] == ""
    # oracle: FiftyOne's own IoU of the two boxes of each sample; near-copies left: samples 1 and 2
    found = load_audit(dataset, "sdups").findings
    dup_samples = set(found.loc[found["kind"] == "duplicate", "sample_id"])
    want = {smp.id for smp in dataset if fo.utils.iou.compute_ious(
        smp.gt.detections[:1], smp.gt.detections[1:2])[0][0] > 0.9}
    assert dup_samples == want and len(want) == 2
    # a plain (unsharded) run never offers it
    e = _open(dataset, "dups")
    assert e.state["incremental"] is False

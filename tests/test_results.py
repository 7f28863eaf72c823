"""iou_audit.results: the findings model, exports, and audits stored in (and removed from) a dataset."""
import collections
import json

import numpy as np
import pandas as pd
import pytest

fo = pytest.importorskip("fiftyone")

from iou_audit.results import (  # noqa: E402
    FINDING_COLUMNS,
    AuditResult,
    audit_info,
    concat_findings,
    delete_audit,
    list_audits,
    load_audit,
    make_findings,
    save_audit,
)
from iou_audit.table import read_label_table  # noqa: E402


def test_make_findings_fixed_columns_and_dtypes():
    f = make_findings([{"kind": "duplicate", "sample_id": "s", "label_id": "l", "score": 1, "iou": 0.9}],
                      audit="duplicates", field="gt")
    assert list(f.columns) == FINDING_COLUMNS
    assert f["score"].dtype == np.float64 and f["iou"].dtype == np.float64
    assert f.loc[0, "other_label_id"] == "" and f.loc[0, "field"] == "gt"
    empty = make_findings()
    assert list(empty.columns) == FINDING_COLUMNS and len(empty) == 0
    assert empty["score"].dtype == np.float64
    tuples = make_findings([("a", "k", "s", "f", "l", "", "", "", "cat", 0.5, np.nan, "x")])
    assert tuples.loc[0, "label"] == "cat" and np.isnan(tuples.loc[0, "iou"])
    assert len(concat_findings([f, empty, f])) == 2


@pytest.mark.parametrize("bad, match", [
    ({"kind": ["x"], "audit": ["a"], "score": [1.5]}, r"score 1.5 is not in \[0, 1\]"),
    ({"kind": ["x"]}, "has no 'audit'"),
    ({"kind": ["x"], "audit": ["a"], "colour": ["red"]}, "unknown finding columns"),
])
def test_make_findings_rejects_bad_rows(bad, match):
    with pytest.raises(ValueError, match=match):
        make_findings(bad)


def _result(key="dup"):
    rows = [
        {"kind": "duplicate", "label": "RBC", "score": 0.9},
        {"kind": "duplicate", "label": "RBC", "score": 0.8},
        {"kind": "duplicate", "label": "WBC", "score": 0.7},
        {"kind": "degenerate_box", "label": "RBC", "score": 1.0},
        {"kind": "leak_exact", "label": "", "score": 0.5},
    ]
    return AuditResult("duplicates", key, {"iou_thresh": 0.7, "classes": ("RBC",)},
                       make_findings(rows, audit="duplicates"),
                       tables={"per_class": pd.DataFrame({"label": ["RBC", "WBC"], "n": [3, 1]})},
                       metrics={"n_labels": np.int64(10)})


def test_summary_counts_per_kind_and_class():
    r = _result()
    expected = collections.Counter((row["kind"], row["label"] or "(no class)") for _, row in r.findings.iterrows())
    s = r.summary()
    for (kind, label), n in expected.items():
        assert s.loc[kind, label] == n
    assert s["total"].to_dict() == dict(collections.Counter(r.findings["kind"]))
    assert int(s.drop(columns="total").to_numpy().sum()) == len(r.findings)


def test_exports_round_trip(tmp_path):
    r = _result()
    pd.testing.assert_frame_equal(pd.read_csv(r.to_csv(tmp_path / "f.csv"), keep_default_na=False,
                                              dtype={c: str for c in FINDING_COLUMNS if c not in ("score", "iou")},
                                              na_values={"score": [""], "iou": [""]}).astype(r.findings.dtypes.to_dict()),
                                  r.findings, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_parquet(r.to_parquet(tmp_path / "f.parquet")), r.findings, check_dtype=False)
    d = json.loads(r.to_json(tmp_path / "f.json").read_text())
    assert d["config"] == {"iou_thresh": 0.7, "classes": ["RBC"]} and d["metrics"] == {"n_labels": 10}
    back = AuditResult.from_json(tmp_path / "f.json")
    pd.testing.assert_frame_equal(back.findings, r.findings)
    pd.testing.assert_frame_equal(back.tables["per_class"], r.tables["per_class"])


# ------------------------------------------------------------ stored audits


@pytest.fixture
def bccd(shared_data):
    """20 real BCCD images with their VOC boxes."""
    ds = fo.Dataset.from_dir(
        dataset_type=fo.types.VOCDetectionDataset,
        data_path=str(shared_data / "bccd" / "JPEGImages"),
        labels_path=str(shared_data / "bccd" / "Annotations"),
        label_field="gt", max_samples=20, shuffle=False, progress=False,
    )
    yield ds
    ds.delete()


def _duplicates_like(ds, key="dup", kinds=("duplicate",)):
    """A result shaped like the duplicate audit's: pairs of labels in the same sample."""
    t = read_label_table(ds, "gt")
    rows = []
    for s in range(0, t.num_samples, 3):
        a, b = t.offsets[s], t.offsets[s + 1]
        if b - a >= 2:
            rows.append({"kind": kinds[s % len(kinds)], "sample_id": t.sample_ids[s], "field": "gt",
                         "label_id": t.label_id[a], "other_field": "gt", "other_label_id": t.label_id[a + 1],
                         "label": t.label[a], "score": 0.9, "iou": 0.95})
    rows.append({"kind": "leak_exact", "sample_id": t.sample_ids[1], "other_sample_id": t.sample_ids[2], "score": 0.5})
    findings = make_findings(rows, audit="duplicates")
    attrs = {"gt": {"iou": {r["label_id"]: r["iou"] for r in rows if "label_id" in r}}}
    return t, AuditResult("duplicates", key, {"iou_thresh": 0.7}, findings), attrs


def _label_docs(ds):
    return {str(d["_id"]): d for doc in ds._sample_collection.find({}, {"gt": 1})
            for d in ((doc.get("gt") or {}).get("detections") or [])}


def test_save_load_list_delete_audit(bccd):
    schema_before = set(bccd.get_field_schema(flat=True))
    labels_before = _label_docs(bccd)
    t, result, attrs = _duplicates_like(bccd)
    f = result.findings
    manifest = save_audit(bccd, result, label_attributes=attrs, sample_fields={"score": {t.sample_ids[0]: 0.25}})

    # tags on each finding's label and other label, once
    tagged = set(f.loc[f["label_id"] != "", "label_id"]) | set(f.loc[f["other_label_id"] != "", "other_label_id"])
    assert set(bccd.match_labels(tags="dup:duplicate").values("gt.detections.id", unwind=True)) >= tagged
    assert bccd.count_label_tags() == {"dup:duplicate": len(tagged)}
    assert set(bccd.select_labels(tags="dup:duplicate").values("gt.detections.id", unwind=True)) == tagged
    # label attribute, schema
    assert isinstance(bccd.get_field("gt.detections.dup_iou"), fo.FloatField)
    got = {lid: v for lid, v in zip(bccd.values("gt.detections.id", unwind=True),
                                     bccd.values("gt.detections.dup_iou", unwind=True)) if v is not None}
    assert got == attrs["gt"]["iou"]
    # per-sample counts
    counts = collections.Counter(f["sample_id"][f["kind"] == "duplicate"])
    assert dict(zip(*bccd.match(fo.ViewField("dup_duplicate") > 0).values(["id", "dup_duplicate"]))) == counts
    assert bccd[t.sample_ids[0]].dup_score == 0.25
    assert bccd[t.sample_ids[1]].dup_findings == 1 + counts.get(t.sample_ids[1], 0)
    # saved views
    assert set(bccd.load_saved_view("dup-duplicate").values("id")) == set(counts)
    assert set(bccd.load_saved_view("dup-leak_exact").values("id")) == {t.sample_ids[1], t.sample_ids[2]}
    assert manifest["saved_views"] == ["dup-duplicate", "dup-leak_exact"]
    # the run
    assert list_audits(bccd) == ["dup"] and bccd.list_runs() == ["dup"]
    assert audit_info(bccd, "dup")["counts"] == dict(collections.Counter(f["kind"]))
    loaded = load_audit(bccd, "dup")
    pd.testing.assert_frame_equal(loaded.findings, f)
    assert loaded.config == {"iou_thresh": 0.7} and loaded.audit == "duplicates"
    # originals untouched: every original key/value of every label is as before
    labels_after = _label_docs(bccd)
    for lid, before in labels_before.items():
        assert {k: v for k, v in labels_after[lid].items() if k not in ("tags", "dup_iou")} == \
               {k: v for k, v in before.items() if k != "tags"}

    delete_audit(bccd, "dup")
    assert set(bccd.get_field_schema(flat=True)) == schema_before
    assert _label_docs(bccd) == labels_before
    assert bccd.list_saved_views() == [] and bccd.list_runs() == [] and list_audits(bccd) == []
    assert bccd.count_label_tags() == {}


def test_rerun_same_key_replaces_without_duplicating(bccd):
    _, first, attrs = _duplicates_like(bccd, kinds=("duplicate", "contained"))
    save_audit(bccd, first, label_attributes=attrs)
    _, second, attrs2 = _duplicates_like(bccd, kinds=("duplicate",))
    save_audit(bccd, second, label_attributes=attrs2)
    tags = bccd.values("gt.detections.tags", unwind=True)
    assert all(t.count("dup:duplicate") <= 1 for t in tags)
    assert "dup:contained" not in bccd.count_label_tags()
    assert bccd.get_field("dup_contained") is None and not bccd.has_saved_view("dup-contained")
    assert list_audits(bccd) == ["dup"]
    pd.testing.assert_frame_equal(load_audit(bccd, "dup").findings, second.findings)


def test_collisions_change_nothing(bccd):
    _, result, attrs = _duplicates_like(bccd)
    bccd.add_sample_field("dup_findings", fo.IntField)
    docs_before = list(bccd._sample_collection.find({}))
    with pytest.raises(ValueError, match="'dup_findings' already exists"):
        save_audit(bccd, result, label_attributes=attrs)
    assert list(bccd._sample_collection.find({})) == docs_before
    assert bccd.list_runs() == [] and bccd.list_saved_views() == []
    with pytest.raises(ValueError, match="valid Python identifier"):
        save_audit(bccd, AuditResult("duplicates", "my-key"))
    with pytest.raises(ValueError, match="no iou-audit run"):
        load_audit(bccd, "nope")
    bccd.register_run("other", bccd.init_run(foo=1))
    with pytest.raises(ValueError, match="another"):
        save_audit(bccd, AuditResult("duplicates", "other"))
    with pytest.raises(ValueError, match="no iou-audit run"):
        delete_audit(bccd, "other")
    assert list_audits(bccd) == []


def test_save_on_a_view(bccd):
    view = bccd.skip(5).limit(10)
    _, result, attrs = _duplicates_like(view)
    save_audit(view, result, label_attributes=attrs)
    outside = bccd.limit(5)
    assert outside.count_label_tags() == {} and set(outside.values("dup_findings")) == {None}
    assert set(bccd.load_saved_view("dup-duplicate").values("id")) <= set(view.values("id"))
    delete_audit(bccd, "dup")
    assert bccd.count_label_tags() == {}


def test_audit_without_findings(bccd):
    save_audit(bccd, AuditResult("duplicates", "clean", {"iou_thresh": 0.7}))
    assert list_audits(bccd) == ["clean"] and bccd.list_saved_views() == [] and bccd.count_label_tags() == {}
    assert len(load_audit(bccd, "clean").findings) == 0
    assert audit_info(bccd, "clean")["counts"] == {}
    delete_audit(bccd, "clean")
    assert bccd.list_runs() == []


def test_docstring_examples_hold():
    import doctest

    import iou_audit.results.findings
    import iou_audit.results.result
    import iou_audit.table.model

    for module in (iou_audit.results.findings, iou_audit.results.result, iou_audit.table.model):
        failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert attempted > 0 and failed == 0, module.__name__


def test_other_field_labels_are_tagged_in_their_own_field(bccd):
    bccd.clone_sample_field("gt", "gt2")
    t1, t2 = read_label_table(bccd, "gt"), read_label_table(bccd, "gt2")
    f = make_findings([{"kind": "low_agreement", "sample_id": t1.sample_ids[0], "field": "gt", "label_id": t1.label_id[0],
                        "other_field": "gt2", "other_label_id": t2.label_id[1], "score": 0.4, "iou": 0.6}], audit="agreement")
    save_audit(bccd, AuditResult("agreement", "agr", {}, f),
               label_attributes={"gt": {"iou": {t1.label_id[0]: 0.6}}, "gt2": {"iou": {t2.label_id[1]: 0.6}}})
    assert bccd.count_label_tags("gt") == {"agr:low_agreement": 1}
    assert bccd.count_label_tags("gt2") == {"agr:low_agreement": 1}
    assert bccd.select_labels(tags="agr:low_agreement", fields="gt").values("gt.detections.id", unwind=True) == [t1.label_id[0]]
    assert bccd.select_labels(tags="agr:low_agreement", fields="gt2").values("gt2.detections.id", unwind=True) == [t2.label_id[1]]
    assert set(bccd.load_saved_view("agr-low_agreement").values("id")) == {t1.sample_ids[0]}
    delete_audit(bccd, "agr")
    assert bccd.count_label_tags() == {} and bccd.get_field("gt2.detections.agr_iou") is None


def test_save_touches_only_samples_with_results_in_one_update_each(bccd):
    def stamps():
        return {str(d["_id"]): d["last_modified_at"] for d in bccd._sample_collection.find({}, {"last_modified_at": 1})}

    def sample_updates():
        coll = bccd._sample_collection
        totals = coll.database.client.admin.command("top")["totals"]
        return totals.get(f"{coll.database.name}.{coll.name}", {}).get("update", {}).get("count", 0)

    t, result, attrs = _duplicates_like(bccd)
    f = result.findings
    owner = dict(zip(t.label_id, t.row_sample_id))
    expected = ({owner[i] for i in f["label_id"] if i} | {owner[i] for i in f["other_label_id"] if i}
                | set(f["sample_id"]) - {""})
    before, updates_before = stamps(), sample_updates()
    save_audit(bccd, result, label_attributes=attrs)
    after = stamps()
    assert {k for k in after if after[k] != before[k]} == expected
    # labels' attributes and tags of the field plus the per-sample counts: one update per sample
    assert sample_updates() - updates_before == len(expected)


def test_runs_stored_with_findings_as_columns_still_load(bccd):
    """Runs saved before findings were stored as one JSON string hold ``findings={col: list}``."""
    from iou_audit.results.findings import FINDING_COLUMNS as COLS

    _, result, attrs = _duplicates_like(bccd)
    manifest = save_audit(bccd, result, label_attributes=attrs)
    old = bccd.init_run_results("dup", findings={c: result.findings[c].tolist() for c in COLS}, tables={},
                                metrics={}, written=manifest)
    bccd.save_run_results("dup", old, overwrite=True, cache=False)
    pd.testing.assert_frame_equal(load_audit(bccd, "dup").findings, result.findings)
    delete_audit(bccd, "dup")
    assert bccd.count_label_tags() == {} and bccd.get_field("gt.detections.dup_iou") is None


def test_runs_stored_with_findings_as_one_json_string_still_load(bccd):
    """Runs saved before findings were stored compressed hold ``findings_json`` (plain JSON text)."""
    import json

    from iou_audit.results.findings import FINDING_COLUMNS as COLS

    _, result, attrs = _duplicates_like(bccd)
    manifest = save_audit(bccd, result, label_attributes=attrs)
    old = bccd.init_run_results("dup", findings_json=json.dumps({c: result.findings[c].tolist() for c in COLS}),
                                tables_json="{}", metrics={}, written=manifest)
    bccd.save_run_results("dup", old, overwrite=True, cache=False)
    pd.testing.assert_frame_equal(load_audit(bccd, "dup").findings, result.findings)
    delete_audit(bccd, "dup")
    assert bccd.count_label_tags() == {} and bccd.get_field("gt.detections.dup_iou") is None


def test_bad_label_ids_change_nothing(bccd):
    _, result, attrs = _duplicates_like(bccd)
    attrs["gt"]["iou"]["not-a-label-id"] = 0.5
    docs_before = list(bccd._sample_collection.find({}))
    schema_before = set(bccd.get_field_schema(flat=True))
    with pytest.raises(ValueError, match="'not-a-label-id' is not a label id"):
        save_audit(bccd, result, label_attributes=attrs)
    assert list(bccd._sample_collection.find({})) == docs_before
    assert set(bccd.get_field_schema(flat=True)) == schema_before
    assert bccd.list_runs() == [] and bccd.list_saved_views() == []

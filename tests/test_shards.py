"""Sharded runs (iou_audit.shards): merged == single-process, exactly; failures refuse cleanly.

The oracle is the audit's own single-process run on the same dataset (not a number of ours):
every stored sample document (label attributes, tags, per-sample fields, a consensus field), the
stored run (findings, tables, metrics, config) and the saved views must be identical after the
sharded run under the same key.
"""
import importlib.util
import pathlib

import numpy as np
import pandas as pd
import pytest
from incremental_support import same

REPO = pathlib.Path(__file__).resolve().parents[1]


def _bench_scale():
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "bench" / "bench_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scale_ds(tmp_path_factory):
    """2,000 samples of bench_scale's generator: annotators a, b, c and predictions pred (boxes);
    about 120,000 labels, so an agreement shard of 1,000 samples stores a part above 16 MB."""
    import fiftyone as fo

    bench = _bench_scale()
    image_dir = str(tmp_path_factory.mktemp("img"))
    bench.ensure_images(image_dir, 2000)  # 32 x 32 PNGs; every 1,000th sample reuses the previous file
    ds = bench.build_dataset("shards-test", 2000, image_dir)
    ds.persistent = True  # loaded by name in the worker processes
    yield ds
    fo.delete_dataset(ds.name)


def snapshot(ds, key: str) -> dict:
    """Everything a run leaves in the dataset: raw sample documents, the stored run, saved views."""
    from iou_audit import fiftyone_private as fop
    from iou_audit.results import load_audit

    docs = list(fop.raw_sample_collection(ds).find({}, sort=[("_id", 1)]))
    for d in docs:
        d.pop("last_modified_at")  # the write time, not a result
        for det in (d.get("cons") or {}).get("detections", []):
            det.pop("_id")  # new consensus labels get fresh ids in every run, sharded or not
    ds.reload()
    r = load_audit(ds, key)
    views = {name: [{k: v for k, v in stage.items() if k != "_uuid"} for stage in ds.load_saved_view(name)._serialize()]
             for name in ds.list_saved_views() if name.startswith(key)}
    schema = {k: str(v) for k, v in ds.get_field_schema(flat=True).items()}
    return {"docs": docs, "findings": r.findings, "tables": r.tables, "metrics": r.metrics, "config": r.config,
            "views": views, "schema": schema}


def single_then_sharded(ds, audit, key, params, n_shards=3, single=None):
    from iou_audit import shards
    from iou_audit.results import delete_audit

    single(ds, key)
    want = snapshot(ds, key)
    delete_audit(ds, key)
    shards.run_sharded(ds, audit, key, n_shards=n_shards, keep_parts=True, **params)
    got = snapshot(ds, key)
    plan = shards.list_plans(ds, key)[0]
    delete_audit(ds, key)  # and its kept parts
    assert not shards.list_plans(ds, key)
    got["plan"] = plan
    return want, got


def test_duplicates_sharded_equals_single(scale_ds):
    from iou_audit.audits.duplicates import audit_duplicates

    params = dict(label_field="a", batch_size=250)
    want, got = single_then_sharded(scale_ds, "duplicates", "dups", params,
                                    single=lambda ds, key: audit_duplicates(ds, "a", batch_size=250, audit_key=key))
    assert len(want["findings"]) > 100  # the generator plants shifted copies
    # shards start at multiples of batch_size, so each reads the batches one pass reads
    assert [(x["n_samples"]) for x in got.pop("plan")["shards"]] == [750, 750, 500]
    same(want, got)


def test_agreement_sharded_equals_single(scale_ds):
    from iou_audit.audits.agreement import audit_agreement

    params = dict(label_fields=["a", "b", "c"], batch_size=250, consensus_field="cons")
    want, got = single_then_sharded(
        scale_ds, "agreement", "agr", params, n_shards=2,
        single=lambda ds, key: audit_agreement(ds, ["a", "b", "c"], batch_size=250, consensus_field="cons",
                                               audit_key=key))
    m = want["metrics"]
    assert 0 < m["alpha_nominal"] < 1 and 0 < m["map"] < 1  # global statistics present, not trivial
    assert any("cons" in d for d in want["docs"])
    sizes = [x["bytes"] for x in got.pop("plan")["shards"]]
    # parts of about 13 KB per sample (test_part_above_the_document_limit_round_trips: above 16 MB)
    assert len(sizes) == 2 and min(sizes) > 8 * 2**20, sizes
    same(want, got)


def test_part_above_the_document_limit_round_trips(dataset):
    """A part above MongoDB's 16 MB document limit is stored (GridFS) and read back whole."""
    from bson import ObjectId

    from iou_audit.shards import store

    part = {"values": np.random.default_rng(0).random(2_300_000), "names": ["a", "b"]}  # 18.4 MB pickled
    file_id, size = store.put_part(ObjectId(), 0, part)
    try:
        assert size > 16 * 2**20
        back = store.get_part(file_id)
        np.testing.assert_array_equal(back["values"], part["values"])
        assert back["names"] == part["names"]
    finally:
        store.delete_part(file_id)


def test_predictions_sharded_equals_single(scale_ds):
    from iou_audit.audits.predictions import audit_predictions

    want, got = single_then_sharded(scale_ds, "predictions", "pred", dict(pred_field="pred", gt_field="a"),
                                    single=lambda ds, key: audit_predictions(ds, "pred", "a", audit_key=key))
    assert 0 < want["metrics"]["AP"] < 1
    got.pop("plan")
    same(want, got)


@pytest.fixture
def small_ds(dataset):
    """40 samples with 3 boxes each (two of them overlapping duplicates) in field ``gt``."""
    import fiftyone as fo

    samples = []
    for i in range(40):
        x = 0.01 * (i % 20)
        dets = [fo.Detection(label="cat", bounding_box=[x, 0.1, 0.3, 0.3]),
                fo.Detection(label="cat", bounding_box=[x + 0.005, 0.1, 0.3, 0.3]),
                fo.Detection(label="dog", bounding_box=[0.6, 0.6, 0.2, 0.2])]
        samples.append(fo.Sample(filepath=f"/tmp/shards-small-{i}.png", gt=fo.Detections(detections=dets)))
    dataset.add_samples(samples)
    return dataset


def test_failed_shard_refuses_merge_and_writes_nothing(small_ds):
    from iou_audit import fiftyone_private as fop
    from iou_audit import shards
    from iou_audit.audits.duplicates import audit_duplicates
    from iou_audit.results import list_audits, load_audit

    before = audit_duplicates(small_ds, "gt", audit_key="dups")  # an earlier run under the key
    # shard_writes=False: the merge writes everything, so a failed shard leaves the earlier run as it was
    plan_id = shards.plan_audit(small_ds, "duplicates", "dups", n_shards=2, label_field="gt", batch_size=10,
                                shard_writes=False)
    plan = shards.get_plan(plan_id)
    bad = plan["shards"][1]["lo"]
    # a sample of shard 1 whose label list is not a list of labels: reading it fails, naming it
    from bson import ObjectId

    fop.raw_sample_collection(small_ds).update_one({"_id": ObjectId(bad)}, {"$set": {"gt.detections": "oops"}})
    shards.run_shard(small_ds, plan_id, 0)
    with pytest.raises(Exception) as err:
        shards.run_shard(small_ds, plan_id, 1)
    assert bad in str(err.value)
    with pytest.raises(shards.ShardError, match=r"shard 1 failed \(.*" + bad + r".*No run was written"):
        shards.merge_plan(small_ds, plan_id)
    # nothing half-written: the earlier run is still the complete one, its findings unchanged
    assert list_audits(small_ds, include_incomplete=True) == ["dups"]
    pd.testing.assert_frame_equal(load_audit(small_ds, "dups").findings, before.findings)
    assert shards.get_plan(plan_id)["shards"][1]["state"] == "failed"
    shards.delete_plan(plan_id)


def raw_docs(ds) -> list:
    from iou_audit import fiftyone_private as fop

    docs = list(fop.raw_sample_collection(ds).find({}, sort=[("_id", 1)]))
    for d in docs:
        d.pop("last_modified_at")
    return docs


def test_failed_shard_leaves_an_incomplete_run_then_completes(small_ds):
    """Shards that write: the first write replaces the earlier run with a running one; a failed
    shard leaves it incomplete (never listed, load refuses); re-running the shard and merging
    completes it, equal to the single-process run."""
    from bson import ObjectId

    from iou_audit import fiftyone_private as fop
    from iou_audit import shards
    from iou_audit.audits.duplicates import audit_duplicates
    from iou_audit.results import list_audits, load_audit

    before = audit_duplicates(small_ds, "gt", audit_key="dups", batch_size=10)
    want = snapshot(small_ds, "dups")
    plan_id = shards.plan_audit(small_ds, "duplicates", "dups", n_shards=2, label_field="gt", batch_size=10)
    assert shards.get_plan(plan_id)["shard_writes"]
    bad = shards.get_plan(plan_id)["shards"][1]["lo"]
    coll = fop.raw_sample_collection(small_ds)
    good = coll.find_one({"_id": ObjectId(bad)})["gt"]["detections"]
    coll.update_one({"_id": ObjectId(bad)}, {"$set": {"gt.detections": "oops"}})
    shards.run_shard(small_ds, plan_id, 0)
    with pytest.raises(Exception, match=bad):
        shards.run_shard(small_ds, plan_id, 1)
    with pytest.raises(shards.ShardError, match=r"shard 1 failed .*The run stays incomplete"):
        shards.merge_plan(small_ds, plan_id)
    assert list_audits(small_ds) == [] and list_audits(small_ds, include_incomplete=True) == ["dups"]
    with pytest.raises(ValueError, match="interrupted"):
        load_audit(small_ds, "dups")
    coll.update_one({"_id": ObjectId(bad)}, {"$set": {"gt.detections": good}})
    shards.run_shard(small_ds, plan_id, 1)
    shards.merge_plan(small_ds, plan_id)
    pd.testing.assert_frame_equal(load_audit(small_ds, "dups").findings, before.findings)
    same(want, snapshot(small_ds, "dups"))
    shards.delete_plan(plan_id)


def test_plan_holds_the_key_until_its_merge(small_ds):
    """From a shard's first write to the end of the merge the key is the plan's: a single-process
    run or another plan's shards are refused, naming the plan; the merge releases it."""
    from iou_audit import shards
    from iou_audit.audits.duplicates import audit_duplicates

    audit_duplicates(small_ds, "gt", audit_key="dups", batch_size=10)
    want = snapshot(small_ds, "dups")
    plan_id = shards.plan_audit(small_ds, "duplicates", "dups", n_shards=2, label_field="gt", batch_size=10)
    other = shards.plan_audit(small_ds, "duplicates", "dups", n_shards=2, label_field="gt", batch_size=10)
    shards.run_shard(small_ds, plan_id, 0)
    with pytest.raises(ValueError, match=f"being written by the shards of sharded run plan {plan_id}"):
        audit_duplicates(small_ds, "gt", audit_key="dups", batch_size=10)
    with pytest.raises(ValueError, match=f"sharded run plan {plan_id}"):
        shards.run_shard(small_ds, other, 0)
    shards.delete_plan(other)
    shards.run_shard(small_ds, plan_id, 1)
    shards.merge_plan(small_ds, plan_id)
    same(want, snapshot(small_ds, "dups"))
    audit_duplicates(small_ds, "gt", audit_key="dups", batch_size=10)  # released
    shards.delete_plan(plan_id)


def test_interrupted_sharded_run_is_deleted_exactly(small_ds):
    """A sharded run stopped after a shard wrote (no merge) is removed exactly by delete_audit:
    the sample documents and the schema are as before the run."""
    from iou_audit import shards
    from iou_audit.audits.duplicates import audit_duplicates
    from iou_audit.results import delete_audit, list_audits

    docs = raw_docs(small_ds)
    schema = {k: str(v) for k, v in small_ds.get_field_schema(flat=True).items()}
    plan_id = shards.plan_audit(small_ds, "duplicates", "dups", n_shards=2, label_field="gt", batch_size=10)
    shards.run_shard(small_ds, plan_id, 0)
    assert raw_docs(small_ds) != docs  # shard 0 wrote its samples' values
    assert list_audits(small_ds, include_incomplete=True) == ["dups"] and list_audits(small_ds) == []
    delete_audit(small_ds, "dups")  # the plan keeps the key until it is deleted (below)
    small_ds.reload()
    assert raw_docs(small_ds) == docs
    assert {k: str(v) for k, v in small_ds.get_field_schema(flat=True).items()} == schema
    assert list_audits(small_ds, include_incomplete=True) == []
    shards.delete_plan(plan_id)
    audit_duplicates(small_ds, "gt", audit_key="dups", batch_size=10)


def test_missing_shard_refuses_merge(small_ds):
    from iou_audit import shards
    from iou_audit.results import list_audits

    plan_id = shards.plan_audit(small_ds, "duplicates", "dups", n_shards=2, label_field="gt", batch_size=10)
    shards.run_shard(small_ds, plan_id, 1)
    with pytest.raises(shards.ShardError, match="shard 0 is pending"):
        shards.merge_plan(small_ds, plan_id)
    # shard 1 wrote its samples' values under the running run: incomplete until the merge
    assert list_audits(small_ds) == [] and list_audits(small_ds, include_incomplete=True) == ["dups"]
    assert not shards.claim_merge(plan_id)  # the merge is not queued while a shard is missing
    shards.run_shard(small_ds, plan_id, 0)
    assert shards.claim_merge(plan_id) and not shards.claim_merge(plan_id)  # exactly one claim
    r = shards.merge_plan(small_ds, plan_id)
    assert r.metrics["n_duplicate"] == 40
    shards.delete_plan(plan_id)


def test_plan_refuses_a_sorted_view_and_changed_samples(small_ds):
    from iou_audit import shards

    with pytest.raises(ValueError, match="id order"):
        shards.plan_audit(small_ds.sort_by("filepath", reverse=True), "duplicates", "dups", label_field="gt")
    with pytest.raises(ValueError, match="cannot run in shards yet"):
        shards.plan_audit(small_ds, "nope", "dups")
    with pytest.raises(ValueError, match="gt"):  # an existing field is never overwritten by a consensus
        shards.plan_audit(small_ds, "agreement", "agr", label_fields=["gt", "gt2"], consensus_field="gt")
    assert shards.list_plans(small_ds) == []
    plan_id = shards.plan_audit(small_ds, "duplicates", "dups", n_shards=2, label_field="gt", batch_size=10)
    small_ds.delete_samples(small_ds.first())
    with pytest.raises(shards.ShardError, match="view changed"):
        shards.run_shard(small_ds, plan_id, 0)
    shards.delete_plan(plan_id)


def test_splits_sharded_equals_single(scale_ds):
    from bson import ObjectId

    from iou_audit import fiftyone_private as fop
    from iou_audit.audits.splits import audit_splits

    # a copy whose two sides lie in different shards: sample 1,500 (last shard) gets sample 10's file
    # and another split
    ids, paths, splits = scale_ds.values("id"), scale_ds.values("filepath"), scale_ds.values("split")
    other = "test" if splits[10] != "test" else "val"
    fop.raw_sample_collection(scale_ds).update_one({"_id": ObjectId(ids[1500])},
                                                   {"$set": {"filepath": paths[10], "split": other}})
    want, got = single_then_sharded(scale_ds, "splits", "spl", dict(split_field="split", label_field="a"),
                                    single=lambda ds, key: audit_splits(ds, split_field="split", label_field="a",
                                                                        audit_key=key))
    kinds = set(want["findings"]["kind"])
    assert "leak_exact" in kinds, kinds
    exact = want["findings"][want["findings"]["kind"] == "leak_exact"]
    assert {ids[10], ids[1500]} in [{a, b} for a, b in zip(exact.sample_id, exact.other_sample_id)]
    assert len(want["tables"]["drift_tests"]) > 0
    got.pop("plan")
    fop.raw_sample_collection(scale_ds).update_one({"_id": ObjectId(ids[1500])},
                                                   {"$set": {"filepath": paths[1500], "split": splits[1500]}})
    same(want, got)


PLUGIN = "@iou-audit/iou-audit"


def _run_state(doc) -> str:
    return str(doc.run_state).split(".")[-1].lower()


def test_operators_queue_shards_and_the_last_shard_queues_the_merge(scale_ds):
    """Through the real operators and FiftyOne's delegated-operation queue, executed in this process."""
    import fiftyone.operators as foo
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService

    from iou_audit.audits.predictions import audit_predictions
    from iou_audit.results import delete_audit

    audit_predictions(scale_ds, "pred", "a", audit_key="pred_ops")
    want = snapshot(scale_ds, "pred_ops")
    delete_audit(scale_ds, "pred_ops")
    res = foo.execute_operator(f"{PLUGIN}/run_sharded_audit", ctx=dict(dataset=scale_ds, params={
        "audit": "predictions", "pred_field": "pred", "gt_field": "a", "audit_key": "pred_ops", "n_shards": 4}))
    out = res.result
    assert out["n_shards"] == 4 and len(out["operation_ids"]) == 4
    dos = DelegatedOperationService()
    queued = dos.get_queued_operations(operator=f"{PLUGIN}/audit_shard", dataset_name=scale_ds.name)
    assert len(queued) == 4
    assert not dos.get_queued_operations(operator=f"{PLUGIN}/merge_audit_shards", dataset_name=scale_ds.name)
    dos.execute_queued_operations(operator=f"{PLUGIN}/audit_shard", dataset_name=scale_ds.name)
    shard_docs = [dos.get(ObjectId(i)) for i in out["operation_ids"]]
    assert [_run_state(d) for d in shard_docs] == ["completed"] * 4, [d.result for d in shard_docs]
    merges = [d.result.result["merge_operation_id"] for d in shard_docs if d.result.result["merge_operation_id"]]
    assert len(merges) == 1  # queued once, by the shard that completed the plan
    dos.execute_queued_operations(operator=f"{PLUGIN}/merge_audit_shards", dataset_name=scale_ds.name)
    merge_doc = dos.get(ObjectId(merges[0]))
    assert _run_state(merge_doc) == "completed", merge_doc.result
    got = snapshot(scale_ds, "pred_ops")
    delete_audit(scale_ds, "pred_ops")
    same(want, got)
    for d in shard_docs + [merge_doc]:
        dos.delete_operation(d.id)
    shards_plans(scale_ds, "pred_ops")


def shards_plans(ds, key) -> None:
    from iou_audit import shards

    for plan in shards.list_plans(ds, key):
        shards.delete_plan(plan["_id"])


def test_two_delegated_workers_end_to_end(scale_ds, tmp_path):
    """The sharded agreement audit queued by the operator, run by 2 `fiftyone delegated launch`
    worker processes, merged by the worker that takes the merge: identical to the single-process run."""
    import fiftyone.operators as foo

    from iou_audit.audits.agreement import audit_agreement
    from iou_audit.results import delete_audit
    from iou_audit.shards.workers import start_workers, stop_workers, wait_merged

    audit_agreement(scale_ds, ["a", "b", "c"], audit_key="agr_e2e")
    want = snapshot(scale_ds, "agr_e2e")
    delete_audit(scale_ds, "agr_e2e")
    workers = start_workers(2, tmp_path, repo=REPO)
    try:
        res = foo.execute_operator(f"{PLUGIN}/run_sharded_audit", ctx=dict(dataset=scale_ds, params={
            "audit": "agreement", "label_fields": ["a", "b", "c"], "audit_key": "agr_e2e", "n_shards": 4}))
        plan = wait_merged(res.result["plan_id"], timeout=900)
    finally:
        stop_workers(workers)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for _, p in workers)
    assert plan["merge"]["state"] == "done", f"{plan['merge']} {[s['error'] for s in plan['shards']]}\n{logs}"
    assert [s["state"] for s in plan["shards"]] == ["done"] * 4
    pids = {s["worker"] for s in plan["shards"]}
    assert len(pids) == 2, f"both workers computed shards: {pids}"  # two processes, not one
    assert all(proc.poll() is not None for proc, _ in workers)
    got = snapshot(scale_ds, "agr_e2e")
    delete_audit(scale_ds, "agr_e2e")
    shards_plans(scale_ds, "agr_e2e")
    same(want, got)


@pytest.fixture
def edit_ds(tmp_path):
    """800 samples of bench_scale's generator, to edit, add to and delete from."""
    import fiftyone as fo

    ds = _bench_scale().build_dataset("shards-incremental", 800, str(tmp_path))
    yield ds
    fo.delete_dataset(ds.name)


INCREMENTAL = {
    "duplicates": (dict(label_field="a", batch_size=100),
                   lambda ds, key: __import__("iou_audit.audits.duplicates", fromlist=["x"]).audit_duplicates(
                       ds, "a", batch_size=100, audit_key=key)),
    "agreement": (dict(label_fields=["a", "b", "c"], batch_size=100),
                  lambda ds, key: __import__("iou_audit.audits.agreement", fromlist=["x"]).audit_agreement(
                      ds, ["a", "b", "c"], batch_size=100, audit_key=key)),
    "predictions": (dict(pred_field="pred", gt_field="a"),
                    lambda ds, key: __import__("iou_audit.audits.predictions", fromlist=["x"]).audit_predictions(
                        ds, "pred", "a", audit_key=key)),
}


@pytest.mark.parametrize("audit", sorted(INCREMENTAL))
def test_incremental_rerun_equals_full_rerun(edit_ds, audit):
    """Edit a label, delete a sample, add samples; the incremental re-run recomputes only the
    shards holding them and the merged run equals a full re-run (global statistics included)."""
    import fiftyone as fo

    from iou_audit import shards
    from iou_audit.results import delete_audit
    from iou_audit.shards.incremental import rerun_changed

    params, full = INCREMENTAL[audit]
    key = f"inc_{audit}"
    shards.run_sharded(edit_ds, audit, key, n_shards=4, keep_parts=True, **params)
    ids = edit_ds.values("id")
    sample = edit_ds[ids[250]]  # shard 1 (samples 200-399)
    det = sample.a.detections[0]
    det.bounding_box = [0.1, 0.1, 0.2, 0.2]
    det.label = "e"
    sample.save()
    edit_ds.delete_samples(ids[450])  # shard 2
    src = edit_ds[ids[10]]
    edit_ds.add_samples([fo.Sample(filepath=f"/tmp/shards-new-{i}.png", split="train", **{
        f: fo.Detections(detections=[fo.Detection(label=d.label, bounding_box=list(d.bounding_box),
                                                  confidence=d.confidence) for d in src[f].detections])
        for f in ("a", "b", "c", "pred")}) for i in range(3)])
    result, info = rerun_changed(edit_ds, key)
    print(audit, info)
    assert info["n_changed"] == 4  # the edited sample and the 3 new ones
    assert info["n_samples"] == 802
    reused = [s for s in shards.get_plan(info["plan_id"])["shards"] if s["reused"]]
    assert reused and reused[0]["index"] == 0  # shard 0 was not read again
    assert info["n_recomputed"] < info["n_shards"]
    got = snapshot(edit_ds, key)
    delete_audit(edit_ds, key)
    full(edit_ds, key)
    want = snapshot(edit_ds, key)
    delete_audit(edit_ds, key)
    shards_plans(edit_ds, key)
    if audit == "agreement":
        assert 0 < want["metrics"]["alpha_nominal"] < 1 and 0 < want["metrics"]["map"] < 1
    if audit == "predictions":
        assert 0 < want["metrics"]["AP"] < 1
    same(want, got)
    # nothing left behind: the superseded plan's parts (but the reused ones) went with it, the rest with
    # delete_plan
    from bson import ObjectId

    from iou_audit.shards import store

    left = store._db()[f"{store.BUCKET}.files"].count_documents(
        {"plan_id": {"$in": [ObjectId(info["plan_id"]), *[p["_id"] for p in shards.list_plans(edit_ds)]]}})
    reused_left = store._db()[f"{store.BUCKET}.files"].count_documents({"_id": {"$in": [s["file_id"] for s in reused]}})
    assert left == 0 and reused_left == 0


def test_rerun_changed_operator(edit_ds):
    import fiftyone.operators as foo

    from iou_audit import shards
    from iou_audit.results import delete_audit

    params, full = INCREMENTAL["agreement"]
    shards.run_sharded(edit_ds, "agreement", "inc_op", n_shards=4, keep_parts=True, **params)
    sample = edit_ds[edit_ds.values("id")[700]]  # shard 3
    sample.b.detections.pop(0)
    sample.save()
    res = foo.execute_operator(f"{PLUGIN}/rerun_changed_audit", ctx=dict(dataset=edit_ds, params={"audit_key": "inc_op"}))
    assert res.result == {"audit_key": "inc_op", "n_changed": 1, "n_recomputed": 1, "n_shards": 4}
    got = snapshot(edit_ds, "inc_op")
    delete_audit(edit_ds, "inc_op")
    full(edit_ds, "inc_op")
    want = snapshot(edit_ds, "inc_op")
    shards_plans(edit_ds, "inc_op")
    same(want, got)

"""Shards that write their own samples' values under the running run; the merge completes the run.

In a sharded run (``plan_audit(..., shard_writes=True)``, the default of ``run_sharded`` and the
``run_sharded_audit`` operator) each shard, once its part is stored, writes what depends on its
own samples only (the audit's ``local`` output, ``adapters``): duplicates its label values, tags
and per-sample counts; agreement its label values, per-image values, tags, counts and consensus;
predictions the matching's label values. The merge then computes the global statistics and
writes only what needs them (predictions: the calibrated label and image qualities, the tags and
counts of its findings), the stored run and the saved views.

The run is the same one a single-process run writes, with the same semantics:

- The first shard to write replaces any earlier run under the key (as ``save_audit`` does) and
  registers the run with ``status="running"``; every shard adds the names it writes to the run's
  manifest *before* writing them, so a run interrupted anywhere is never listed as complete,
  ``load_audit`` refuses it, and re-running the key (or ``delete_audit``) removes exactly what
  was written. The merge registers the final manifest (the single-process one), writes the rest,
  and marks the run complete last.
- The key is locked by the plan (a lock document naming the plan, in ``iou_audit_locks``) from the
  first shard write to the end of the merge: another process writing the key (``save_audit``, or
  another plan's shards) is refused with a ValueError naming the plan, until the plan is deleted,
  has a failed shard or merge (then the lock is taken over), or is older than
  ``LOCK_STALE_SECONDS``. The shards of one plan share the lock; what must not run concurrently
  between them (opening the run, extending the manifest, declaring new fields: one dataset
  document) is serialised by a short mutex document; the bulk writes of their samples run in
  parallel.

A failed shard therefore leaves the key with an incomplete run (the earlier run was replaced when
the first shard wrote): re-run the shard and merge, or re-run the audit.
"""
from __future__ import annotations

import itertools
import os
import socket
import time
from contextlib import contextmanager
from typing import Any

from bson import ObjectId

from iou_audit import fiftyone_private as fop
from iou_audit.shards import store

#: A mutex document older than this was left by a killed process (it is held for milliseconds to
#: a few seconds: a schema merge, a run-config update).
MUTEX_STALE_SECONDS = 300.0
#: How long a shard waits for the mutex before failing.
MUTEX_TIMEOUT_SECONDS = 900.0


def _locks():
    from iou_audit.results.runs import LOCK_COLLECTION

    return store._db()[LOCK_COLLECTION]


def lock_id(dataset, key: str) -> str:
    """The ``_id`` of the key's write lock (the one ``save_audit`` takes)."""
    return f"{fop.dataset_id(fop.root_dataset(dataset))}:{key}"


def _holder() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}


def _pid_lock_dead(other: dict) -> bool:
    from iou_audit.results.runs import LOCK_STALE_SECONDS, _pid_alive

    return (other.get("host") == socket.gethostname() and not _pid_alive(other.get("pid", -1))) or (
        time.time() - float(other.get("since", 0)) > LOCK_STALE_SECONDS)


@contextmanager
def _mutex(name: str, timeout: float = MUTEX_TIMEOUT_SECONDS):
    """A short cross-process critical section (a document of ``iou_audit_locks`` named ``name``)."""
    from pymongo.errors import DuplicateKeyError

    coll = _locks()
    deadline = time.time() + timeout
    while True:
        me = {"_id": name, **_holder()}
        try:
            coll.insert_one(me)
            break
        except DuplicateKeyError:
            other = coll.find_one({"_id": name})
            if other is not None and (_pid_lock_dead(other) or time.time() - other["since"] > MUTEX_STALE_SECONDS):
                coll.delete_one({"_id": name, "since": other["since"]})
                continue
            if time.time() > deadline:
                raise RuntimeError(f"waited {timeout:.0f} s for the shards' mutex {name!r} (held by {other})") from None
            time.sleep(0.02)
    try:
        yield
    finally:
        coll.delete_one({"_id": name, "pid": me["pid"], "since": me["since"]})


def plan_lock_dead(lock: dict) -> bool:
    """Whether a plan's lock on a key no longer protects a sharded run in progress: the plan was
    deleted, a shard or the merge failed, the merge is done (a lock left by a killed merge), or it
    is older than ``LOCK_STALE_SECONDS``."""
    from iou_audit.results.runs import LOCK_STALE_SECONDS

    plan = store.plans().find_one({"_id": lock["plan_id"]}, {"shards.state": 1, "merge.state": 1})
    if plan is None or plan["merge"].get("state") in ("failed", "done"):
        return True
    if any(s.get("state") == "failed" for s in plan["shards"]):
        return True
    return time.time() - float(lock.get("since", 0)) > LOCK_STALE_SECONDS


def lock_holder_text(lock: dict) -> str:
    """Who holds a key, for a refusal message."""
    if lock.get("plan_id") is not None:
        return (f"the shards of sharded run plan {lock['plan_id']} (its merge releases the key; "
                f"iou_audit.shards.delete_plan({str(lock['plan_id'])!r}) abandons it)")
    return f"another process (pid {lock.get('pid')} on {lock.get('host')})"


def take_plan_lock(dataset, key: str, plan_id) -> None:
    """Hold the key's write lock for the plan (shared by its shards and its merge); ValueError when
    another live process or plan holds it."""
    from pymongo.errors import DuplicateKeyError

    coll, lid, oid = _locks(), lock_id(dataset, key), ObjectId(str(plan_id))
    for _ in range(3):
        try:
            coll.insert_one({"_id": lid, "plan_id": oid, **_holder(), "dataset": fop.root_dataset(dataset).name,
                             "key": key})
            return
        except DuplicateKeyError:
            other = coll.find_one({"_id": lid})
            if other is None:
                continue
            if other.get("plan_id") == oid:
                return
            dead = plan_lock_dead(other) if other.get("plan_id") is not None else _pid_lock_dead(other)
            if not dead:
                raise ValueError(f"audit {key!r} of dataset {fop.root_dataset(dataset).name!r} is being written by "
                                 f"{lock_holder_text(other)}; wait for it to finish or use another audit_key") from None
            coll.delete_one({"_id": lid, "since": other.get("since")})
    raise RuntimeError(f"could not take the write lock of audit {key!r}")


def release_plan_lock(dataset_id: str, key: str, plan_id) -> None:
    _locks().delete_one({"_id": f"{dataset_id}:{key}", "plan_id": ObjectId(str(plan_id))})


def _running_config(dataset, key: str, plan_id):
    """The run config registered under ``key`` by this plan's shards, or None."""
    from iou_audit.results.runs import is_audit

    if key not in dataset.list_runs() or not is_audit(dataset, key):
        return None
    config = dataset.get_run_info(key).config
    return config if getattr(config, "shard_plan", None) == str(plan_id) else None


def _open_run(samples, dataset, plan: dict) -> Any:
    """Replace any earlier run under the key with this plan's running run (in the mutex)."""
    from iou_audit.results.result import jsonify
    from iou_audit.results.runs import RUN_MARKER, RUNNING, _delete_run, _version, is_audit

    key = plan["audit_key"]
    if key in dataset.list_runs():
        if not is_audit(dataset, key):
            raise ValueError(f"run key {key!r} is used by another (non iou-audit) run of {dataset.name!r}")
        _delete_run(dataset, key)  # as save_audit does; this plan's kept parts are not touched
    empty = {"label_attributes": {}, "tags": {}, "sample_fields": [], "saved_views": [], "new_fields": []}
    config = samples.init_run(method=f"iou_audit.{plan['audit']}", **{RUN_MARKER: _version()}, audit=plan["audit"],
                              audit_key=key, params=jsonify(plan["params"]), counts={}, metrics={}, status=RUNNING,
                              written=empty, shard_plan=str(plan["_id"]))
    samples.register_run(key, config)
    return config


def union_manifest(a: dict, b: dict) -> dict:
    """Two manifests' union (sorted names).

    Example:
        >>> union_manifest({"label_attributes": {"gt": ["k_x"]}, "sample_fields": ["k_n"]},
        ...                {"label_attributes": {"gt": ["k_y"]}, "tags": {"gt": ["k:dup"]}})
        {'label_attributes': {'gt': ['k_x', 'k_y']}, 'tags': {'gt': ['k:dup']}, 'sample_fields': ['k_n'], 'saved_views': [], 'new_fields': []}
    """
    out: dict = {}
    for name in ("label_attributes", "tags"):
        fields = sorted(set(a.get(name, {})) | set(b.get(name, {})))
        out[name] = {f: sorted(set(a.get(name, {}).get(f, [])) | set(b.get(name, {}).get(f, []))) for f in fields}
    for name in ("sample_fields", "saved_views", "new_fields"):
        out[name] = sorted(set(a.get(name, [])) | set(b.get(name, [])))
    return out


def _minus(new: dict, old: dict) -> dict:
    """What ``new`` names that ``old`` does not (for the collision checks of names this run has not written yet)."""
    return {"label_attributes": {f: [a for a in attrs if a not in old.get("label_attributes", {}).get(f, [])]
                                 for f, attrs in new.get("label_attributes", {}).items()},
            "sample_fields": [n for n in new.get("sample_fields", []) if n not in old.get("sample_fields", [])],
            "saved_views": [n for n in new.get("saved_views", []) if n not in old.get("saved_views", [])],
            "new_fields": [n for n in new.get("new_fields", []) if n not in old.get("new_fields", [])]}


def _declare(dataset, prepared) -> None:
    """Declare the fields a prepared write adds, against the current schema (in the mutex)."""
    fop.reload_dataset_doc(dataset)
    new = {path: f for path, f in prepared.new_fields.items() if dataset.get_field(path) is None}
    if new:
        fop.merge_sample_field_schema(dataset, new)


def _writes(view, key: str, findings, out):
    """``(plan, iterator of prepared writes)`` of an output's label values, the tags and per-sample
    counts of ``findings``, and its sample values (each write validated when it is built)."""
    from iou_audit.results.batched import batch_writes
    from iou_audit.results.runs import _plan
    from iou_audit.table.read import ALL_LABEL_TYPES, check_label_field
    from iou_audit.table.write import prepare_writes

    p = _plan(view, key, findings, out.label_values or {}, out.sample_values or {})
    if out.label_batches is not None:
        for field, attrs in out.label_batches.attributes.items():
            check_label_field(view, field, ALL_LABEL_TYPES)
            written = p["manifest"]["label_attributes"].setdefault(field, [])
            written[:] = sorted(set(written) | {f"{key}_{a}" for a in attrs})
        return p, batch_writes(view, key, out.label_batches, p["tags"], p["sample_values"], prepare_writes)
    labels = {f: {"attributes": p["attributes"].get(f, {}), "tags": p["tags"].get(f, {})}
              for f in sorted(set(p["attributes"]) | set(p["tags"]))}
    if not labels and not p["sample_values"]:
        return p, iter(())
    return p, iter([prepare_writes(view, labels=labels, sample_values=p["sample_values"], layout=out.layout)])


def _run_writes(dataset, mutex: str, writes) -> None:
    """Run prepared writes one after the other; new fields are declared in the mutex (one dataset
    document shared by every shard), the bulk writes run outside it."""
    from iou_audit.table import bulk

    for prepared in writes:
        if prepared.new_fields:
            with _mutex(mutex):
                _declare(dataset, prepared)
        bulk.apply(prepared.samples, prepared.labels, prepared.sample_sets, prepared.layout)


def _write_new_fields(view, new_fields: dict) -> None:
    from iou_audit.table.raw_labels import RawLabelField, write_label_fields

    raw = {name: v for name, v in new_fields.items() if isinstance(v, RawLabelField)}
    if raw:
        write_label_fields(view, raw)
    for name, values in new_fields.items():
        if name not in raw:
            view.set_values(name, dict(values), key_field="id")


def write_shard(samples, view, plan: dict, out, findings_local: bool) -> dict:
    """Write a shard's ``local`` output (its own samples' values) under the plan's running run.

    ``samples``: the planned view (the run is registered on it); ``view``: the shard's samples.
    ``findings_local``: the shard's findings are final (their tags and per-sample counts are
    written here; else the merge writes them). Returns what was written (a manifest).
    """
    import pandas as pd

    from iou_audit.results.findings import FINDING_COLUMNS, make_findings
    from iou_audit.results.runs import _check_collisions, _check_new_fields
    from iou_audit.table.write import _check_writable

    dataset = _check_writable(samples)
    key = plan["audit_key"]
    findings = make_findings(out.findings if findings_local else pd.DataFrame(columns=FINDING_COLUMNS))
    p, writes = _writes(view, key, findings, out)
    manifest = {k: v for k, v in p["manifest"].items() if k != "saved_views"}
    manifest["new_fields"] = sorted(out.new_fields or {})
    first = next(writes, None)  # validated before anything is written
    mutex = lock_id(dataset, key) + ":shards"
    with _mutex(mutex):
        take_plan_lock(dataset, key, plan["_id"])
        fop.reload_dataset_doc(dataset)
        config = _running_config(dataset, key, plan["_id"])
        if config is None:
            config = _open_run(samples, dataset, plan)
        new = _minus(manifest, config.written)
        _check_collisions(dataset, {**new, "saved_views": []})
        _check_new_fields(dataset, dict.fromkeys(new["new_fields"]), [])
        config.written = union_manifest(config.written, manifest)  # recorded before it is written
        dataset.update_run_config(key, config)
        if out.new_fields:  # FiftyOne declares these fields (and their embedded attributes) itself
            _write_new_fields(view, out.new_fields)
    _run_writes(dataset, mutex, itertools.chain([first], writes) if first is not None else ())
    return manifest


def finish_run(samples, plan: dict, result, out, findings_local: bool) -> dict:
    """The merge of a plan whose shards wrote their values: the stored run, the global values,
    the saved views, the final manifest; then the run is marked complete and the key released.

    ``out``: the merge's output, holding only what the shards did not write; the shards' names
    come from the running run's manifest. Raises ShardError when the run under the key is not
    this plan's any more (replaced since: plan again).
    """
    import datetime

    from iou_audit.results.findings import make_findings
    from iou_audit.results.result import jsonify
    from iou_audit.results.runs import (
        COMPLETE,
        RUN_MARKER,
        RUNNING,
        _check_collisions,
        _check_new_fields,
        _plan,
        _save_results,
        _version,
    )
    from iou_audit.shards.run import ShardError
    from iou_audit.table.write import _check_writable

    dataset = _check_writable(samples)
    key = plan["audit_key"]
    with _mutex(lock_id(dataset, key) + ":shards"):
        fop.reload_dataset_doc(dataset)
        running = _running_config(dataset, key, plan["_id"])
        if running is None:
            raise ShardError(f"the run {key!r} written by the shards of plan {plan['_id']} was replaced or deleted "
                             "since; plan the sharded run again")
        take_plan_lock(dataset, key, plan["_id"])
    findings = make_findings(result.findings)
    # the shards wrote the tags and counts of their own findings: the merge writes the values it
    # holds; the manifest and the saved views cover every finding
    p, writes = _writes(samples, key, findings.iloc[:0] if findings_local else findings, out)
    pf = _plan(samples, key, findings, {}, {}) if findings_local else p
    views = dict(pf["views"])
    views.update({f"{key}-{kind}": v for kind, v in out.views.items()})
    if out.view_builder is not None:
        views.update({f"{key}-{kind}": v for kind, v in out.view_builder(samples, result).items()})
    manifest = union_manifest(union_manifest(p["manifest"], pf["manifest"]), running.written)
    manifest["saved_views"] = sorted(views)
    manifest["new_fields"] = sorted(set(out.new_fields or {}) | set(running.written.get("new_fields", [])))
    own = _minus(manifest, running.written)
    _check_collisions(dataset, own)
    _check_new_fields(dataset, dict.fromkeys(own["new_fields"]), [])
    first = next(writes, None)  # validated before the run is re-registered
    config = samples.init_run(
        method=f"iou_audit.{result.audit}", **{RUN_MARKER: _version()}, audit=result.audit, audit_key=key,
        params=jsonify(result.config),
        counts={k: int(n) for k, n in findings["kind"].value_counts().sort_index().items()},
        metrics=jsonify(result.metrics), status=RUNNING, written=manifest, shard_plan=str(plan["_id"]))
    samples.register_run(key, config, overwrite=True, cleanup=False)
    _save_results(samples, key, result, findings, manifest)
    _run_writes(dataset, lock_id(dataset, key) + ":shards", itertools.chain([first], writes) if first is not None else ())
    if out.new_fields:
        _write_new_fields(samples, out.new_fields)
    for name, (view, description) in views.items():
        dataset.save_view(name, view, description=description)
    config.completed_at = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None).isoformat()
    del config.shard_plan
    config.status = COMPLETE  # last: only now does the run count as written
    dataset.update_run_config(key, config)
    release_plan_lock(fop.dataset_id(dataset), key, plan["_id"])
    return manifest

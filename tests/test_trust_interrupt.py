"""Trust suite: audits killed half-way (SIGKILL, a separate process on the same database) leave
no run that looks complete, and re-running gives the uninterrupted findings; two processes
auditing one dataset at once (different audits, or the same key) end consistent."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import fiftyone as fo
import numpy as np
import pytest

import iou_audit

FIELDS = ["ann_a", "ann_b", "ann_c"]

CHILD = textwrap.dedent("""
    import sys, time
    import fiftyone as fo
    import iou_audit
    from iou_audit.results import runs

    name, audit, key, mode = sys.argv[1:5]
    ds = fo.load_dataset(name)
    if mode == "pause_after_writes":
        # our own code, not FiftyOne: after the label writes, stop before the run is marked complete
        real = runs.prepare_writes
        def prepare(*a, **k):
            w = real(*a, **k)
            run = w.run
            def run_then_wait():
                run()
                print("WRITTEN", flush=True)
                time.sleep(600)
            w.run = run_then_wait
            return w
        runs.prepare_writes = prepare
    print("START", flush=True)
    if audit == "agreement":
        iou_audit.audit_agreement(ds, %r, audit_key=key, batch_size=int(sys.argv[5]))
    elif audit == "duplicates":
        iou_audit.audit_duplicates(ds, "ann_a", audit_key=key, batch_size=int(sys.argv[5]))
    elif audit == "predictions":
        iou_audit.audit_predictions(ds, "ann_b", "ann_a", audit_key=key)
    print("DONE", flush=True)
""" % (FIELDS,))


def _child(*args):
    return subprocess.Popen([sys.executable, "-c", CHILD, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def _wait_for(proc, word, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if word in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"child exited {proc.returncode} before {word!r}: {proc.stderr.read()[-3000:]}")
    raise AssertionError(f"child did not print {word!r} within {timeout} s")


def _kill_after(proc, word, timeout, delay=0.0):
    """SIGKILL the child ``delay`` seconds after it prints ``word``; it is dead afterwards."""
    try:
        _wait_for(proc, word, timeout=timeout)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


def _snapshot(ds):
    """Everything an audit may add: fields (incl. label attributes), label tags, runs, saved views."""
    ds.reload()
    schema = sorted(ds.get_field_schema(flat=True))
    return schema, ds.count_label_tags(), sorted(ds.list_runs()), sorted(ds.list_saved_views())


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(7)
    n = int(os.environ.get("IOU_AUDIT_TRUST_N", 1500))
    samples = []
    for i in range(n):
        k = 8
        xy = rng.uniform(0, 0.8, (k, 2))
        wh = rng.uniform(0.03, 0.15, (k, 2))
        s = fo.Sample(filepath=f"/nonexistent/{i}.jpg", metadata=fo.ImageMetadata(width=640, height=480))
        for f, f_idx in zip(FIELDS, range(3)):
            jitter = rng.normal(0, 0.004, (k, 2)) if f_idx else np.zeros((k, 2))
            s[f] = fo.Detections(detections=[
                fo.Detection(label=["RBC", "WBC"][j % 2], bounding_box=[*(xy[j] + jitter[j]).tolist(), *wh[j].tolist()])
                for j in range(k) if not (f_idx == 2 and j == 0)])
        samples.append(s)
    ds = fo.Dataset(persistent=True)  # a second process must see it
    ds.add_samples(samples, progress=False)
    del samples  # held samples would make every ds.reload() reload each of them (~16 ms apiece)
    yield ds
    ds.delete()


def _same_findings(a, b):
    cols = ["kind", "sample_id", "field", "label_id", "other_label_id", "label"]
    fa = a.findings.sort_values(cols).reset_index(drop=True)
    fb = b.findings.sort_values(cols).reset_index(drop=True)
    assert fa[cols].equals(fb[cols])
    np.testing.assert_allclose(fa["score"].to_numpy(), fb["score"].to_numpy(), rtol=1e-9)


def test_killed_after_label_writes_is_not_a_complete_run_and_rerun_is_clean(big):
    ds = big
    before = _snapshot(ds)
    reference = iou_audit.audit_agreement(ds, FIELDS, save=False)
    _kill_after(_child(ds.name, "agreement", "agr_kill", "pause_after_writes", 500), "WRITTEN", 300)
    ds.reload()
    # the run exists but is incomplete: not listed, not loadable
    assert "agr_kill" not in iou_audit.list_audits(ds)
    assert "agr_kill" in iou_audit.list_audits(ds, include_incomplete=True)
    with pytest.raises(ValueError, match="interrupted"):
        iou_audit.load_audit(ds, "agr_kill")
    assert any(t.startswith("agr_kill:") for t in ds.count_label_tags())  # it had written labels
    # re-running the same key (the dead process' lock is taken over) completes and replaces it
    rerun = iou_audit.audit_agreement(ds, FIELDS, audit_key="agr_kill")
    _same_findings(rerun, reference)
    _same_findings(iou_audit.load_audit(ds, "agr_kill"), reference)
    assert "agr_kill" in iou_audit.list_audits(ds)
    tags = ds.count_label_tags()
    counts = reference.findings["kind"].value_counts()
    for kind, n in counts.items():
        assert tags.get(f"agr_kill:{kind}", 0) <= n  # no tag written twice
    iou_audit.delete_audit(ds, "agr_kill")
    assert _snapshot(ds) == before


def test_delete_audit_cleans_an_interrupted_run(big):
    ds = big
    before = _snapshot(ds)
    _kill_after(_child(ds.name, "duplicates", "dup_kill", "pause_after_writes", 500), "WRITTEN", 300)
    ds.reload()
    assert iou_audit.list_audits(ds) == []
    iou_audit.delete_audit(ds, "dup_kill")
    assert _snapshot(ds) == before


@pytest.mark.parametrize("delay", [0.3, 1.5, 3.0, 4.5])
def test_killed_at_any_time_leaves_a_consistent_dataset(big, delay):
    """SIGKILL after ``delay`` seconds (reading, computing or writing, whichever it is doing)."""
    ds = big
    before = _snapshot(ds)
    reference = iou_audit.audit_duplicates(ds, "ann_a", save=False)
    _kill_after(_child(ds.name, "duplicates", "dup_t", "plain", 20), "START", 120, delay)
    ds.reload()
    if "dup_t" in iou_audit.list_audits(ds):  # it had finished: the stored run must be the full one
        _same_findings(iou_audit.load_audit(ds, "dup_t"), reference)
    rerun = iou_audit.audit_duplicates(ds, "ann_a", audit_key="dup_t")
    _same_findings(rerun, reference)
    # each duplicate finding tags both labels of its pair, once each, whatever the killed run wrote
    dup = reference.findings[reference.findings["kind"] == "duplicate"]
    assert ds.count_label_tags().get("dup_t:duplicate", 0) == len(set(dup["label_id"]) | set(dup["other_label_id"]))
    iou_audit.delete_audit(ds, "dup_t")
    assert _snapshot(ds) == before


def test_two_different_audits_at_once(big):
    ds = big
    before = _snapshot(ds)
    ref_d = iou_audit.audit_duplicates(ds, "ann_a", save=False)
    ref_p = iou_audit.audit_predictions(ds, "ann_b", "ann_a", save=False)
    procs = [_child(ds.name, "duplicates", "c_dup", "plain", 200), _child(ds.name, "predictions", "c_pred", "plain")]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    ds.reload()
    assert sorted(iou_audit.list_audits(ds)) == ["c_dup", "c_pred"]
    _same_findings(iou_audit.load_audit(ds, "c_dup"), ref_d)
    _same_findings(iou_audit.load_audit(ds, "c_pred"), ref_p)
    # neither process' saved views were lost to the other's dataset-document write
    for key, ref in (("c_dup", ref_d), ("c_pred", ref_p)):
        for kind in set(ref.findings["kind"]):
            assert ds.has_saved_view(f"{key}-{kind}"), (key, kind, ds.list_saved_views())
    for key in ("c_dup", "c_pred"):
        iou_audit.delete_audit(ds, key)
    assert _snapshot(ds) == before


def test_two_processes_same_key(big):
    ds = big
    before = _snapshot(ds)
    reference = iou_audit.audit_duplicates(ds, "ann_a", save=False)
    procs = [_child(ds.name, "duplicates", "same", "plain", 500) for _ in range(2)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for out, err, rc in results:  # each one succeeded, or was refused with the clear error
        assert rc == 0 or "is being written by another process" in err, err[-3000:]
    assert any(rc == 0 for *_, rc in results)
    ds.reload()
    assert iou_audit.list_audits(ds) == ["same"]
    _same_findings(iou_audit.load_audit(ds, "same"), reference)
    dup = reference.findings[reference.findings["kind"] == "duplicate"]
    n_dup = len(set(dup["label_id"]) | set(dup["other_label_id"]))  # both labels of each pair are tagged
    assert ds.count_label_tags().get("same:duplicate", 0) == n_dup
    ids = [t for ts in ds.values("ann_a.detections.tags", unwind=True) for t in ([ts] if isinstance(ts, str) else ts)]
    assert ids.count("same:duplicate") == n_dup
    iou_audit.delete_audit(ds, "same")
    assert _snapshot(ds) == before


def test_lock_refuses_a_live_writer_of_the_same_key_and_lets_other_keys_run(big):
    """Deterministic overlap: process A holds the write lock of ``lk`` (paused after its label
    writes); process B writing ``lk`` meanwhile is refused with the clear error and changes
    nothing; process C writing another key meanwhile completes correctly. After A is killed,
    ``lk`` is re-run (the dead lock is taken over) and equals the sequential result."""
    ds = big
    before = _snapshot(ds)
    reference = iou_audit.audit_duplicates(ds, "ann_a", save=False)
    ref_p = iou_audit.audit_predictions(ds, "ann_b", "ann_a", save=False)
    holder = _child(ds.name, "duplicates", "lk", "pause_after_writes", 500)
    try:
        _wait_for(holder, "WRITTEN", timeout=300)
        ds.reload()
        while_held = _snapshot(ds)
        second = _child(ds.name, "duplicates", "lk", "plain", 500)
        out, err = second.communicate(timeout=300)
        assert second.returncode != 0 and "is being written by another process" in err, err[-3000:]
        assert f"pid {holder.pid}" in err  # names the holder
        assert _snapshot(ds) == while_held  # the refused process wrote nothing
        other = _child(ds.name, "predictions", "other_key", "plain")
        out, err = other.communicate(timeout=300)
        assert other.returncode == 0, err[-3000:]
        ds.reload()
        _same_findings(iou_audit.load_audit(ds, "other_key"), ref_p)
    finally:
        holder.kill()
        holder.wait(30)
    ds.reload()
    assert iou_audit.list_audits(ds) == ["other_key"]  # lk was never completed
    rerun = _child(ds.name, "duplicates", "lk", "plain", 500)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    ds.reload()
    _same_findings(iou_audit.load_audit(ds, "lk"), reference)
    for key in ("lk", "other_key"):
        iou_audit.delete_audit(ds, key)
    assert _snapshot(ds) == before

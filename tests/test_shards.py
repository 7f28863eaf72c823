"""Sharded runs (iou_audit.shards): merged == single-process, exactly; failures refuse cleanly.

The oracle is the audit's own single-process run on the same dataset (not a number of ours):
every stored sample document (label attributes, tags, per-sample fields, a consensus field), the
stored run (findings, tables, metrics, config) and the saved views must be identical after the
sharded run under the same key.
"""
import importlib.util
import math
import pathlib

import numpy as np
import pandas as pd
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _bench_scale():
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "bench" / "bench_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scale_ds(tmp_path_factory):
    """1,200 samples of bench_scale's generator: annotators a, b, c and predictions pred (boxes)."""
    import fiftyone as fo

    ds = _bench_scale().build_dataset("shards-test", 1200, str(tmp_path_factory.mktemp("img")))
    yield ds
    fo.delete_dataset(ds.name)


def same(a, b, path="") -> None:
    """Exact equality of nested results (NaN equals NaN; frames compared cell by cell, dtypes too)."""
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=path or "frame")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        pass
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} ({type(a).__name__}) vs {b!r} ({type(b).__name__})"


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
    shards.run_sharded(ds, audit, key, n_shards=n_shards, **params)
    got = snapshot(ds, key)
    delete_audit(ds, key)
    return want, got


def test_duplicates_sharded_equals_single(scale_ds):
    from iou_audit.audits.duplicates import audit_duplicates

    params = dict(label_field="a", batch_size=250)
    want, got = single_then_sharded(scale_ds, "duplicates", "dups", params,
                                    single=lambda ds, key: audit_duplicates(ds, "a", batch_size=250, audit_key=key))
    assert len(want["findings"]) > 100  # the generator plants shifted copies
    same(want, got)


def test_agreement_sharded_equals_single(scale_ds):
    from iou_audit.audits.agreement import audit_agreement

    params = dict(label_fields=["a", "b", "c"], batch_size=250, consensus_field="cons")
    want, got = single_then_sharded(
        scale_ds, "agreement", "agr", params,
        single=lambda ds, key: audit_agreement(ds, ["a", "b", "c"], batch_size=250, consensus_field="cons",
                                               audit_key=key))
    m = want["metrics"]
    assert 0 < m["alpha_nominal"] < 1 and 0 < m["map"] < 1  # global statistics present, not trivial
    assert any("cons" in d for d in want["docs"])
    same(want, got)


def test_predictions_sharded_equals_single(scale_ds):
    from iou_audit.audits.predictions import audit_predictions

    want, got = single_then_sharded(scale_ds, "predictions", "pred", dict(pred_field="pred", gt_field="a"),
                                    single=lambda ds, key: audit_predictions(ds, "pred", "a", audit_key=key))
    assert 0 < want["metrics"]["AP"] < 1
    same(want, got)

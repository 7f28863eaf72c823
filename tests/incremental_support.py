"""Helpers of the incremental re-audit tests: the generator, exact comparison, a run's snapshot."""
import importlib.util
import math
import pathlib

import numpy as np
import pandas as pd

REPO = pathlib.Path(__file__).resolve().parents[1]
#: metrics saying how a run was computed, not what it found (hashes reused from the hash cache)
PROVENANCE_METRICS = ("hash_cache_hits",)


def _bench_scale():
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "bench" / "bench_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def same(a, b, path="") -> None:
    """Exact equality of nested results (NaN equals NaN; frames cell by cell, dtypes too)."""
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=path or "frame")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        pass
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} ({type(a).__name__}) vs {b!r} ({type(b).__name__})"


def snapshot(ds, key: str) -> dict:
    """Everything a run leaves in a dataset, comparable across a dataset and its clone."""
    from iou_audit import fiftyone_private as fop
    from iou_audit.results import load_audit

    docs = list(fop.raw_sample_collection(ds).find({}, sort=[("_id", 1)]))
    for d in docs:
        for name in ("last_modified_at", "created_at", "_dataset_id"):  # when / which copy, not a result
            d.pop(name, None)
        for det in (d.get("cons") or {}).get("detections", []):
            det.pop("_id")  # new consensus labels get fresh ids in every run
    ds.reload()
    r = load_audit(ds, key)
    views = {name: [{k: v for k, v in stage.items() if k != "_uuid"} for stage in ds.load_saved_view(name)._serialize()]
             for name in ds.list_saved_views() if name.startswith(key)}
    schema = {k: str(v) for k, v in ds.get_field_schema(flat=True).items()}
    metrics = {k: v for k, v in r.metrics.items() if k not in PROVENANCE_METRICS}
    return {"docs": docs, "findings": r.findings, "tables": r.tables, "metrics": metrics, "config": r.config,
            "views": views, "schema": schema}


def full_run_on_copy(ds, key, run):
    """A full run from scratch of ``run`` on a clone of ``ds`` (its copy of the run deleted first)."""
    import fiftyone as fo

    from iou_audit.results import delete_audit

    if fo.dataset_exists(f"{ds.name}-copy"):
        fo.delete_dataset(f"{ds.name}-copy")
    copy = ds.clone(f"{ds.name}-copy")
    delete_audit(copy, key)
    run(copy, key)
    return snapshot(copy, key)

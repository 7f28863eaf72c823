"""Send the relabel queue to an annotation tool and merge the fixes back, through FiftyOne's own
annotation API (``SampleCollection.annotate`` / ``Dataset.load_annotations``), so any backend
FiftyOne is configured with works: CVAT, Label Studio, Labelbox or one of your own.

The flagged labels carry label attribute ``relabel_reason`` (computed in the uploaded view, not
stored) so the annotator sees why each label is in the queue. Loading merges the annotators' edits
and reports each flagged label as ``deleted``, ``changed`` (class or geometry) or ``unchanged``;
deleted and changed ones are the fixed findings.
"""
from __future__ import annotations

from iou_audit import fiftyone_private as fop
from iou_audit.relabel.raw import read_raw_labels
from iou_audit.relabel.review_link import mark_fixed
from iou_audit.relabel.selection import REASON_ATTR, Selection, reason_view
from iou_audit.relabel.store import content_fingerprint, default_user, now_iso, relabel_store
from iou_audit.table import check_label_field

#: the credentials FiftyOne's builtin backends need before they can connect without prompting
BUILTIN_CREDENTIALS = {
    "cvat": ("url", "username", "password"),
    "labelstudio": ("url", "api_key"),
    "labelbox": ("api_key",),
}

# How the annotator sees the reason: a text attribute (CVAT >= 2.5 wants an empty list of values).
REASON_SPEC = {"type": "text", "values": []}

DOCS_URL = "https://docs.voxel51.com/user_guide/annotation.html"


class BackendNotConfigured(RuntimeError):
    """No usable annotation backend: the message says how to configure one."""


def how_to_configure(name: str | None, missing=()) -> str:
    """The message shown when backend ``name`` is absent or lacks credentials."""
    what = f"annotation backend {name!r}" if name else "no annotation backend"
    lack = f" lacks {', '.join(missing)}" if missing else " is not configured"
    return (
        f"{what}{lack}. Configure one for the process that runs FiftyOne (the App server, "
        "`fiftyone delegated launch`, your script), then restart it: environment variables "
        "FIFTYONE_CVAT_URL, FIFTYONE_CVAT_USERNAME, FIFTYONE_CVAT_PASSWORD (CVAT); "
        "FIFTYONE_LABELSTUDIO_URL, FIFTYONE_LABELSTUDIO_API_KEY (Label Studio); FIFTYONE_LABELBOX_API_KEY "
        "(Labelbox); FIFTYONE_ANNOTATION_DEFAULT_BACKEND to choose the default; or the same keys under "
        '"backends" in ~/.fiftyone/annotation_config.json (FIFTYONE_ANNOTATION_CONFIG_PATH). '
        f"`fiftyone annotation config` prints what FiftyOne sees. See {DOCS_URL}"
    )


def configured_backends() -> list[str]:
    """Names of the backends FiftyOne knows that have a ``config_cls`` and, for the builtin ones,
    the credentials :data:`BUILTIN_CREDENTIALS` lists (sorted)."""
    import fiftyone as fo

    return sorted(n for n, p in fo.annotation_config.backends.items() if not _missing(n, p, {}))


def check_backend(backend: str | None = None, **backend_kwargs) -> str:
    """The backend name to use (``backend`` or FiftyOne's default); raises
    :class:`BackendNotConfigured` with how to configure it when it cannot be used."""
    import fiftyone as fo

    name = backend or fo.annotation_config.default_backend
    params = fo.annotation_config.backends.get(name) if name else None
    if params is None:
        raise BackendNotConfigured(how_to_configure(name) + f" (known backends: {sorted(fo.annotation_config.backends)})")
    missing = _missing(name, params, backend_kwargs)
    if missing:
        raise BackendNotConfigured(how_to_configure(name, missing))
    return name


def _missing(name, params, kwargs) -> list[str]:
    if not params.get("config_cls") and "config_cls" not in kwargs:
        return ["config_cls"]
    return [k for k in BUILTIN_CREDENTIALS.get(name, ()) if not (kwargs.get(k) or params.get(k))]


def send_to_annotation(
    selection: Selection,
    anno_key: str,
    backend: str | None = None,
    only_flagged: bool = False,
    launch_editor: bool = False,
    user: str | None = None,
    **backend_kwargs,
):
    """Upload the selection's samples and labels of its field to the annotation backend as run
    ``anno_key``; the flagged labels carry ``relabel_reason``. ``only_flagged`` uploads only the
    flagged labels (default: every label of those samples, so the annotator sees the whole image;
    labels not uploaded are never changed by the load). Returns FiftyOne's ``AnnotationResults``.
    """
    dataset = selection.dataset
    name = check_backend(backend, **backend_kwargs)
    if not isinstance(anno_key, str) or not anno_key.isidentifier():
        raise ValueError(f"anno_key must be a valid Python identifier (FiftyOne's rule), got {anno_key!r}")
    if dataset.has_annotation_run(anno_key):
        raise ValueError(f"annotation run {anno_key!r} already exists on {dataset.name!r}; load or delete it first "
                         "(dataset.delete_annotation_run), or choose another key")
    if dataset.get_field(f"{selection.list_path}.{REASON_ATTR}") is not None:
        raise ValueError(f"field {selection.field!r} already has a stored attribute {REASON_ATTR!r}; "
                         "it would be overwritten by the annotators' copy: rename it first")
    before = read_raw_labels(dataset, selection.field, selection.label_ids)
    view = reason_view(selection, only_flagged=only_flagged)
    results = view.annotate(anno_key, backend=name, label_field=selection.field,
                            attributes={REASON_ATTR: dict(REASON_SPEC)}, launch_editor=launch_editor,
                            **backend_kwargs)
    relabel_store(dataset).set(f"annotation:{anno_key}", {
        "anno_key": anno_key, "backend": name, "field": selection.field, "label_ids": list(selection.label_ids),
        "fingerprints": {lid: content_fingerprint(r.as_dict()) for lid, r in before.items()},
        "reasons": dict(selection.reasons), "only_flagged": bool(only_flagged),
        "sent_by": default_user(user), "sent_at": now_iso(), "loaded_at": None,
    })
    return results


def load_relabel_annotations(dataset, anno_key: str, cleanup: bool = False, user: str | None = None) -> dict:
    """Merge the annotators' edits of run ``anno_key`` (sent by :func:`send_to_annotation`) into the
    dataset (``Dataset.load_annotations``), drop ``relabel_reason`` from the labels again, and
    report the flagged labels: ``{"anno_key", "deleted", "changed", "unchanged", "fixed", "n_fixed",
    "n_unexpected"}`` (``fixed`` = deleted + changed label ids)."""
    from iou_audit.table.bulk import strip_labels

    dataset = fop.root_dataset(dataset)
    store = relabel_store(dataset)
    record = store.get(f"annotation:{anno_key}")
    if record is None:
        raise ValueError(f"annotation run {anno_key!r} was not sent by iou-audit on {dataset.name!r}; "
                         f"runs: {dataset.list_annotation_runs()}")
    if not dataset.has_annotation_run(anno_key):
        raise ValueError(f"annotation run {anno_key!r} no longer exists on {dataset.name!r}")
    field = record["field"]
    unexpected = dataset.load_annotations(anno_key, unexpected="return", cleanup=cleanup)
    _, list_path = check_label_field(dataset, field)
    # the reason was only for the annotator: the merged copy is removed again
    strip_labels(dataset, field, attributes=[REASON_ATTR])
    if dataset.get_field(f"{list_path}.{REASON_ATTR}") is not None:
        dataset.remove_dynamic_sample_fields([f"{list_path}.{REASON_ATTR}"])
    after = read_raw_labels(dataset, field, record["label_ids"])
    deleted = [lid for lid in record["label_ids"] if lid not in after]
    changed = [lid for lid in record["label_ids"]
               if lid in after and content_fingerprint(after[lid].as_dict()) != record["fingerprints"].get(lid)]
    unchanged = [lid for lid in record["label_ids"] if lid in after and lid not in changed]
    n_unexpected = sum(len(v) for per_field in (unexpected or {}).values() for v in per_field.values())
    # changed labels' rows are marked fixed; deleted labels' rows leave the queue with them
    n_marked = mark_fixed(dataset, changed, user=default_user(user))
    record.update(loaded_at=now_iso(), loaded_by=default_user(user), deleted=deleted, changed=changed)
    store.set(f"annotation:{anno_key}", record)
    return {"anno_key": anno_key, "field": field, "deleted": deleted, "changed": changed, "unchanged": unchanged,
            "fixed": deleted + changed, "n_fixed": len(deleted) + len(changed), "n_marked_fixed": n_marked,
            "n_unexpected": int(n_unexpected)}


def relabel_runs(dataset) -> list[dict]:
    """The annotation runs sent by :func:`send_to_annotation` on ``dataset`` that still exist."""
    store = relabel_store(dataset)
    out = []
    for key in sorted(store.list_keys()):
        if key.startswith("annotation:"):
            rec = store.get(key)
            if rec and fop.root_dataset(dataset).has_annotation_run(rec["anno_key"]):
                out.append(rec)
    return out

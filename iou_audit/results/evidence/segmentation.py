"""Charts of a segmentation agreement run: IoU per class, the class confusion heatmap, and what is
behind each.

Both charts come from the stored run (``per_class`` and ``confusion`` tables). What is behind an
element is recomputed per image from the masks of the run's view, read and counted as the audit
does (:func:`image_confusions`: the same reader, the same pixel counting, the same samples: those
where every field of the run has a mask):

- ``class_iou``: bar (class c, pair "a vs b") -> the images where c has pixels in a or in b, the
  lowest per-image IoU of c first, with both Segmentation labels and the regions of disagreement
  (``regions_field``) whose label names c on either side;
- ``class_confusion`` (the run's first pair of fields): cell (class i in a, class j in b) -> the
  images with pixels that a calls i and b calls j, most such pixels first, with both Segmentation
  labels and, off the diagonal, the regions labelled "i vs j". The heatmap draws the
  :data:`MAX_CONFUSION_CLASSES` classes with most pixels; the others are one row and column,
  :data:`OTHER_CLASSES`, and a click there selects over all of them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from iou_audit.audits.segmentation.agreement import AUDIT  # noqa: F401 - the audit these charts are of
from iou_audit.results.evidence.base import Chart, Selection, chart_layout, none_nan, run_view, selection_from_rows
from iou_audit.results.result import AuditResult

#: Classes drawn in the IoU bars (the lowest IoU first) and in the confusion heatmap (most pixels).
MAX_BAR_CLASSES = 30
MAX_CONFUSION_CLASSES = 20
#: The heatmap's row and column of every class not drawn on its own.
OTHER_CLASSES = "(other classes)"


def pair_label(field_a: str, field_b: str) -> str:
    """The name of a pair of fields in charts (a trace name).

    Example:
        >>> pair_label("seg_r1", "seg_r2")
        'seg_r1 vs seg_r2'
    """
    return f"{field_a} vs {field_b}"


def run_pairs(result: AuditResult) -> list[tuple[str, str]]:
    """The run's pairs of fields, in the audit's order (earlier field first)."""
    t = result.tables.get("per_field_pair")
    if t is None or not len(t):
        return []
    return list(zip(t["field_a"].astype(str), t["field_b"].astype(str)))


def _pair(result: AuditResult, trace) -> tuple[str, str]:
    pairs = run_pairs(result)
    if not pairs:
        raise ValueError(f"run {result.audit_key!r} compared no images")
    if trace in (None, ""):
        return pairs[0]
    for p in pairs:
        if pair_label(*p) == str(trace):
            return p
    raise ValueError(f"unknown pair {trace!r}; pairs: {[pair_label(*p) for p in pairs]}")


def pair_classes(result: AuditResult, field_a: str, field_b: str) -> pd.DataFrame:
    """The ``per_class`` rows of one pair for the classes with pixels in either field."""
    t = result.tables.get("per_class", pd.DataFrame())
    if not len(t):
        return t
    t = t[(t["field_a"] == field_a) & (t["field_b"] == field_b)]
    return t[(t["pixels_a"] + t["pixels_b"]) > 0].reset_index(drop=True)


def _class_values(result: AuditResult) -> dict[str, list[int]]:
    """Class name -> the raw pixel values named so (values without a target are named by their value)."""
    t = result.tables.get("per_class", pd.DataFrame())
    out: dict[str, list[int]] = {}
    for name, value in zip(t.get("class", []), t.get("value", [])):
        values = out.setdefault(str(name), [])
        if int(value) not in values:
            values.append(int(value))
    return out


def bar_classes(result: AuditResult) -> list[str]:
    """The classes of the IoU bars: over all pairs, the lowest IoU first (ties: more pixels first),
    at most :data:`MAX_BAR_CLASSES`.

    Example:
        >>> t = pd.DataFrame({"field_a": "a", "field_b": "b", "class": ["x", "y", "z"], "value": [0, 1, 2],
        ...                   "pixels_a": [5, 9, 0], "pixels_b": [5, 0, 0], "iou": [1.0, 0.0, float("nan")]})
        >>> bar_classes(AuditResult(AUDIT, "s", {}, tables={"per_class": t}))
        ['y', 'x']
    """
    t = result.tables.get("per_class", pd.DataFrame())
    if not len(t):
        return []
    t = t[(t["pixels_a"] + t["pixels_b"]) > 0].assign(pixels=lambda d: d["pixels_a"] + d["pixels_b"])
    worst = t.groupby("class", sort=False).agg(iou=("iou", "min"), pixels=("pixels", "sum"))
    worst = worst.sort_values(["iou", "pixels"], ascending=[True, False], kind="stable")
    return [str(c) for c in worst.index[:MAX_BAR_CLASSES]]


def class_iou_chart(result: AuditResult) -> Chart | None:
    classes = bar_classes(result)
    if not classes:
        return None
    n_all = result.tables["per_class"].loc[lambda d: (d["pixels_a"] + d["pixels_b"]) > 0, "class"].nunique()
    traces = []
    for fa, fb in run_pairs(result):
        t = pair_classes(result, fa, fb).set_index("class").reindex(classes)
        custom = [[int(a) if a == a else 0, int(b) if b == b else 0, int(ia) if ia == ia else 0,
                   int(ib) if ib == ib else 0]
                  for a, b, ia, ib in zip(t["pixels_a"], t["pixels_b"], t["images_a"], t["images_b"])]
        traces.append({"type": "bar", "name": pair_label(fa, fb), "x": classes,
                       "y": none_nan(t["iou"].astype(float).round(4).tolist()), "customdata": custom,
                       "hovertemplate": f"%{{x}}: IoU %{{y:.3f}}<br>{fa}: %{{customdata[0]:,}} px in "
                                        f"%{{customdata[2]}} images<br>{fb}: %{{customdata[1]:,}} px in "
                                        "%{customdata[3]} images<extra></extra>"})
    shown = f"the {len(classes)} lowest of {n_all} classes" if len(classes) < n_all else f"{n_all} classes"
    return Chart("class_iou", "IoU per class", traces,
                 chart_layout(f"IoU per class, {shown} (click: the images with that class)", barmode="group",
                              showlegend=len(traces) > 1, legend={"orientation": "h", "y": -0.35},
                              yaxis={"range": [0, 1]}, xaxis={"automargin": True, "tickangle": -45},
                              height=320))


def heatmap_classes(result: AuditResult, field_a: str, field_b: str) -> list[str]:
    """The classes the confusion heatmap draws on their own: most pixels (both fields) first.

    Example:
        >>> t = pd.DataFrame({"field_a": "a", "field_b": "b", "class": ["x", "y"], "value": [0, 1],
        ...                   "pixels_a": [1, 9], "pixels_b": [2, 0], "iou": [0.5, 0.0]})
        >>> heatmap_classes(AuditResult(AUDIT, "s", {}, tables={"per_class": t}), "a", "b")
        ['y', 'x']
    """
    t = pair_classes(result, field_a, field_b)
    if not len(t):
        return []
    t = t.assign(pixels=t["pixels_a"] + t["pixels_b"]).sort_values("pixels", ascending=False, kind="stable")
    return [str(c) for c in t["class"].head(MAX_CONFUSION_CLASSES)]


def confusion_table(result: AuditResult, field_a: str, field_b: str) -> pd.DataFrame:
    """The pair's dataset confusion matrix in pixels over the heatmap's classes (rows: ``field_a``),
    the classes not drawn summed into :data:`OTHER_CLASSES`."""
    shown = heatmap_classes(result, field_a, field_b)
    c = result.tables.get("confusion", pd.DataFrame())
    c = c[(c["field_a"] == field_a) & (c["field_b"] == field_b)] if len(c) else c
    axis = shown + ([OTHER_CLASSES] if len(pair_classes(result, field_a, field_b)) > len(shown) else [])
    if not len(c):
        return pd.DataFrame(0, index=axis, columns=axis, dtype=np.int64)
    keep = set(shown)
    rows = c["class_a"].astype(str).where(c["class_a"].astype(str).isin(keep), OTHER_CLASSES)
    cols = c["class_b"].astype(str).where(c["class_b"].astype(str).isin(keep), OTHER_CLASSES)
    m = pd.DataFrame({"a": rows, "b": cols, "pixels": c["pixels"].astype(np.int64)}).pivot_table(
        index="a", columns="b", values="pixels", aggfunc="sum", fill_value=0)
    return m.reindex(index=axis, columns=axis, fill_value=0).astype(np.int64)


def class_confusion_chart(result: AuditResult) -> Chart | None:
    pairs = run_pairs(result)
    if not pairs:
        return None
    fa, fb = pairs[0]
    m = confusion_table(result, fa, fb)
    if not m.size:
        return None
    px = m.to_numpy()
    rows = px.sum(axis=1, keepdims=True)
    share = np.where(rows > 0, px / np.maximum(rows, 1), np.nan)
    trace = {"type": "heatmap", "x": m.columns.tolist(), "y": m.index.tolist(),
             "z": [none_nan([round(float(v), 4) for v in r]) for r in share], "customdata": px.tolist(),
             "colorscale": "Blues", "hoverongaps": False, "colorbar": {"thickness": 8},
             "hovertemplate": f"{fa}: %{{y}}, {fb}: %{{x}}: %{{customdata:,}} px (%{{z:.1%}} of the row)"
                              "<extra></extra>"}
    return Chart("class_confusion", f"Class confusion: {pair_label(fa, fb)}", [trace],
                 chart_layout(f"Pixels per class: rows {fa}, columns {fb} (share of the row; click a cell)",
                              height=420, xaxis={"automargin": True, "tickangle": -45},
                              yaxis={"autorange": "reversed", "automargin": True}))


def image_confusions(samples, result: AuditResult, field_a: str, field_b: str) -> pd.DataFrame:
    """Per image the non-zero cells of the confusion matrix of ``field_a`` (rows) and ``field_b``:
    ``sample_id, value_a, value_b, pixels``, over the run's view and the samples the run compared
    (every field of the run has a mask), masks read and resized as the run's config says."""
    from iou_audit.geometry.semantic import value_confusion_matrix
    from iou_audit.table.segmentation import iter_segmentation_batches

    c = result.config or {}
    fields = list(c.get("fields") or [])
    if field_a not in fields or field_b not in fields:
        raise ValueError(f"fields must be two of {fields}, got {field_a!r} and {field_b!r}")
    ia, ib = fields.index(field_a), fields.index(field_b)
    parts = []
    for batch in iter_segmentation_batches(run_view(samples, result), fields, int(c.get("batch_size", 128)),
                                           int(c.get("workers", 4)), c.get("resize", "error")):
        for i, sid in enumerate(batch.sample_ids):
            if any(m[i] is None for m in batch.masks):
                continue
            values, conf = value_confusion_matrix(batch.masks[ia][i], batch.masks[ib][i])
            r, k = np.nonzero(conf)
            parts.append(pd.DataFrame({"sample_id": sid, "value_a": values[r], "value_b": values[k],
                                       "pixels": conf[r, k]}))
    if not parts:
        return pd.DataFrame({"sample_id": pd.Series(dtype=object), "value_a": pd.Series(dtype=np.int64),
                             "value_b": pd.Series(dtype=np.int64), "pixels": pd.Series(dtype=np.int64)})
    return pd.concat(parts, ignore_index=True)


def _segmentation_label_ids(samples, sample_ids, fields) -> dict[str, dict[str, str]]:
    """``{field: {sample_id: label id}}`` of the Segmentation labels of these samples."""
    view = samples.select(list(sample_ids))
    ids = view.values("id")
    return {f: {s: lid for s, lid in zip(ids, view.values(f"{f}.id")) if lid} for f in fields}


def _region_rows(samples, result: AuditResult, sample_ids, keep) -> pd.DataFrame:
    """The run's regions of disagreement on these samples whose ``(class in field 1, class in field
    2)`` pair satisfies ``keep``: ``sample_id, label_id, pixels``."""
    field = (result.config or {}).get("regions_field")
    if not field or samples.get_field(field) is None or not len(sample_ids):
        return pd.DataFrame(columns=["sample_id", "label_id", "pixels"])
    view = samples.select(list(sample_ids))
    sids, ids, labels, pixels = view.values(["id", f"{field}.detections.id", f"{field}.detections.label",
                                             f"{field}.detections.pixels"])
    rows = []
    for sid, i_s, l_s, p_s in zip(sids, ids, labels, pixels):
        for lid, label, n in zip(i_s or [], l_s or [], p_s or []):
            a, _, b = str(label).partition(" vs ")
            if keep(a, b):
                rows.append((sid, lid, int(n or 0)))
    return pd.DataFrame(rows, columns=["sample_id", "label_id", "pixels"])


def _selection(samples, result, fa, fb, per_sample: pd.Series, regions: pd.DataFrame, title: str) -> Selection:
    """Samples by ``per_sample`` score (highest first), each with both Segmentation labels and its regions."""
    sids = per_sample.index.tolist()
    labels = _segmentation_label_ids(samples, sids, [fa, fb])
    region_field = (result.config or {}).get("regions_field") or ""
    rows = [(s, f, labels[f][s], float(per_sample[s])) for s in sids for f in (fa, fb) if s in labels[f]]
    rows += [(s, region_field, lid, float(per_sample.get(s, 0.0))) for s, lid in zip(regions["sample_id"],
                                                                                    regions["label_id"])]
    if not rows:
        return Selection(sids, {}, fields=[fa, fb], title=title)
    s, f, lid, score = zip(*rows)
    return selection_from_rows(s, f, lid, score, title=title)


def select_segmentation_class(samples, result: AuditResult, label: str, trace=None) -> Selection:
    """The images where class ``label`` has pixels in either field of the pair, lowest IoU first."""
    fa, fb = _pair(result, trace)
    values = _class_values(result).get(str(label))
    if not values:
        raise ValueError(f"class {label!r} is not in run {result.audit_key!r}")
    cells = image_confusions(samples, result, fa, fb)
    va, vb = cells["value_a"].isin(values), cells["value_b"].isin(values)
    inter = cells[va & vb].groupby("sample_id")["pixels"].sum()
    union = cells[va | vb].groupby("sample_id")["pixels"].sum()
    iou = (inter.reindex(union.index, fill_value=0) / union).sort_values(kind="stable")
    regions = _region_rows(samples, result, iou.index.tolist(), lambda a, b: label in (a, b))
    return _selection(samples, result, fa, fb, 1.0 - iou, regions,
                      title=f"images with {label} in {fa} or {fb}")


def select_segmentation_cell(samples, result: AuditResult, class_a: str, class_b: str) -> Selection:
    """The images with pixels that the first field calls ``class_a`` and the second ``class_b``."""
    fa, fb = _pair(result, None)
    shown = heatmap_classes(result, fa, fb)
    names = _class_values(result)
    other = sorted({v for n, vs in names.items() if n not in shown for v in vs})

    def values(name):
        if name == OTHER_CLASSES:
            return other
        if name not in names:
            raise ValueError(f"class {name!r} is not in run {result.audit_key!r}")
        return names[name]

    def named(name):
        return (lambda n: n not in shown) if name == OTHER_CLASSES else (lambda n: n == name)

    cells = image_confusions(samples, result, fa, fb)
    hit = cells[cells["value_a"].isin(values(class_a)) & cells["value_b"].isin(values(class_b))]
    pixels = hit.groupby("sample_id")["pixels"].sum().sort_values(ascending=False, kind="stable")
    in_a, in_b = named(class_a), named(class_b)
    regions = _region_rows(samples, result, pixels.index.tolist(), lambda a, b: a != b and in_a(a) and in_b(b))
    return _selection(samples, result, fa, fb, pixels.astype(float), regions,
                      title=f"{class_a} in {fa}, {class_b} in {fb}")

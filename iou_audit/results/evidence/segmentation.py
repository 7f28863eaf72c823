"""Charts of a segmentation agreement run: IoU per class, the class confusion heatmap, and what is
behind each.

Both charts come from the stored run (``per_class`` and ``confusion`` tables). What is behind an
element is recomputed per image from the masks of the run's view, read and counted as the audit
does (:func:`image_confusions`: the same reader, the same pixel counting, the same samples: those
where every field of the run has a mask):

- ``class_iou``: bar (class c, pair "a vs b") -> the images where c has pixels in a or in b, the
  lowest per-image IoU of c first, with both Segmentation labels and the regions of disagreement
  (``regions_field``) whose label names c on either side;
- ``class_confusion`` (the run's first pair of fields), ``class_confusion_2``, ``class_confusion_3``
  ... (one heatmap per further pair, :func:`confusion_chart_name`): cell (class i in a, class j in
  b) -> the images with pixels that a calls i and b calls j, most such pixels first, with both
  Segmentation labels and, off the diagonal, the regions labelled "i vs j" (regions are of the
  first pair only). The heatmap draws the :data:`MAX_CONFUSION_CLASSES` classes with most pixels;
  the others are one row and column, :data:`OTHER_CLASSES`, and a click there selects over all of them.

The per-image counts behind the clicks (:func:`image_confusions`, every pair of the run in one
read of its masks) are kept for the last :data:`CACHED_RUNS` runs, keyed by the run (key, config,
when it was written) and its view's samples (count, latest ``last_modified_at``): further clicks on
the same run read no mask; editing a sample reads them again.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict

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
#: Chart name of the first pair's confusion heatmap; pair k (1-based, k >= 2) is ``<name>_<k>``.
CONFUSION_CHART = "class_confusion"
#: Runs whose per-image confusion cells are kept in memory (see the module docstring).
CACHED_RUNS = 4
_CELLS: OrderedDict = OrderedDict()
_CELLS_LOCK = threading.Lock()


def confusion_chart_name(pair_index: int) -> str:
    """The chart name of the confusion heatmap of the run's pair ``pair_index`` (0-based).

    Example:
        >>> confusion_chart_name(0), confusion_chart_name(2)
        ('class_confusion', 'class_confusion_3')
    """
    return CONFUSION_CHART if pair_index == 0 else f"{CONFUSION_CHART}_{pair_index + 1}"


def confusion_chart_pair(result: AuditResult, chart: str) -> str:
    """The pair label of a confusion heatmap's chart name (:func:`confusion_chart_name`)."""
    pairs = run_pairs(result)
    for i, p in enumerate(pairs):
        if confusion_chart_name(i) == chart:
            return pair_label(*p)
    raise ValueError(f"unknown chart {chart!r}; pairs: {[pair_label(*p) for p in pairs]}")


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


def class_confusion_charts(result: AuditResult) -> dict[str, Chart]:
    """One confusion heatmap per pair of fields, by chart name (:func:`confusion_chart_name`)."""
    out = {}
    for i, (fa, fb) in enumerate(run_pairs(result)):
        chart = _confusion_chart(result, fa, fb, confusion_chart_name(i))
        if chart is not None:
            out[chart.name] = chart
    return out


def class_confusion_chart(result: AuditResult) -> Chart | None:
    """The first pair's confusion heatmap (:func:`class_confusion_charts` has every pair's)."""
    pairs = run_pairs(result)
    return _confusion_chart(result, *pairs[0], CONFUSION_CHART) if pairs else None


def _confusion_chart(result: AuditResult, fa: str, fb: str, name: str) -> Chart | None:
    m = confusion_table(result, fa, fb)
    if not m.size:
        return None
    px = m.to_numpy()
    rows = px.sum(axis=1, keepdims=True)
    share = np.where(rows > 0, px / np.maximum(rows, 1), np.nan)
    trace = {"type": "heatmap", "name": pair_label(fa, fb), "x": m.columns.tolist(), "y": m.index.tolist(),
             "z": [none_nan([round(float(v), 4) for v in r]) for r in share], "customdata": px.tolist(),
             "colorscale": "Blues", "hoverongaps": False, "colorbar": {"thickness": 8},
             "hovertemplate": f"{fa}: %{{y}}, {fb}: %{{x}}: %{{customdata:,}} px (%{{z:.1%}} of the row)"
                              "<extra></extra>"}
    return Chart(name, f"Class confusion: {pair_label(fa, fb)}", [trace],
                 chart_layout(f"Pixels per class: rows {fa}, columns {fb} (share of the row; click a cell)",
                              height=420, xaxis={"automargin": True, "tickangle": -45},
                              yaxis={"autorange": "reversed", "automargin": True}))


def image_confusions(samples, result: AuditResult, field_a: str, field_b: str) -> pd.DataFrame:
    """Per image the non-zero cells of the confusion matrix of ``field_a`` (rows) and ``field_b``:
    ``sample_id, value_a, value_b, pixels``, over the run's view and the samples the run compared
    (every field of the run has a mask), masks read and resized as the run's config says; every
    pair's cells come from one read, kept for further calls (see the module docstring)."""
    c = result.config or {}
    fields = list(c.get("fields") or [])
    if field_a not in fields or field_b not in fields:
        raise ValueError(f"fields must be two of {fields}, got {field_a!r} and {field_b!r}")
    view = run_view(samples, result)
    key = _cells_key(view, result)
    with _CELLS_LOCK:
        cells = _CELLS.get(key)
        if cells is not None:
            _CELLS.move_to_end(key)
    if cells is None:
        cells = _read_image_confusions(view, fields, c)
        with _CELLS_LOCK:
            _CELLS[key] = cells
            while len(_CELLS) > CACHED_RUNS:
                _CELLS.popitem(last=False)
    ia, ib = sorted((fields.index(field_a), fields.index(field_b)))
    t = cells[(ia, ib)]
    if fields.index(field_a) > fields.index(field_b):  # rows: field_a
        t = t.rename(columns={"value_a": "value_b", "value_b": "value_a"})[["sample_id", "value_a", "value_b",
                                                                           "pixels"]]
    return t


def _cells_key(view, result: AuditResult) -> tuple:
    """What the cached cells depend on: the run (dataset, key, config, when written) and the samples
    of its view (how many, the latest ``last_modified_at``: a mask edit moves it)."""
    from iou_audit import fiftyone_private as fop

    try:
        written = getattr(fop.root_dataset(view).get_run_info(result.audit_key).config, "completed_at", None)
    except Exception:  # not stored on this dataset
        written = None
    latest = view.max("last_modified_at") if view.has_field("last_modified_at") else None
    return (fop.dataset_id(fop.root_dataset(view)), result.audit_key, written,
            json.dumps(result.config or {}, sort_keys=True, default=str), len(view), str(latest))


def _read_image_confusions(view, fields: list[str], config: dict) -> dict[tuple[int, int], pd.DataFrame]:
    from itertools import combinations

    from iou_audit.geometry.semantic import value_confusion_matrix
    from iou_audit.table.segmentation import iter_segmentation_batches

    pairs = list(combinations(range(len(fields)), 2))

    def count(masks):
        if any(m is None for m in masks):
            return None
        return [value_confusion_matrix(masks[a], masks[b]) for a, b in pairs]

    parts = {p: [] for p in pairs}
    for batch in iter_segmentation_batches(view, fields, int(config.get("batch_size", 128)),
                                           int(config.get("workers", 4)), config.get("resize", "error"),
                                           per_sample=count, keep_masks=False):
        for sid, per_pair in zip(batch.sample_ids, batch.results):
            for p, (values, conf) in zip(pairs, per_pair or []):
                r, k = np.nonzero(conf)
                parts[p].append((sid, values[r], values[k], conf[r, k]))
    out = {}
    for p in pairs:
        rows = parts[p]
        out[p] = pd.DataFrame({
            "sample_id": pd.Series([sid for sid, va, _, _ in rows for _ in range(len(va))], dtype=object),
            "value_a": pd.Series(np.concatenate([va for _, va, _, _ in rows]) if rows else [], dtype=np.int64),
            "value_b": pd.Series(np.concatenate([vb for _, _, vb, _ in rows]) if rows else [], dtype=np.int64),
            "pixels": pd.Series(np.concatenate([n for _, _, _, n in rows]) if rows else [], dtype=np.int64)})
    return out


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


def select_segmentation_cell(samples, result: AuditResult, class_a: str, class_b: str, trace=None) -> Selection:
    """The images with pixels that the pair's first field calls ``class_a`` and its second
    ``class_b`` (``trace``: the pair's label, :func:`pair_label`; default the run's first pair)."""
    fa, fb = _pair(result, trace)
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
    first = (fa, fb) == run_pairs(result)[0]  # the regions are the first pair's disagreement
    regions = _region_rows(samples, result, pixels.index.tolist() if first else [],
                           lambda a, b: a != b and in_a(a) and in_b(b))
    return _selection(samples, result, fa, fb, pixels.astype(float), regions,
                      title=f"{class_a} in {fa}, {class_b} in {fb}")

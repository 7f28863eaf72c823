"""The evidence behind an audit's numbers: chart data, and the samples and labels behind each part.

A package with one module per audit (``agreement``, ``predictions``, ``splits``, ``segmentation``,
``keypoints``), plus ``base`` (charts, selections, views), ``kinds`` (every audit's findings chart),
``staleness`` and ``queue`` (the panel's triage queue); this module dispatches and re-exports.

The review panel draws every stored audit run as pictures (bars, heatmaps, histograms, curves) and
turns a click on one element into a view of exactly the samples and labels behind it. Both halves
live here, so the plugin only lays them out:

- ``charts(result, samples)`` -> ``{name: Chart}``: plotly traces and a layout per chart, computed
  from the stored run (its findings, tables, metrics) and, for per-label distributions, the label
  attributes the run wrote;
- ``select(samples, result, chart, point)`` -> :class:`Selection`: the sample ids (most suspicious
  first) and, per label field, the label ids behind the clicked element (``point`` is what the App
  sends on a click: ``x``, ``y``, ``trace``, ``idx``);
- ``selection_view(dataset, selection)``: the App view showing those samples with only those
  labels (every other label and label field hidden).

What is behind each element:

- ``kinds`` (every audit): bar (kind, class) -> the findings of that kind and class: their labels
  (``label_id`` and ``other_label_id``) or, for sample-level findings (leaks), their samples;
- ``matrix`` (agreement): cell (a, b) -> the objects on which annotators a and b disagree, both
  annotators' labels: a label of one with no match in the other (same matching as the audit:
  ``iou_thresh``, ``method``, geometry, coverage), a matched pair of different classes, or a
  matched pair with IoU below ``low_iou``; recomputed from the dataset with the audit's matching
  (:func:`pair_disagreements`), whose unmatched/matched counts equal the stored pair table;
- ``iou_hist`` (agreement): bin -> the labels whose ``<key>_iou`` (mean IoU with the other members
  of their object) falls in the bin (``[lo, hi)``, the last bin ``[lo, hi]``);
- ``class_agreement`` (agreement): bar -> the findings of that class;
- ``threshold_curve`` (agreement): point at threshold t -> the labels whose ``<key>_iou`` is below
  t (matched at the audit's threshold, below t);
- ``annotators`` (agreement): bar -> the findings blaming that annotator (its extra, low-agreement
  and class-conflict labels, and the other annotators' labels of the objects it lacks);
- ``confusion`` (predictions): cell (label class g, predicted class p) -> the labels of class g
  and the predictions of class p matched together (``<key>_confusion``); the ``unmatched`` row and
  column hold the lone predictions and the lone labels;
- ``per_class`` (predictions): precision bar -> the class's false-positive predictions, recall bar
  -> its false-negative labels, AP bar -> both (from ``<key>_error`` and ``<key>_match_id``);
- ``tide`` (predictions): bar -> the predictions (or, for ``missed``, the labels) of that TIDE error
  type (``<key>_tide``);
- ``drift`` (splits): bar -> the samples of the two splits of that test;
- ``class_iou``, ``class_confusion`` (segmentation): see :mod:`.segmentation`;
- ``per_keypoint`` (keypoint agreement and predictions): see :mod:`.keypoints`.
"""
from __future__ import annotations

from typing import Any, Mapping

from iou_audit.results.evidence.agreement import (
    IOU_BINS,
    MATRIX_METRICS,
    agreement_matrix,
    annotator_names,
    annotators_chart,
    class_agreement_chart,
    iou_bins,
    iou_histogram_chart,
    iou_values,
    matrix_chart,
    pair_disagreements,
    select_annotator,
    select_below_iou,
    select_class,
    select_iou_bin,
    select_pair,
    threshold_curve_chart,
)
from iou_audit.results.evidence.base import (
    Chart,
    Selection,
    chart_layout,
    findings_selection,
    label_rows,
    need_attr,
    none_nan,
    result_fields,
    run_view,
    selection_from_rows,
    selection_view,
)
from iou_audit.results.evidence.keypoints import AUDITS as KEYPOINT_AUDITS
from iou_audit.results.evidence.keypoints import keypoint_chart, keypoint_findings, select_keypoint
from iou_audit.results.evidence.kinds import kind_class_counts, kinds_chart, select_kind_class
from iou_audit.results.evidence.predictions import (
    UNMATCHED,
    confusion_chart,
    per_class_chart,
    prediction_errors,
    select_class_errors,
    select_confusion,
    select_tide,
    tide_chart,
)
from iou_audit.results.evidence.queue import PAGE_SIZE, filter_choices, filter_frame, queue_page, triage_selection
from iou_audit.results.evidence.segmentation import AUDIT as SEGMENTATION_AUDIT
from iou_audit.results.evidence.segmentation import (
    OTHER_CLASSES,
    class_confusion_chart,
    class_confusion_charts,
    class_iou_chart,
    confusion_chart_pair,
    image_confusions,
    select_segmentation_cell,
    select_segmentation_class,
)
from iou_audit.results.evidence.splits import drift_chart, drift_label, leak_pairs, select_drift
from iou_audit.results.evidence.staleness import REVIEW_WRITE_SECONDS, staleness
from iou_audit.results.result import NO_CLASS, AuditResult

__all__ = [
    "IOU_BINS", "KEYPOINT_AUDITS", "MATRIX_METRICS", "NO_CLASS", "OTHER_CLASSES", "PAGE_SIZE",
    "REVIEW_WRITE_SECONDS", "SEGMENTATION_AUDIT", "UNMATCHED", "Chart", "Selection", "agreement_matrix",
    "annotator_names", "annotators_chart", "chart_layout", "charts", "class_agreement_chart",
    "class_confusion_chart", "class_confusion_charts", "class_iou_chart", "confusion_chart", "confusion_chart_pair",
    "drift_chart", "drift_label", "filter_choices", "filter_frame", "findings_selection", "image_confusions", "iou_bins", "iou_histogram_chart", "iou_values",
    "keypoint_chart", "keypoint_findings", "kind_class_counts", "kinds_chart", "label_rows", "leak_pairs",
    "matrix_chart", "need_attr", "none_nan", "pair_disagreements", "per_class_chart", "prediction_errors",
    "queue_page", "result_fields", "run_view", "select", "select_annotator", "select_below_iou", "select_class",
    "select_class_errors", "select_confusion", "select_drift", "select_iou_bin", "select_keypoint",
    "select_kind_class", "select_pair", "select_segmentation_cell", "select_segmentation_class", "select_tide",
    "selection_from_rows", "selection_view", "staleness", "threshold_curve_chart", "tide_chart", "triage_selection",
]


def charts(result: AuditResult, samples=None, metric: str = "f1") -> dict[str, Chart]:
    """Every chart of a stored audit run, by name (see the module docstring for what each shows).

    ``samples`` (the dataset) is needed for the agreement IoU histogram, which reads the per-label
    ``<key>_iou`` values the run wrote; ``metric`` picks the agreement matrix's values
    (:data:`MATRIX_METRICS`).
    """
    out = {"kinds": kinds_chart(result)}
    if result.audit == "agreement":
        out["matrix"] = matrix_chart(result, metric)
        if samples is not None:
            out["iou_hist"] = iou_histogram_chart(samples, result)
        out["class_agreement"] = class_agreement_chart(result, metric)
        out["threshold_curve"] = threshold_curve_chart(result)
        out["annotators"] = annotators_chart(result)
    elif result.audit == "predictions":
        if "confusion" in result.tables:
            out["confusion"] = confusion_chart(result)
        if "per_class" in result.tables:
            out["per_class"] = per_class_chart(result)
        if "tide" in result.tables:
            out["tide"] = tide_chart(result)
    elif result.audit == "splits":
        if "drift_tests" in result.tables and len(result.tables["drift_tests"]):
            out["drift"] = drift_chart(result)
    elif result.audit == SEGMENTATION_AUDIT:
        out["class_iou"] = class_iou_chart(result)
        out.update(class_confusion_charts(result))  # one heatmap per pair of fields
    elif result.audit in KEYPOINT_AUDITS:
        out["per_keypoint"] = keypoint_chart(result)
    return {k: v for k, v in out.items() if v is not None}



def select(samples, result: AuditResult, chart: str, point: Mapping[str, Any]) -> Selection:
    """The selection behind one clicked element of ``charts(result)[chart]``.

    ``point`` is the App's click event: ``x``, ``y`` (categories or numbers), ``trace`` (the trace
    name), ``idx`` (point index), ``id`` (the trace's ``ids`` entry).
    """
    x, y, trace, idx = point.get("x"), point.get("y"), point.get("trace"), point.get("idx")
    if chart == "kinds":  # horizontal bars: the kind is the bar's id (and its y)
        kind = point.get("id") or (y if isinstance(y, str) else x)
        return select_kind_class(result, str(kind), str(trace if trace is not None else NO_CLASS))
    if chart == "matrix":
        return select_pair(samples, result, str(y), str(x))
    if chart == "iou_hist":
        index = point.get("id")
        index = int(index) if index not in (None, "") else int(idx)
        return select_iou_bin(samples, result, index)
    if chart == "class_agreement":
        return select_class(result, str(x))
    if chart == "threshold_curve":
        return select_below_iou(samples, result, float(x))
    if chart == "annotators":
        return select_annotator(result, str(x))
    if chart == "confusion":
        return select_confusion(samples, result, str(y), str(x))
    if chart == "per_class":
        return select_class_errors(samples, result, str(x), str(trace or "AP"))
    if chart == "tide":
        return select_tide(samples, result, str(x))
    if chart == "drift":
        index = point.get("id")
        return select_drift(samples, result, int(index) if index not in (None, "") else int(idx))
    if chart == "class_iou":
        return select_segmentation_class(samples, result, str(x), trace)
    if chart == "class_confusion" or chart.startswith("class_confusion_"):
        return select_segmentation_cell(samples, result, str(y), str(x), confusion_chart_pair(result, chart))
    if chart == "per_keypoint":
        return select_keypoint(result, str(x))
    raise ValueError(f"unknown chart {chart!r}")


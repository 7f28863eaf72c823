"""The round trip from findings to fixed labels (issue 11 part 4).

- :mod:`~iou_audit.relabel.selection`: what to relabel (a view, a field, flagged label ids, reasons);
- :mod:`~iou_audit.relabel.export`: the relabel queue through FiftyOne's COCO / CVAT / YOLO exporters,
  nothing written outside the chosen directory (:mod:`~iou_audit.relabel.paths`);
- :mod:`~iou_audit.relabel.annotate`: send to an annotation backend, load the edits back;
- :mod:`~iou_audit.relabel.fixes`: apply / undo recorded fixes that need no annotator.
"""
from iou_audit.relabel.annotate import (
    BackendNotConfigured,
    check_backend,
    configured_backends,
    load_relabel_annotations,
    relabel_runs,
    send_to_annotation,
)
from iou_audit.relabel.export import FORMATS, export_relabel_queue
from iou_audit.relabel.fixes import FIX_ACTIONS, FixPlan, FixRefused, apply_fix, list_fixes, plan_fix, undo_fix
from iou_audit.relabel.paths import UnsafeExportPath
from iou_audit.relabel.selection import REASON_ATTR, Selection, finding_tags, select_confirmed, select_labels

__all__ = [
    "BackendNotConfigured", "FIX_ACTIONS", "FORMATS", "FixPlan", "FixRefused", "REASON_ATTR", "Selection",
    "UnsafeExportPath", "apply_fix", "check_backend", "configured_backends", "export_relabel_queue",
    "finding_tags", "list_fixes", "load_relabel_annotations", "plan_fix", "relabel_runs", "select_confirmed", "select_labels",
    "send_to_annotation", "undo_fix",
]

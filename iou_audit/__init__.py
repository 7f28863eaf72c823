"""iou-audit: annotation-quality audits for computer-vision datasets.

Layers (arrows point down only): audits -> table -> matching -> geometry.
"""
__version__ = "0.1.0"

from iou_audit.geometry.boxes import box_iou  # noqa: E402

__all__ = ["box_iou", "__version__"]

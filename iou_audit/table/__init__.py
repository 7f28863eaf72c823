"""FiftyOne <-> columnar label tables: bulk reads into :class:`LabelTable`, bulk writes by label id."""
from iou_audit.table.bulk import ReadLayout
from iou_audit.table.model import (
    PROBLEM_COLUMNS,
    LabelTable,
    frame_sizes_known,
    require_frame_sizes,
    split_by_attribute,
    validate_table,
)
from iou_audit.table.read import check_label_field, iter_label_tables, read_label_table
from iou_audit.table.write import (
    tag_labels_by_id,
    untag_labels,
    update_labels,
    write_label_attributes,
    write_sample_values,
)

__all__ = [
    "LabelTable",
    "PROBLEM_COLUMNS",
    "ReadLayout",
    "check_label_field",
    "frame_sizes_known",
    "iter_label_tables",
    "read_label_table",
    "require_frame_sizes",
    "split_by_attribute",
    "tag_labels_by_id",
    "untag_labels",
    "update_labels",
    "validate_table",
    "write_label_attributes",
    "write_sample_values",
]

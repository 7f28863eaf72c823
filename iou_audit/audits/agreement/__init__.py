"""Multi-annotator agreement: matching across annotators, clusters, statistics, consensus, findings.

Pipeline (each step its own module):
1. ``pairs``: for every annotator pair and sample, the IoU block and a one-to-one matching
   (Hungarian by default, geometry first: classes are compared after matching, as CVAT does).
2. ``clusters``: objects across annotators with at most one label per annotator, built from the
   pairwise matches by a deterministic, field-order-independent rule.
3. ``stats``: per object (annotators present, mean/min pairwise IoU, class votes, normalised edge
   offsets), per image/class/annotator pair (matching F1, mean IoU), per annotator (reliability
   against the consensus of the others); ``cluster_stats`` computes the per-object and per-class
   tables on flat arrays, bit-identical to the pandas path kept in ``stats``.
4. ``kalpha``: Krippendorff's alpha, nominal (kalphacv's definition) and interval (1 - IoU);
   ``curve``: the nominal alpha of the threshold curve straight from the union-find.
5. ``coco_map``: inter-annotator mAP@[.5:.95], each annotator as reference in turn.
6. ``findings``: low_agreement, missing_in_annotator, extra_in_annotator, class_conflict.
7. ``consensus``: fused labels (WBF-style averaged boxes, per-pixel majority masks, majority class).
``core.compute_agreement`` runs 1-6 on arrays; ``core.compute_agreement_batches`` does the same over
batches of samples (``parts``: geometry per batch, O(labels) results joined, statistics once);
``audit.audit_agreement`` reads FiftyOne in batches (``batch_size``) and writes the results.
"""
from iou_audit.audits.agreement.core import Agreement, compute_agreement, compute_agreement_batches  # noqa: F401


def audit_agreement(*args, **kwargs):
    """See :func:`iou_audit.audits.agreement.audit.audit_agreement` (imported lazily: needs FiftyOne)."""
    from iou_audit.audits.agreement.audit import audit_agreement as _run

    return _run(*args, **kwargs)


__all__ = ["Agreement", "compute_agreement", "compute_agreement_batches", "audit_agreement"]

"""Review: one triage queue across audits, and the memory of reviewers' decisions.

- :func:`triage` merges every stored audit's findings into one queue (one row per label, missing
  object, sample or sample pair), with evidence in words, a combined score and the review state;
- :func:`mark_review` / :func:`clear_review` record or remove decisions (``confirmed``,
  ``not_an_error``, ``fixed``), kept in the database keyed by row id plus a fingerprint of the
  label's content, shown as label tags ``review:<state>`` and per-sample counts ``review_<state>``;
- :func:`load_decisions` returns them.
Modules: ``states`` (the names), ``rows`` (row ids), ``fingerprint``, ``content`` (reading labels
now), ``words`` (evidence), ``memory`` (decisions, tags, counts), ``queue`` (the merge),
``views`` (the App view of queue rows), ``export`` (CSV/Parquet/JSON).
"""
from iou_audit.review.fingerprint import label_fingerprint, sample_fingerprint
from iou_audit.review.memory import clear_review, load_decisions, mark_review
from iou_audit.review.queue import QUEUE_COLUMNS, noisy_or, triage
from iou_audit.review.states import (
    COUNT_FIELDS,
    DEFAULT_QUEUE_STATES,
    QUEUE_STATES,
    REVIEW_STATES,
    REVIEW_TAGS,
    TAG_PREFIX,
    review_tag,
)
from iou_audit.review.views import queue_view

__all__ = [
    "COUNT_FIELDS",
    "DEFAULT_QUEUE_STATES",
    "QUEUE_COLUMNS",
    "QUEUE_STATES",
    "REVIEW_STATES",
    "REVIEW_TAGS",
    "TAG_PREFIX",
    "clear_review",
    "label_fingerprint",
    "load_decisions",
    "mark_review",
    "noisy_or",
    "queue_view",
    "review_tag",
    "sample_fingerprint",
    "triage",
]

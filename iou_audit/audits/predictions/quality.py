"""One label-quality score per ground-truth label and per image, to order the relabeling queue.

Formula (scores from :mod:`iou_audit.audits.predictions.errors`, each 0..1, higher = more suspicious):

- label suspicion ``s_g = max(possible_spurious_g, class_swap_g, mislocated_g)``; its argmax names the
  label's most likely error kind;
- label quality ``q_g = 1 - s_g`` (1 = the model fully agrees with the label);
- image suspicion ``s_i = max(max_g s_g, max_p possible_missing_p)`` over the image's labels and its
  unexplained predictions; image quality ``q_i = 1 - s_i`` (1 for an image with nothing to check).

A max rather than a mean or a product: one wrong label makes an image worth a look however many
right labels it has, so images with many objects are not diluted (a mean) nor penalised (a product).

Example:
    >>> label_quality(np.array([0.1, 0.9]), np.array([0.0, 0.2]), np.array([0.3, 0.0]))
    (array([0.7, 0.1]), array(['mislocated', 'possible_spurious'], dtype=object))
"""
from __future__ import annotations

import numpy as np

from iou_audit.audits.predictions.errors import group_max

LABEL_KINDS = np.array(["possible_spurious", "class_swap", "mislocated"], dtype=object)


def label_quality(spurious: np.ndarray, class_swap: np.ndarray, mislocated: np.ndarray):
    """``(quality, kind)`` per label: ``1 - max`` of the three label-error scores and its argmax."""
    stack = np.stack([spurious, class_swap, mislocated], axis=1)
    if len(stack) == 0:
        return np.zeros(0), np.zeros(0, dtype=object)
    k = np.argmax(stack, axis=1)
    return 1.0 - stack[np.arange(len(k)), k], LABEL_KINDS[k]


def image_quality(
    gt_sample_index: np.ndarray,
    label_q: np.ndarray,
    pred_sample_index: np.ndarray,
    possible_missing: np.ndarray,
    num_samples: int,
) -> np.ndarray:
    """Per-image quality ``1 - max(label suspicions, possible_missing scores)`` (see module docstring).

    Example:
        >>> image_quality(np.array([0, 0]), np.array([0.9, 0.4]), np.array([1]), np.array([0.8]), 3)
        array([0.4, 0.2, 1. ])
    """
    s_lab, _ = group_max(np.asarray(gt_sample_index), 1.0 - np.asarray(label_q), num_samples)
    s_miss, _ = group_max(np.asarray(pred_sample_index), np.asarray(possible_missing), num_samples)
    return 1.0 - np.maximum(s_lab, s_miss)

"""A reviewed segmentation image row is fingerprinted by its masks' pixel values: editing a mask
(in the database or the ``mask_path`` file) brings a ``not_an_error`` row back as
``changed_since_review``; the same values stored again (another dtype) and a consensus field an
audit writes later do not. The queue's state is the oracle's: the masks are edited here with
FiftyOne's own ``Segmentation`` objects and ``sample.save()``."""
from __future__ import annotations

import cv2
import numpy as np

from iou_audit.audits.segmentation import audit_segmentation_agreement
from iou_audit.review import mark_review, triage


def _image_rows(ds):
    q = triage(ds, states=None)
    q = q[q["row_type"] == "sample"]
    return dict(zip(q["sample_id"], q["review_state"]))


def test_editing_a_mask_reopens_a_reviewed_image_row(dataset, tmp_path):
    import fiftyone as fo

    rng = np.random.default_rng(12)
    samples = []
    for s in range(3):
        a = np.kron(rng.integers(0, 4, (4, 5)), np.ones((8, 8), int)).astype(np.uint8)
        b = rng.integers(0, 4, a.shape).astype(np.uint8)  # noise: mIoU far below 0.5 on every image
        path = str(tmp_path / f"b{s}.png")
        cv2.imwrite(path, b)
        samples.append(fo.Sample(filepath=str(tmp_path / f"{s}.jpg"), gt=fo.Segmentation(mask=a),
                                 pred=fo.Segmentation(mask_path=path)))
    dataset.add_samples(samples)
    audit_segmentation_agreement(dataset, ["gt", "pred"], audit_key="seg")
    ids = dataset.values("id")
    assert set(_image_rows(dataset)) == set(ids)
    assert mark_review(dataset, ids, "not_an_error", user="t") == 3
    assert set(_image_rows(dataset).values()) == {"not_an_error"}

    # the same values stored again (int64) and a consensus written by a later audit: unchanged
    first = dataset[ids[0]]
    first.gt = fo.Segmentation(mask=first.gt.get_mask().astype(np.int64))
    first.save()
    audit_segmentation_agreement(dataset, ["gt", "pred"], audit_key="seg2", consensus_field="cons")
    assert set(_image_rows(dataset).values()) == {"not_an_error"}

    # one pixel of a stored mask edited; one pixel of a mask file rewritten in place
    second = dataset[ids[1]]
    edited = second.gt.get_mask().copy()
    edited[0, 0] = (int(edited[0, 0]) + 1) % 4
    second.gt = fo.Segmentation(mask=edited)
    second.save()
    path = dataset[ids[2]].pred.mask_path
    b = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    b[3, 3] = (int(b[3, 3]) + 1) % 4
    cv2.imwrite(path, b)
    assert _image_rows(dataset) == {ids[0]: "not_an_error", ids[1]: "changed_since_review",
                                    ids[2]: "changed_since_review"}

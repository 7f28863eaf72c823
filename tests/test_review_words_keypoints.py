"""The triage queue's evidence for keypoint findings says OKS (what their ``iou`` column holds),
never IoU; box findings keep IoU. On the real CrowdPose example, through ``triage``."""
from __future__ import annotations

import pytest

from iou_audit.audits.keypoints import audit_keypoint_agreement, audit_keypoint_duplicates, audit_keypoint_predictions
from iou_audit.audits.keypoints.agreement import AUDIT as AGREEMENT
from iou_audit.audits.keypoints.duplicates import AUDIT as DUPLICATES
from iou_audit.audits.keypoints.predictions import AUDIT as PREDICTIONS
from iou_audit.geometry.keypoints import CROWDPOSE_AREA_FACTOR, CROWDPOSE_SIGMAS
from iou_audit.review.words import finding_words


def test_keypoint_audits_say_oks_box_audits_iou():
    for audit in (PREDICTIONS, AGREEMENT, DUPLICATES):  # the rule is the audits' names: keypoint_*
        words = finding_words(audit, "some_kind", "person", 0.9, 0.654, "detail")
        assert words.endswith(", OKS 0.65") and "IoU" not in words, (audit, words)
    assert finding_words("duplicates", "duplicate", "RBC", 0.93, 0.93, "RBC vs RBC: IoU 0.930 (boxes)").endswith(
        ", IoU 0.93")
    assert finding_words("predictions", "mislocated", "RBC", 0.6, 0.4, "best IoU 0.40").endswith("IoU 0.40")


@pytest.fixture
def crowdpose(shared_data):
    from iou_audit.examples.crowdpose import load_dataset

    ds = load_dataset(shared_data / "crowdpose-example")
    yield ds
    ds.delete()


def test_triage_evidence_of_keypoint_findings_says_oks(crowdpose):
    from iou_audit.review.queue import triage

    sigmas = tuple(CROWDPOSE_SIGMAS)
    audit_keypoint_predictions(crowdpose, "predictions", "ground_truth", audit_key="kp", sigmas=sigmas,
                               score_attribute="score", box_attribute="bbox", area_factor=CROWDPOSE_AREA_FACTOR,
                               area_ranges=False)
    audit_keypoint_agreement(crowdpose, ["ground_truth", "predictions"], audit_key="ka", sigmas=sigmas)
    duplicates = audit_keypoint_duplicates(crowdpose, "predictions", audit_key="kd", sigmas=sigmas)
    queue = triage(crowdpose)
    assert len(queue) and set(queue["audits"].explode()) == {"kp", "ka", "kd"}
    for evidence in queue["evidence"]:
        assert "OKS" in evidence and "IoU" not in evidence, evidence
    # the duplicate skeleton's row quotes its OKS, as the finding stores it
    oks = float(duplicates.findings["iou"].iloc[0])
    row = queue[queue["audits"].apply(lambda a: "kd" in a)]
    assert row["evidence"].str.contains(f"OKS {oks:.2f}", regex=False).all()

"""Segmentation findings in the triage queue, on the real LVIS raters (rasterised with pycocotools):
one row per image with low mIoU or a class in one map only, one per region of disagreement, each
with its evidence in words. Oracles: numpy on the masks as FiftyOne decodes them
(``Segmentation.get_mask``) and FiftyOne's own counts of the regions field."""
from __future__ import annotations

import numpy as np
import pytest

from iou_audit.audits.segmentation import audit_segmentation_agreement
from iou_audit.examples.lvis_semantic import load_dataset
from iou_audit.review import mark_review, triage

N_IMAGES = None  # all 200: the first 40 have no class painted by one rater only
MIN_REGION = 2000
LOW = 0.7


@pytest.fixture(scope="module")
def lvis_audited(shared_data, tmp_path_factory):
    ds = load_dataset(tmp_path_factory.mktemp("lvis_words"), shared_data / "lvis-double-200", max_images=N_IMAGES)
    audit_segmentation_agreement(ds, ["seg_r1", "seg_r2"], audit_key="seg", regions_field="seg_regions",
                                 min_region_pixels=MIN_REGION, low_miou=LOW)
    yield ds
    ds.delete()


def _oracle(ds):
    """Per image: mIoU over the values present in either map, and the values in one map only."""
    names = ds.mask_targets["seg_r1"]
    low, one_sided = {}, {}
    for s in ds.select_fields(["seg_r1", "seg_r2"]):
        a, b = s.seg_r1.get_mask(), s.seg_r2.get_mask()
        values = np.union1d(np.unique(a), np.unique(b))
        ious = [np.logical_and(a == v, b == v).sum() / np.logical_or(a == v, b == v).sum() for v in values]
        if np.mean(ious) < LOW:
            low[s.id] = float(np.mean(ious))
        only = set(np.unique(a).tolist()) ^ set(np.unique(b).tolist())
        if only:
            one_sided[s.id] = {names.get(v, str(v)) for v in only}
    return low, one_sided


def test_segmentation_rows_and_words(lvis_audited):
    ds = lvis_audited
    q = triage(ds)
    low, one_sided = _oracle(ds)
    samples = q[q["row_type"] == "sample"]
    # one sample row per image flagged: low mIoU or a class one rater did not paint
    assert set(samples["sample_id"]) == set(low) | set(one_sided)
    assert low and one_sided
    by_sample = dict(zip(samples["sample_id"], samples["evidence"]))
    for sid, miou in low.items():
        assert f"seg: seg_r1 and seg_r2 agree poorly on this image: mIoU {miou:.2f}" in by_sample[sid]
    for sid, classes in one_sided.items():
        ev = by_sample[sid]
        assert "has none of it" in ev
        # the clause names the top class; the others are counted "(+n more)"
        named = [c for c in classes if f"has {c} (" in ev]
        assert len(named) == 1, (ev, classes)
        extra = len(classes) - 1
        assert (f"(+{extra} more)" in ev) == (extra > 0), ev

    # one row per region the run drew, its score the region's share of the image
    regions = q[q["kinds"].apply(lambda k: k == ["disagreement_region"])]
    ids, pixels, masks = ds.values(["seg_regions.detections.id", "seg_regions.detections.pixels",
                                    "seg_regions.detections.mask"], unwind=True)
    assert sorted(regions["label_id"]) == sorted(ids)
    assert len(ids) == ds.count("seg_regions.detections") > 0
    sizes = dict(zip(ds.values("id"), zip(ds.values("metadata.width"), ds.values("metadata.height"))))
    got = dict(zip(regions["label_id"], zip(regions["score"], regions["sample_id"], regions["evidence"])))
    for lid, n, mask in zip(ids, pixels, masks):
        score, sid, evidence = got[lid]
        w, h = sizes[sid]
        assert n == int(mask.sum()) >= MIN_REGION
        assert score == pytest.approx(n / (w * h), abs=1e-12)
        assert f"region of disagreement, {n:,} px ({n / (w * h):.1%} of the image): seg_r1 says " in evidence


def test_a_region_row_can_be_marked_and_leaves_the_queue(lvis_audited):
    ds = lvis_audited
    q = triage(ds)
    row = q[q["kinds"].apply(lambda k: k == ["disagreement_region"])].iloc[0]
    assert mark_review(ds, [row["row_id"]], "not_an_error", user="t") == 1
    assert row["row_id"] not in set(triage(ds)["row_id"])
    assert ds.count_label_tags()["review:not_an_error"] == 1

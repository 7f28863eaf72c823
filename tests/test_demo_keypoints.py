"""The demo's keypoints section (``iou_audit.demo_keypoints``, called by ``./run demo``) on the real
CrowdPose example: what it prints, what it stores, and that it is quick."""
from __future__ import annotations

import time

import fiftyone as fo

from iou_audit.results import list_audits


def test_keypoint_demo_section(shared_data, capsys):
    from iou_audit.demo import _show, _top
    from iou_audit.demo_keypoints import run_keypoint_demo

    name = "demo-crowdpose-test"
    t0 = time.perf_counter()
    results = run_keypoint_demo(name, shared_data / "crowdpose-example", show=_show, top=_top)
    seconds = time.perf_counter() - t0
    try:
        out = capsys.readouterr().out
        # the published faster-coco-eval numbers, printed next to ours
        assert "AP 0.7877/0.7877, AP50 0.9881/0.9881, AP75 0.7314/0.7314, AR 0.8222/0.8222" in out, out
        assert "mean OKS of matched persons 0.880, object F1 0.750" in out, out
        assert "duplicate_skeleton" in out and "mislocated_keypoint" in out, out
        assert results["duplicates"].counts() == {"duplicate_skeleton": 1}
        ds = fo.load_dataset(name)
        assert ds.persistent and set(list_audits(ds)) == {"keypoint_predictions", "keypoint_agreement",
                                                          "keypoint_duplicates"}
        # re-running rebuilds it (the demo is re-runnable)
        assert run_keypoint_demo(name, shared_data / "crowdpose-example")["duplicates"].counts() == {
            "duplicate_skeleton": 1}
        assert seconds < 30, seconds
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def test_keypoint_demo_without_data_skips_with_a_message(tmp_path, capsys):
    from iou_audit.demo_keypoints import run_keypoint_demo

    assert run_keypoint_demo("demo-crowdpose-missing", tmp_path) == {}
    assert f"not in {tmp_path}" in capsys.readouterr().out
    assert not fo.dataset_exists("demo-crowdpose-missing")



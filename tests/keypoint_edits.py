"""Known errors injected into real keypoint labels (the CrowdPose example), for the audit tests.

Labels are named by their COCO annotation id (``coco_id``, kept by FiftyOne's parser), which
survives copying a field (FiftyOne gives copied labels new ids)."""
from __future__ import annotations

import copy


def write_edited(ds, source: str, target: str, swap=None, move=None, unlabel=None, drop=None, move_px=80.0) -> None:
    """Copy field ``source`` to ``target`` with: label ``swap`` (coco_id) left/right knees
    exchanged (points and flags); label ``move`` left wrist moved by ``move_px`` in x and y;
    label ``unlabel`` head left unlabeled (NaN, flag 0); label ``drop`` removed."""
    names = ds.get_skeleton(source).labels
    lk, rk, lw, head = (names.index(n) for n in ("left_knee", "right_knee", "left_wrist", "head"))
    edited = []
    for labels, w, h in zip(ds.values(source), ds.values("metadata.width"), ds.values("metadata.height")):
        labels = copy.deepcopy(labels)
        kept = []
        for kp in labels.keypoints:
            pts, vis = [list(p) for p in kp.points], list(kp.visible)
            if kp.coco_id == swap:
                pts[lk], pts[rk], vis[lk], vis[rk] = pts[rk], pts[lk], vis[rk], vis[lk]
            if kp.coco_id == move:
                pts[lw] = [pts[lw][0] + move_px / w, pts[lw][1] + move_px / h]
            if kp.coco_id == unlabel:
                pts[head], vis[head] = [float("nan"), float("nan")], 0
            kp.points, kp.visible = pts, vis
            if kp.coco_id != drop:
                kept.append(kp)
        labels.keypoints = kept
        edited.append(labels)
    ds.set_values(target, edited)
    ds.skeletons = {**ds.skeletons, target: ds.get_skeleton(source)}


def coco_ids(ds, field: str) -> dict:
    """label id -> coco_id of a field's keypoint labels."""
    return dict(zip(ds.values(f"{field}.keypoints.id", unwind=True), ds.values(f"{field}.keypoints.coco_id", unwind=True)))

"""Known skeletons' OKS settings, shared by the CLI (``--skeleton``) and the plugin forms.

A preset gives the sigmas of a skeleton (and CrowdPose's 0.53 area factor, which is meant for its
annotated boxes); left/right flip pairs come from the field's skeleton names, or COCO's for 17 points.
"""
from __future__ import annotations

from iou_audit.geometry.keypoints import COCO_SIGMAS, CROWDPOSE_AREA_FACTOR, CROWDPOSE_SIGMAS

#: names of the presets (``--skeleton`` and the operators' "Skeleton" choice)
SKELETONS = ("coco", "crowdpose")


def skeleton_params(params: dict, skeleton: str | None = None, sigmas=None, flip_pairs=None) -> dict:
    """``params`` (an audit's keyword arguments) with a preset's sigmas and area factor applied.

    Explicit ``sigmas`` win over the preset's; CrowdPose's area factor is applied only when the
    labels' boxes are given (``box_attribute``) and ``area_factor`` is left at 1 (an explicit
    factor wins; the factor is for annotated boxes, not point extents).

    Example:
        >>> p = skeleton_params({"box_attribute": "bbox"}, "crowdpose")
        >>> len(p["sigmas"]), p["area_factor"]
        (14, 0.53)
        >>> "area_factor" in skeleton_params({}, "crowdpose")
        False
    """
    out = dict(params)
    preset: dict = {}
    if skeleton == "coco":
        preset["sigmas"] = tuple(float(s) for s in COCO_SIGMAS)
    elif skeleton == "crowdpose":
        preset["sigmas"] = tuple(float(s) for s in CROWDPOSE_SIGMAS)
        preset["area_factor"] = CROWDPOSE_AREA_FACTOR
    elif skeleton not in (None, ""):
        raise ValueError(f"unknown skeleton {skeleton!r}; known: {', '.join(SKELETONS)}")
    if sigmas:
        preset["sigmas"] = tuple(float(s) for s in sigmas)
    if flip_pairs:
        preset["flip_pairs"] = tuple(tuple(p) for p in flip_pairs)
    if "area_factor" in preset and (out.get("area_factor", 1.0) != 1.0 or not out.get("box_attribute")):
        preset.pop("area_factor")
    out.update(preset)
    return out

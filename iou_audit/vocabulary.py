"""One name for each choice, shared by every audit, the CLI and the plugin.

- geometry: ``"auto"``, ``"boxes"``, ``"masks"``, ``"polygons"``;
- overlap metric: ``"iou"``, ``"giou"``, ``"diou"``, ``"ciou"``, ``"ios"`` (intersection over the
  smaller box);
- one-to-one matching: ``"greedy"`` (COCO's order: by confidence, pycocotools-exact) or
  ``"hungarian"`` (maximum total IoU).

Older spellings (``box``/``mask``/``polygon``, COCO's ``bbox``/``segm``, ``coco`` for greedy) are
still accepted and mapped here, in one place, so stored configs of earlier versions keep working.

Example:
    >>> canonical_geometry("segm"), canonical_geometry("box"), canonical_method("coco")
    ('masks', 'boxes', 'greedy')
"""
from __future__ import annotations

GEOMETRIES = ("auto", "boxes", "masks", "polygons")
METRICS = ("iou", "giou", "diou", "ciou", "ios")
METHODS = ("greedy", "hungarian")

_GEOMETRY_ALIASES = {"box": "boxes", "bbox": "boxes", "mask": "masks", "segm": "masks", "polygon": "polygons"}
_METHOD_ALIASES = {"coco": "greedy"}


def canonical_geometry(name: str) -> str:
    """The canonical geometry name of ``name`` (see the module docstring); ValueError otherwise."""
    value = _GEOMETRY_ALIASES.get(name, name)
    if value not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {list(GEOMETRIES)}, got {name!r}")
    return value


def canonical_method(name: str) -> str:
    """The canonical matching method of ``name``; ValueError otherwise."""
    value = _METHOD_ALIASES.get(name, name)
    if value not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {name!r}")
    return value


def canonical_metric(name: str) -> str:
    """``name`` if it is an overlap metric; ValueError otherwise."""
    if name not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {name!r}")
    return name

"""A finding in words, from the columns each audit stores (kind, label, score, iou, detail).

One clause per finding kind; :func:`evidence` joins a queue row's clauses with "; ". The words
use only what the stored finding and the label as it is now say: an audit's ``detail`` text is
parsed where it holds numbers the columns lack (annotator counts, the deviating edge), and falls
back to the detail itself when its format is not recognised.
"""
from __future__ import annotations

import math
import re

_GEOMETRY_NOUN = {"boxes": "box", "masks": "mask", "polygons": "polygon"}
_LOW = re.compile(r"mean IoU (?P<m>[\d.]+) with the (?P<n>\d+) other annotator\(s\).*largest edge offset "
                  r"(?P<edge>left|top|right|bottom) (?P<e>[\d.]+) of the object size")
_LACKS = re.compile(r"lacks an object found by (?P<n>\d+) of (?P<t>\d+) annotators")
_ONLY = re.compile(r"only (?P<n>\d+) of (?P<t>\d+) annotators have this object \(quorum (?P<q>\d+)\)")
_SAYS = re.compile(r"votes (?P<votes>.+)$")
_VS = re.compile(r"^(?P<a>.+?) vs (?P<b>.+?): ")
_CLASS_PX = re.compile(r"^(?P<label>.+): (?P<px>\d+) px in (?P<have>.+), none in (?P<lack>.+)$")
_MASK_IN = re.compile(r"^mask in (?P<have>.+); none in (?P<lack>.+)$")
_SPLITS = re.compile(r"^(?P<a>\S+) vs (?P<b>\S+): (?P<rest>.*)$")
_LEAK = {
    "leak_exact": "the same image is in two splits",
    "leak_near": "a near-identical image is in another split",
    "leak_annotation": "near-identical labels are in another split",
    "leak_group": "its group is in two splits",
}


def _num(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _a(word: str) -> str:
    """The indefinite article and ``word``: "an" before a vowel sound, acronyms spelled out.

    Example:
        >>> _a("RBC"), _a("WBC"), _a("apple"), _a("Platelets")
        ('an RBC', 'a WBC', 'an apple', 'a Platelets')
    """
    w = str(word)
    vowel = w[:1] in tuple("aeiouAEIOU") or (w[:2].isupper() and w[:1] in tuple("AEFHILMNORSX"))
    return f"{'an' if vowel else 'a'} {w}"


def _unquote(name: str) -> str:
    """A field name as an audit's detail quotes it (``repr``), without the quotes."""
    return name[1:-1] if len(name) > 1 and name[0] == name[-1] and name[0] in "'\"" else name


def _noun(detail: str) -> str:
    m = re.search(r"\((\w+)\)\s*$", detail or "")
    return _GEOMETRY_NOUN.get(m.group(1), "box") if m else "box"


def _overlap_name(audit: str) -> str:
    """What a finding's ``iou`` column holds: OKS for the keypoint audits (named ``keypoint_*``), else IoU."""
    return "OKS" if audit.startswith("keypoint_") else "IoU"


def finding_words(audit: str, kind: str, label: str | None = None, score: float | None = None,
                  iou: float | None = None, detail: str = "", field: str = "", other_class: str | None = None,
                  box_px: tuple[float, float] | None = None, confidence: float | None = None,
                  other_field: str = "") -> str:
    """One finding as a short clause.

    ``other_class`` is the class of the finding's other label now, ``box_px`` the flagged label's
    (width, height) in pixels, ``confidence`` its confidence (predictions), when known;
    ``other_field`` the finding's other field (the second map of a segmentation pair).

    Example:
        >>> finding_words("duplicates", "duplicate", "RBC", 0.93, 0.93, "RBC vs RBC: IoU 0.930, IoS 0.96 (boxes)")
        'duplicate of another RBC box, IoU 0.93'
        >>> finding_words("predictions", "class_swap", "RBC", 0.8, 0.9, "a 0.91 WBC prediction covers it")
        'labelled RBC, but a 0.91 WBC prediction covers it'
        >>> finding_words("agreement", "low_agreement", "RBC", 0.4, 0.6, "ann_b: mean IoU 0.600 with the 2 other "
        ...               "annotator(s); cluster min 0.550; largest edge offset top 0.20 of the object size", box_px=(40, 30))
        'the 2 other annotators drew it differently (mean IoU 0.60): top edge off by 20% of the object, about 6 px'
        >>> finding_words("keypoint_duplicates", "duplicate_skeleton", "person", 0.95, 0.949, "OKS 0.949 with another "
        ...               "person of the image")
        'duplicate skeleton (OKS 0.949 with another person of the image), OKS 0.95'
        >>> finding_words("segmentation_agreement", "low_miou", None, 0.6, 0.4, "mIoU 0.400", field="seg_r1",
        ...               other_field="seg_r2")
        'seg_r1 and seg_r2 agree poorly on this image: mIoU 0.40'
        >>> finding_words("segmentation_agreement", "class_missing", "person", 1.0, 0.0,
        ...               "'person': 1204 px in 'seg_r1', none in 'seg_r2'")
        'seg_r1 has person (1,204 px), seg_r2 has none of it'
    """
    label = label or "unlabelled"
    score, iou, detail = _num(score), _num(iou), detail or ""
    ious = f", {_overlap_name(audit)} {iou:.2f}" if iou is not None else ""
    if audit == "duplicates":
        noun = _noun(detail)
        if kind == "duplicate":
            return f"duplicate of another {label} {noun}{ious}"
        if kind == "class_conflict":
            other = other_class or (_VS.match(detail).group("b") if _VS.match(detail) else "other")
            return f"{label} {noun} on the same object as {_a(other)} {noun}{ious}"
        if kind == "contained":
            return f"{label} {noun} inside another {label} {noun} (IoS {score:.2f}{ious})" if score is not None \
                else f"{label} {noun} inside another {label} {noun}"
        if kind == "degenerate_box":
            return f"degenerate box ({detail})" if detail else "degenerate box"
        if kind == "out_of_bounds":
            return f"{score:.0%} of the box lies outside the image" if score is not None else "box outside the image"
    elif audit == "agreement":
        if kind == "low_agreement" and (m := _LOW.search(detail)):
            n, e, edge = int(m["n"]), float(m["e"]), m["edge"]
            px = ""
            if box_px is not None:
                size = box_px[0] if edge in ("left", "right") else box_px[1]
                px = f", about {e * size:.0f} px"
            who = "the other annotator" if n == 1 else f"the {n} other annotators"
            return f"{who} drew it differently (mean IoU {float(m['m']):.2f}): {edge} edge off by {e:.0%} of the object{px}"
        if kind == "missing_in_annotator" and (m := _LACKS.search(detail)):
            return f"{field or 'this annotator'} lacks {_a(label)} object that {m['n']} of {m['t']} annotators drew"
        if kind == "extra_in_annotator" and (m := _ONLY.search(detail)):
            return f"only {m['n']} of {m['t']} annotators drew this {label} object (quorum {m['q']})"
        if kind == "class_conflict" and (m := _SAYS.search(detail)):
            return f"annotators disagree on its class: {label} here, votes {m['votes']}"
    elif audit == "predictions":
        if kind == "class_swap" and detail:
            return f"labelled {label}, but {detail}"
        if kind == "mislocated" and detail:
            return f"possibly mislocated: {detail}"
        if kind == "possible_spurious":
            return f"possibly spurious {label} label: {detail}" if detail else f"possibly spurious {label} label"
        if kind == "possible_missing":
            conf = _num(confidence)
            what = f"a {conf:.2f} {label} prediction" if conf is not None else f"{_a(label)} prediction"
            return f"{what} with no label under it: possibly a missing label"
        if kind == "duplicate_prediction":
            return f"duplicate {label} prediction: {detail}" if detail else f"duplicate {label} prediction"
    elif audit == "segmentation_agreement":
        pair = f"{field} and {other_field}" if field and other_field else "the two maps"
        if kind == "low_miou":
            return f"{pair} agree poorly on this image: mIoU {iou:.2f}" if iou is not None else f"{pair} agree poorly"
        if kind == "class_missing" and (m := _CLASS_PX.match(detail)):
            return f"{_unquote(m['have'])} has {label} ({int(m['px']):,} px), {_unquote(m['lack'])} has none of it"
        if kind == "missing_mask" and (m := _MASK_IN.match(detail)):
            return f"no mask in {_unquote(m['lack'])} (there is one in {_unquote(m['have'])})"
        if kind == "disagreement_region" and detail:
            return f"region of disagreement, {detail}"
    elif audit == "splits":
        if kind in _LEAK:
            m = _SPLITS.match(detail)
            if m:
                return f"{_LEAK[kind]} ({m['a']} vs {m['b']}: {m['rest']})"
            return f"{_LEAK[kind]} ({detail})" if detail else _LEAK[kind]
        if kind == "unreadable_image":
            return detail or "unreadable image"
    text = kind.replace("_", " ")
    return f"{text} ({detail}){ious}" if detail else f"{text}{ious}"

"""``iou-audit keypoints {predictions,agreement,duplicates} --dataset NAME``: the audits of Keypoints fields."""
from __future__ import annotations

import argparse

from iou_audit.cli._common import (
    add_config_arguments,
    add_dataset_argument,
    config_values,
    load_dataset,
    load_view,
    print_table,
)


def _flip_pair(text: str) -> tuple[int, int]:
    try:
        a, b = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a flip pair is two keypoint indices 'LEFT,RIGHT', got {text!r}") from None
    return a, b


def _common(p: argparse.ArgumentParser, default_key: str, flips: bool = True) -> None:
    from iou_audit.audits.keypoints.skeletons import SKELETONS

    add_dataset_argument(p)
    p.add_argument("--skeleton", choices=SKELETONS, default=None,
                   help="sigmas of a known skeleton (crowdpose: also its 0.53 factor on --box-attribute boxes)")
    p.add_argument("--sigmas", type=float, nargs="+", default=None,
                   help="per-keypoint OKS sigmas, one per point (default: COCO's 17)")
    if flips:
        p.add_argument("--flip-pairs", type=_flip_pair, nargs="+", default=None,
                       help="left/right keypoint index pairs as LEFT,RIGHT (default: from the skeleton's names)")
    p.add_argument("--audit-key", default=default_key,
                   help=f"name under which results are stored; re-running replaces them (default: {default_key})")
    p.add_argument("--view", default=None, help="audit only this saved view of the dataset")
    p.add_argument("--no-save", dest="save", action="store_false",
                   help="compute and print only; write nothing to the dataset")


def add_parser(subparsers) -> None:
    from iou_audit.audits.keypoints import (
        KeypointAgreementConfig,
        KeypointDuplicatesConfig,
        KeypointPredictionsConfig,
    )

    p = subparsers.add_parser(
        "keypoints", help="audit Keypoints fields: model vs labels, annotator agreement, duplicate skeletons",
        description="Audits of Keypoints fields with COCO's OKS (object keypoint similarity): "
        "'predictions' (a pose model against the labels: COCO keypoint AP, missing/extra/mislocated "
        "keypoints, left-right swaps), 'agreement' (two or more annotators' fields, per object and per "
        "keypoint), 'duplicates' (a skeleton drawn twice). Results are stored under --audit-key.")
    sub = p.add_subparsers(dest="keypoint_audit", metavar="AUDIT", help="predictions, agreement or duplicates")
    sub.required = True
    pp = sub.add_parser("predictions", help="a pose model's predictions against Keypoints labels",
                        description="Match predictions to labels (greedy COCO on OKS) and report COCO "
                        "keypoint AP/AR and per-keypoint findings.")
    add_config_arguments(pp, KeypointPredictionsConfig, defaults={"gt_field": "ground_truth"},
                         required=("pred_field",))
    _common(pp, "keypoint_predictions")
    pp.set_defaults(func=run, audit_name="predictions")
    pa = sub.add_parser("agreement", help="agreement between annotators' Keypoints fields",
                        description="Match annotators' skeletons (Hungarian on symmetric OKS) and report "
                        "per-object and per-keypoint disagreements.")
    add_config_arguments(pa, KeypointAgreementConfig, required=("fields",))
    _common(pa, "keypoint_agreement")
    pa.set_defaults(func=run, audit_name="agreement")
    pd_ = sub.add_parser("duplicates", help="skeletons drawn twice in one Keypoints field",
                         description="Report same-class skeleton pairs of an image at symmetric OKS >= --oks-thresh.")
    add_config_arguments(pd_, KeypointDuplicatesConfig, defaults={"field": "ground_truth"})
    _common(pd_, "keypoint_duplicates", flips=False)
    pd_.set_defaults(func=run, audit_name="duplicates")


def run(args: argparse.Namespace) -> int:
    from iou_audit.audits.keypoints import (
        audit_keypoint_agreement,
        audit_keypoint_duplicates,
        audit_keypoint_predictions,
    )
    from iou_audit.audits.keypoints.skeletons import skeleton_params

    samples = load_view(load_dataset(args.dataset), args.view)
    params = skeleton_params(config_values(args), args.skeleton, args.sigmas, getattr(args, "flip_pairs", None))
    common = dict(audit_key=args.audit_key, save=args.save, progress=True)
    if args.audit_name == "predictions":
        pred, gt = params.pop("pred_field"), params.pop("gt_field")
        result = audit_keypoint_predictions(samples, pred, gt, **common, **params)
    elif args.audit_name == "agreement":
        result = audit_keypoint_agreement(samples, params.pop("fields"), **common, **params)
    else:
        result = audit_keypoint_duplicates(samples, params.pop("field"), **common, **params)
    print(f"keypoint {args.audit_name} audit of {args.dataset} ({len(samples)} samples), key {args.audit_key!r}"
          + ("" if args.save else " (not saved)"))
    shown = {k: v for k, v in result.metrics.items() if not k.startswith("n_") or v}
    print("metrics: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()))
    print_table(result.summary(), "findings per kind and class:")
    if "per_keypoint" in result.tables:
        print_table(result.tables["per_keypoint"], "per keypoint:")
    return 0

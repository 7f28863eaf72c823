"""The combined triage queue and the labels-only prior on the independent label-error benchmark (issue 12).

Run: ``python bench/bench_triage_combined.py [--seeds 1 2 3 4 5 6] [--sources bccd coco] [--peers]``

Per case (``bench.label_errors.build_case``: real labels, six simulated annotators with their own
error rates, each label carrying its ``annotator`` attribute; a simulated detector), in one run:
- ``prior``: ``audit_label_prior`` alone (no model): label score = ``<key>_suspicion``, no candidates;
- ``triage``: ``iou_audit.triage(every_label=True)`` over ``audit_predictions`` (``min_score=0``, so
  every possible_missing candidate is a row), ``audit_duplicates`` and ``audit_label_prior``, the
  annotator prior from the labels' ``annotator`` attribute: label rows score their combined
  suspicion, ``possible_missing`` rows are the missing-object candidates;
- ``triage-no-ann``: the same without the annotator prior (``annotator_attr=None``);
- ``triage-no-prior``: predictions + duplicates + annotators, without the labels-only prior;
- ``ours``: ``audit_predictions`` alone, ``1 - <key>_quality`` (the benchmark's ``score_ours``);
- with ``--peers``: ``fiftyone`` (mistakenness) and ``cleanlab`` from the same benchmark.
Metrics: ``bench.label_errors.evaluate`` (AUROC / AP / recall at 5 % and 10 % of the one queue of all
errors, dropped objects included). Seeds 1-3: where constants were chosen; 4-6: held out.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

TUNING_SEEDS, HELD_OUT_SEEDS = (1, 2, 3), (4, 5, 6)


def _triage_scores(case, keys, **kw):
    import iou_audit
    from bench.label_errors.peers import _pred_boxes

    q = iou_audit.triage(case.dataset, audit_keys=keys, states=None, every_label=True, **kw)
    boxes = _pred_boxes(case)
    labels, cands = {}, []
    for field, lid, kinds, s in zip(q["field"], q["label_id"], q["kinds"], q["score"]):
        if field == case.gt_field and lid:
            labels[lid] = float(s)
        elif field == case.pred_field and lid in boxes and "possible_missing" in (kinds or []):
            cands.append((boxes[lid][0], boxes[lid][1], float(s)))
    return labels, cands, q.attrs.get("annotator_error_rates", {})


def run_case(case, peers=False) -> tuple[list, dict]:
    import iou_audit
    from bench.label_errors import evaluate, score
    from iou_audit.audits.prior import audit_label_prior

    ds = case.dataset
    out, timing = {}, {}
    t = time.perf_counter()
    iou_audit.audit_predictions(ds, case.pred_field, case.gt_field, audit_key="c_pred", min_score=0.0,
                                coco_metrics=False, tide=False)
    iou_audit.audit_duplicates(ds, case.gt_field, audit_key="c_dups")
    audit_label_prior(ds, case.gt_field, audit_key="c_prior")
    timing["audits"] = time.perf_counter() - t
    ids = ds.values(f"{case.gt_field}.detections.id", unwind=True)
    prior = ds.values(f"{case.gt_field}.detections.c_prior_suspicion", unwind=True)
    out["prior"] = evaluate(case, dict(zip(ids, prior)), [])
    t = time.perf_counter()
    labels, cands, rates = _triage_scores(case, ["c_pred", "c_dups", "c_prior"])
    timing["triage"] = time.perf_counter() - t
    out["triage"] = evaluate(case, labels, cands)
    labels, cands, _ = _triage_scores(case, ["c_pred", "c_dups", "c_prior"], annotator_attr=None)
    out["triage-no-ann"] = evaluate(case, labels, cands)
    labels, cands, _ = _triage_scores(case, ["c_pred", "c_dups"])
    out["triage-no-prior"] = evaluate(case, labels, cands)
    out["ours"] = evaluate(case, *score(case, "ours"))
    if peers:
        for m in ("fiftyone", "cleanlab"):
            out[m] = evaluate(case, *score(case, m))
    rows = [{"method": m, "type": typ, **vals} for m, res in out.items() for typ, vals in res.items()]
    return rows, {"rates": rates, "timing": timing}


def main(argv=None) -> int:
    import pandas as pd

    from bench.label_errors import build_case

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(TUNING_SEEDS + HELD_OUT_SEEDS))
    ap.add_argument("--sources", nargs="+", default=["bccd", "coco"])
    ap.add_argument("--peers", action="store_true", help="also FiftyOne mistakenness and cleanlab")
    ap.add_argument("--csv", help="write every (source, seed, method, type) row here")
    args = ap.parse_args(argv)
    rows = []
    for source in args.sources:
        for seed in args.seeds:
            with build_case(source, seed) as case:
                truth = case.truth.labels
                true_rate = truth.assign(err=truth["type"] != "clean").groupby("annotator")["err"].mean()
                r, info = run_case(case, args.peers)
                rows += [{"source": source, "seed": seed, **x} for x in r]
                est = ", ".join(f"{a} {info['rates'].get(a, float('nan')):.3f}/{true_rate[a]:.3f}" for a in true_rate.index)
                print(f"[{source} seed {seed}] audits {info['timing']['audits']:.1f}s, triage {info['timing']['triage']:.1f}s; "
                      f"annotator error rate estimated/true: {est}", flush=True)
    df = pd.DataFrame(rows)
    if args.csv:
        df.to_csv(args.csv, index=False)
    df["group"] = ["1-3" if s in TUNING_SEEDS else "4-6" if s in HELD_OUT_SEEDS else "other" for s in df["seed"]]
    with pd.option_context("display.width", 220, "display.max_columns", 30):
        for (source, group), g in df.groupby(["source", "group"], sort=False):
            print(f"\n== {source}, seeds {group} (mean over {sorted(set(g['seed']))}) ==")
            for metric in ("auroc", "recall@5%", "recall@10%"):
                t = g.pivot_table(index="type", columns="method", values=metric, aggfunc="mean")
                print(f"-- {metric} --")
                print(t.round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Bulk dataset I/O: reading a label table and writing per-label results back.

Dataset: N samples x B boxes in ``gt`` and B boxes in ``pred`` (default 5,000 x 15, the issue's
size). Timed, in rotating order within each round (medians of the rounds are reported):
- read:   ``read_label_table(ds, "pred")`` vs iterating FiftyOne samples (``iter_samples``) and
          collecting the same columns.
- write:  2 per-label attributes + 1 label tag on every ``pred`` label:
          ours (``update_labels``: one unordered bulk_write, one UpdateOne per sample, labels matched
          by id inside one pipeline update per sample, new attributes declared in one schema merge)
          vs ``set_values`` on the label-list paths (positional nested lists, 3 calls)
          vs ``set_label_values`` (FiftyOne's by-id API, one UpdateOne per label, 2 calls) +
             ``select_labels(ids).tag_labels``
          vs ``evaluate_detections(pred, gt)`` (the reference cost of a FiftyOne pass that writes
             per-label results; it also computes IoUs and matches, so it is a reference, not a peer).
- save_audit: our whole store path (attributes, tags, per-sample counts, saved views, run) for
          one finding per label, printed for information.
Before timing, ours and set_label_values are checked to write identical values.

    python bench/bench_io.py               # 5,000 samples x 15 boxes, 3 rounds (evaluate_detections is slow: minutes)
    python bench/bench_io.py --quick       # 200 samples, 2 rounds: checks that it runs
    python bench/bench_io.py --samples 1000 --rounds 5 --no-evaluate
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import time

import numpy as np

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")


def build(n_samples: int, n_boxes: int, seed: int = 0):
    import fiftyone as fo

    rng = np.random.default_rng(seed)
    classes = np.array(["RBC", "WBC", "Platelets"])

    def dets(n, with_conf):
        xy = rng.uniform(0, 0.8, (n, 2))
        wh = rng.uniform(0.02, 0.2, (n, 2))
        lab = rng.choice(classes, n)
        conf = rng.uniform(0.05, 1, n)
        return fo.Detections(detections=[
            fo.Detection(label=str(lab[i]), bounding_box=[*xy[i], *wh[i]],
                         confidence=float(conf[i]) if with_conf else None) for i in range(n)])

    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=f"/bench/{i:06d}.jpg", gt=dets(n_boxes, False), pred=dets(n_boxes, True))
                    for i in range(n_samples)], progress=False)
    return ds


def read_ours(ds):
    from iou_audit.table import read_label_table

    return read_label_table(ds, "pred")


def read_iter(ds):
    rows = []
    for s in ds.iter_samples():
        for d in s.pred.detections:
            rows.append((s.id, d.id, d.label, d.bounding_box, d.confidence))
    return rows


def write_ours(ds, ids, iou, match, r):
    from iou_audit.table import update_labels

    update_labels(ds, "pred", {"o_iou": dict(zip(ids, iou)), "o_match": dict(zip(ids, match))},
                  {lid: [f"o:{r}"] for lid in ids})


def write_set_values(ds, ids, iou, match, r):
    # positional nested lists, aligned with the current values() order of the label lists
    lids = ds.values("pred.detections.id")
    by_id_iou, by_id_match = dict(zip(ids, iou)), dict(zip(ids, match))
    ds.set_values("pred.detections.s_iou", [[by_id_iou[i] for i in ls] for ls in lids])
    ds.set_values("pred.detections.s_match", [[by_id_match[i] for i in ls] for ls in lids])
    tags = ds.values("pred.detections.tags")
    ds.set_values("pred.detections.tags", [[t + [f"s:{r}"] for t in ts] for ts in tags])


def write_set_label_values(ds, ids, iou, match, r):
    ds.set_label_values("pred.detections.l_iou", dict(zip(ids, iou)))
    ds.set_label_values("pred.detections.l_match", dict(zip(ids, match)))
    ds.select_labels(ids=list(ids), fields="pred").tag_labels(f"l:{r}", label_fields="pred")


def write_evaluate(ds, ids, iou, match, r):
    ds.evaluate_detections("pred", gt_field="gt", eval_key=f"ev{r}", iou=0.5, progress=False)


def save_ours(ds, ids, iou, match, r):
    from iou_audit.results import AuditResult, make_findings, save_audit

    t = CACHE["table"]
    f = make_findings({"kind": "check", "sample_id": t.row_sample_id, "field": "pred", "label_id": t.label_id,
                       "label": t.label, "score": np.full(len(t), 0.5), "iou": iou}, audit="bench")
    save_audit(ds, AuditResult("bench", f"bench{r}", {}, f), label_attributes={"pred": {"iou": dict(zip(ids, iou))}})


def cleanup(ds, r):
    from iou_audit.results import delete_audit

    if f"ev{r}" in ds.list_evaluations():
        ds.delete_evaluation(f"ev{r}")
    if f"bench{r}" in ds.list_runs():
        delete_audit(ds, f"bench{r}")
    ds.untag_labels([f"o:{r}", f"s:{r}", f"l:{r}"], label_fields="pred")


CACHE: dict = {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 samples, 2 rounds")
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--boxes", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-evaluate", action="store_true", help="skip evaluate_detections (slow)")
    args = ap.parse_args()
    if args.quick:
        args.samples, args.rounds = 200, 2

    t0 = time.perf_counter()
    ds = build(args.samples, args.boxes)
    print(f"built {args.samples} samples x {args.boxes} boxes x 2 fields in {time.perf_counter() - t0:.1f} s")
    try:
        table = read_ours(ds)
        CACHE["table"] = table
        ids = table.label_id.tolist()
        rng = np.random.default_rng(1)
        iou = rng.uniform(size=len(ids))
        match = [ids[j] for j in rng.permutation(len(ids))]

        # correctness first: ours == FiftyOne's by-id writer
        write_ours(ds, ids, iou, match, 0)
        write_set_label_values(ds, ids, iou, match, 0)
        assert ds.values("pred.detections.o_iou") == ds.values("pred.detections.l_iou")
        assert ds.values("pred.detections.o_match") == ds.values("pred.detections.l_match")
        assert len(read_iter(ds)) == len(table)
        cleanup(ds, 0)

        read_methods = {"ours: read_label_table": read_ours, "FiftyOne iter_samples": read_iter}
        write_methods = {
            "ours: update_labels": write_ours,
            "set_values (label-list paths)": write_set_values,
            "set_label_values + tag_labels": write_set_label_values,
        }
        if not args.no_evaluate:
            write_methods["evaluate_detections (reference)"] = write_evaluate
        write_methods["ours: save_audit (all outputs)"] = save_ours
        times: dict[str, list[float]] = {k: [] for k in [*read_methods, *write_methods]}
        for r in range(1, args.rounds + 1):
            for names, call in ((list(read_methods), lambda n: read_methods[n](ds)),
                                (list(write_methods), lambda n: write_methods[n](ds, ids, iou, match, r))):
                names = names[r % len(names):] + names[:r % len(names)]  # rotate the order
                for name in names:
                    gc.collect()  # untimed: the previous contender's garbage is not this one's cost
                    t = time.perf_counter()
                    call(name)
                    times[name].append(time.perf_counter() - t)
            cleanup(ds, r)

        med = {k: statistics.median(v) for k, v in times.items()}
        n = args.samples
        print(f"\nmedian of {args.rounds} rounds, {n} samples, {len(ids)} labels")
        for group, base in ((read_methods, "ours: read_label_table"), (write_methods, "ours: update_labels")):
            for name in group:
                print(f"  {name:36s} {med[name]:8.3f} s  ({med[name] / n * 1000:7.2f} s per 1000 samples)"
                      f"  {med[name] / med[base]:7.1f}x ours")
            print()
    finally:
        ds.delete()


if __name__ == "__main__":
    main()

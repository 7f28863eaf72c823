"""The README's main job: ingest BCCD, run every audit, print what they found.

Run it with ``./run demo`` (sets everything up) or ``python -m iou_audit.demo``. The dataset is
persistent (default name ``iou-audit-bccd``) so the App can open it afterwards; re-running reuses
it (``--fresh`` re-ingests). Simulated inputs (extra annotators, a detector's predictions) are
written to fields whose names start with ``sim_`` so nobody mistakes them for real labels.
"""
from __future__ import annotations

import argparse
import sys
import time

DATASET_NAME = "iou-audit-bccd"
LABEL_FIELD = "ground_truth"


def _banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)))


def _show(result, seconds: float) -> None:
    import pandas as pd

    with pd.option_context("display.width", 140, "display.max_columns", 20):
        summary = result.summary()
        print(summary.to_string() if len(summary) else "(no findings)")
        if result.metrics:
            shown = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
            if shown:
                print("metrics: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in list(shown.items())[:12]))
    print(f"({len(result.findings)} findings in {seconds:.1f} s; audit key '{result.audit_key}')")


def _top(result, n: int = 5) -> None:
    f = result.findings.sort_values("score", ascending=False, kind="stable").head(n)
    for r in f.itertuples(index=False):
        other = f" vs sample {r.other_sample_id}" if r.other_sample_id and r.other_sample_id != r.sample_id else ""
        print(f"  {r.kind:<22} score {r.score:.2f}  {r.label or '':<10} sample {r.sample_id}{other}  {r.detail}")


def steps():
    """(title, function(dataset) -> AuditResult) for every audit the demo runs, in order."""
    from iou_audit.audits.duplicates import run_demo_duplicates

    return [
        ("Duplicate and degenerate boxes in the human labels", run_demo_duplicates),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="iou-audit-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=DATASET_NAME, help="dataset name (default %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="delete and re-ingest the dataset first")
    args = parser.parse_args(argv)

    import fiftyone as fo

    from iou_audit.ingest import ingest_bccd

    _banner("Ingest BCCD (VOC boxes, official train/val/test split)")
    t0 = time.perf_counter()
    try:
        dataset = ingest_bccd(args.name, persistent=True, overwrite=args.fresh, progress=True)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"dataset '{dataset.name}': {len(dataset)} samples, "
          f"{dataset.count(f'{LABEL_FIELD}.detections')} boxes, splits {dataset.count_values('split')} "
          f"({time.perf_counter() - t0:.1f} s)")

    for title, run in steps():
        _banner(title)
        t0 = time.perf_counter()
        result = run(dataset)
        _show(result, time.perf_counter() - t0)
        _top(result)

    _banner("Open the results in the FiftyOne App")
    print(f"  ./run app --dataset {dataset.name}        (then open the 'iou-audit review' panel, "
          "or the saved views in the sidebar)")
    print(f"  .venv/bin/iou-audit list --dataset {dataset.name}")
    print(f"  .venv/bin/iou-audit export --dataset {dataset.name} --audit-key duplicates findings.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())

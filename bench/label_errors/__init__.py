"""Label-error benchmark (issue 12): simulated annotators' errors on real BCCD / COCO-100 labels, a
simulated detector, and label-level metrics of ours, our triage queue, FiftyOne mistakenness and
cleanlab, in one run.

Python API (no CLI needed)::

    from bench.label_errors import build_case, evaluate, score_ours
    with build_case("bccd", seed=1) as case:          # fo.Dataset: "ground_truth" (noisy), "predictions"
        scores, candidates = score_ours(case)          # or your own: {label_id: score}, [(sample_id, xyxy, score)]
        metrics = evaluate(case, scores, candidates)   # {type: {"auroc", "ap", "recall@5%", "recall@10%", "n_pos"}}

Modules: ``sources`` (clean labels, look-alike tables), ``simulate`` (annotators' noise model and
detector), ``case`` (the FiftyOne dataset and the truth), ``metrics`` (:func:`evaluate`), ``peers``
(the methods). The runner is ``bench/bench_label_errors.py``.
"""
from bench.label_errors.case import Case, Truth, build_case
from bench.label_errors.metrics import ALL, BUDGETS, METRICS, evaluate
from bench.label_errors.peers import METHODS, score, score_cleanlab, score_fiftyone, score_ours, score_triage
from bench.label_errors.simulate import ERROR_TYPES

__all__ = ["ALL", "BUDGETS", "Case", "ERROR_TYPES", "METHODS", "METRICS", "Truth", "build_case", "evaluate", "score",
           "score_cleanlab", "score_fiftyone", "score_ours", "score_triage"]

"""``audit_splits``: leakage between train/val/test and drift in what each split contains.

Kinds (one finding per leaked pair; ``sample_id`` is the sample in the later split of the split
order, e.g. test, ``other_sample_id`` its partner in the earlier one, e.g. train):
- ``leak_exact``: identical file bytes (SHA-256) or the same file path in two splits; also a sample
  carrying two split tags (``other_sample_id`` = itself).
- ``leak_near``: near-identical pixels: 64-bit DCT perceptual hashes within ``near_threshold`` bits
  (multi-index hash search, no all-pairs comparison); shifted views of one scene (window hashes,
  verified by aligned pixel correlation); mirrored or rotated copies (symmetry hashes, verified by
  pixel correlation); optionally cosine distance <= ``embeddings_threshold``
  on an existing embeddings field. Byte-identical pairs are only exact.
- ``leak_annotation``: near-identical label sets (same classes and counts, every box matched
  one-to-one class-wise at IoU >= ``annotation_iou``), from candidate pairs bucketed by class
  multiset and box layout.
- ``leak_group``: a value of ``group_field`` (video, patient, document...) present in two splits;
  one finding per sample of such a group.
- ``split_drift``: class frequencies, box area/aspect and objects per image differ between two
  splits with a significant test *and* a non-trivial effect size, or a class is absent from a split
  (see ``drift``). Tables ``drift_tests`` and ``class_counts`` hold every test.
- ``unreadable_image``: the sample's image file could not be read or decoded (missing,
  unreadable, truncated, not an image); score 1, detail names the path and the error. Such
  samples take no part in the pixel and byte searches (their path still counts for
  ``leak_exact``); the audit goes on with the other images.
Every sample in a leak gets ``<key>_pair`` (the id of its connected group of leaked pairs); each
leak kind's saved view ``<key>-<kind>`` selects both sides sorted by it, so pairs sit side by side.
Hashes are cached in ``<key>_sha256`` / ``<key>_phash`` / ``<key>_whash`` / ``<key>_thash`` /
``<key>_filestat`` for fast re-runs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from iou_audit.audits.splits.drift import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT, drift_tests, drifted
from iou_audit.audits.splits.hashing import DEFAULT_NEAR_THRESHOLD, hash_to_hex
from iou_audit.audits.splits.copies import shifted_leaks, transformed_leaks
from iou_audit.audits.splits.leaks import (
    LeakPairs, annotation_leaks, embedding_leaks, exact_leaks, group_leaks, near_leaks,
)
from iou_audit.audits.splits.sources import (
    image_hashes, read_embeddings, read_groups, read_splits, thumbs_loader, window_hex, windows_loader,
)

AUDIT = "splits"
LEAK_KINDS = ("leak_exact", "leak_near", "leak_annotation", "leak_group")
KINDS = LEAK_KINDS + ("split_drift", "unreadable_image")
# Hungarian class-wise matching of two label sets; every box must reach this IoU. Measured on BCCD
# (all 66,066 image pairs, any split): the best distinct pair with identical class counts reaches
# a smallest matched IoU of 0.62 (00152/00268, one WBC box each, different cells, checked by eye);
# every other pair has some box below 0.5. A copied label set whose boxes moved by up to 2 % of
# their size in x and y keeps IoU >= 0.92.
# 0.85 sits between, with margin on both sides.
DEFAULT_ANNOTATION_IOU = 0.85
DEFAULT_EMBEDDINGS_THRESHOLD = 0.05
# Shifted views, measured on BCCD (all 66,066 pairs, tests/test_splits_bccd.py): the 10 pairs that
# are the same field of view with the stage moved (checked by eye) have window pHash distance 2-6
# and aligned pixel correlation 0.83-0.97; every other pair has distance >= 8 and correlation
# <= 0.75 (99.9th percentile 0.69). Candidates within 8 bits (2 bits of margin), kept at
# correlation >= 0.8 (in the gap between 0.75 and 0.83).
DEFAULT_SHIFT_THRESHOLD = 8
DEFAULT_SHIFT_CORRELATION = 0.8
# Mirrored/rotated copies: candidates at the pHash threshold, kept at pixel correlation >= 0.9 of the
# 48 x 48 thumbnails. Measured on BCCD: flipped/rotated copies re-encoded at JPEG q75 correlate
# >= 0.99 with the original after undoing the symmetry; distinct images, under any of the 7
# symmetries, never above 0.57 (tests/test_splits_bccd.py).
DEFAULT_TRANSFORM_CORRELATION = 0.9


def _findings(kind: str, pairs: LeakPairs, ids, split, names, field: str = "", orient: bool = True) -> pd.DataFrame:
    """Finding rows of one kind; with ``orient`` the sample side is the one in the later split
    (group leaks are per sample already and keep their side)."""
    i, j = pairs.i, pairs.j
    swap = (split[i] < split[j]) & orient
    side, other = np.where(swap, j, i), np.where(swap, i, j)
    detail = [f"{names[split[a]]} vs {names[split[b]]}: {d}" for a, b, d in zip(side, other, pairs.detail)]
    return pd.DataFrame({
        "audit": AUDIT, "kind": kind, "sample_id": ids[side], "field": field, "label_id": "",
        "other_field": field, "other_label_id": "", "other_sample_id": ids[other], "label": "",
        "score": pairs.score, "iou": pairs.iou, "detail": np.asarray(detail, dtype=object),
    })


def pair_groups(sample_ids: np.ndarray, other_ids: np.ndarray) -> dict[str, str]:
    """Connected groups of leaked pairs: ``{sample_id: "pair-0001", ...}`` numbered in order of
    first appearance, so sorting by it puts the two (or more) sides of a leak next to each other.

    >>> pair_groups(np.array(["a", "c", "b"]), np.array(["b", "d", "e"]))
    {'a': 'pair-0001', 'b': 'pair-0001', 'e': 'pair-0001', 'c': 'pair-0002', 'd': 'pair-0002'}
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nodes, codes = np.unique(np.r_[sample_ids, other_ids].astype(str), return_inverse=True)
    if not len(nodes):
        return {}
    a, b = codes[: len(sample_ids)], codes[len(sample_ids):]
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(nodes), len(nodes)))
    _, comp = connected_components(graph, directed=False)
    first_seen = {}
    for c in comp[np.r_[a, b].reshape(2, -1).T.ravel()]:  # a0, b0, a1, b1, ...: order of findings
        first_seen.setdefault(int(c), len(first_seen) + 1)
    labels = {int(c): f"pair-{first_seen[int(c)]:04d}" for c in np.unique(comp)}
    order = sorted(range(len(nodes)), key=lambda k: (labels[int(comp[k])], k))
    return {str(nodes[k]): labels[int(comp[k])] for k in order}


def _default_label_field(samples) -> str | None:
    import fiftyone as fo

    fields = sorted(samples.get_field_schema(embedded_doc_type=fo.Detections))
    if len(fields) > 1:
        if "ground_truth" in fields:  # FiftyOne's conventional name for the human labels
            return "ground_truth"
        raise ValueError(f"several Detections fields {fields}: choose one with label_field=")
    return fields[0] if fields else None


def _progress(progress):
    if not progress:
        return lambda frac, label: None
    if callable(progress):
        return progress
    from tqdm.auto import tqdm

    bar = tqdm(total=100, desc="splits", unit="%")

    def report(frac, label):
        bar.set_postfix_str(label)
        bar.update(int(round(frac * 100)) - bar.n)
        if frac >= 1:
            bar.close()

    return report


def audit_splits(
    samples,
    split_field: str | None = None,
    split_tags=None,
    group_field: str | None = None,
    embeddings_field: str | None = None,
    audit_key: str = AUDIT,
    near_threshold: int = DEFAULT_NEAR_THRESHOLD,
    annotation_iou: float = DEFAULT_ANNOTATION_IOU,
    label_field: str | None = "auto",
    embeddings_threshold: float = DEFAULT_EMBEDDINGS_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    min_effect: float = DEFAULT_MIN_EFFECT,
    shifted: bool = True,
    transformed: bool = True,
    shift_correlation: float = DEFAULT_SHIFT_CORRELATION,
    save: bool = True,
    progress=None,
    workers: int | None = None,
):
    """Find leaks between splits and drift between them; save the results under ``audit_key``.

    Args:
        samples: a FiftyOne dataset or view.
        split_field: sample field naming each sample's split (e.g. ``"split"``), or
        split_tags: sample tags that are splits (e.g. ``["train", "val", "test"]``).
        group_field: optional sample field of group values (video, patient, document, scene).
        embeddings_field: optional sample field of embedding vectors (e.g. from the model zoo).
        audit_key: run name; re-running with the same key replaces it and reuses cached hashes.
        near_threshold: pHash Hamming radius (bits of 64) for ``leak_near`` (default 8, measured
            on BCCD, see ``hashing.DEFAULT_NEAR_THRESHOLD``).
        annotation_iou: IoU every box must reach for ``leak_annotation``.
        label_field: Detections field for annotation leaks and drift; ``"auto"`` = the only one (or
            ``ground_truth`` among several), None = skip both.
        embeddings_threshold: cosine distance for embedding leaks.
        alpha, min_effect: drift finding rule (Bonferroni-adjusted p < alpha and effect >= min_effect).
        shifted: also look for shifted views of one scene (window pHashes, verified by the pixel
            correlation of the best-aligned windows >= ``shift_correlation``), as ``leak_near``.
        transformed: also look for mirrored or rotated copies (pHashes of the 7 symmetries of the
            thumbnail, verified by pixel correlation), as ``leak_near``.
        save: write into the dataset (tags are not used: findings are per sample pair).
        progress: callable ``progress(fraction, label)``, or True for a tqdm bar.
        workers: threads reading image files.

    Returns:
        ``iou_audit.results.AuditResult`` with findings, tables ``splits``, ``drift_tests``,
        ``class_counts`` and metrics (counts per kind, hash cache hits).

    Example:
        >>> r = audit_splits(dataset, split_field="split")        # doctest: +SKIP
        >>> r.summary()                                           # doctest: +SKIP
    """
    from iou_audit.results import AuditResult, concat_findings, make_findings

    if not 0 <= int(near_threshold) <= 32:
        raise ValueError(f"near_threshold must be 0..32 bits, got {near_threshold!r}")
    if not 0.0 < float(annotation_iou) < 1.0:
        raise ValueError(f"annotation_iou must be in (0, 1), got {annotation_iou!r}")
    if not -1.0 <= float(shift_correlation) <= 1.0:
        raise ValueError(f"shift_correlation must be a correlation in [-1, 1], got {shift_correlation!r}")
    if not 0.0 <= float(embeddings_threshold) <= 2.0:
        raise ValueError(f"embeddings_threshold must be a cosine distance in [0, 2], got {embeddings_threshold!r}")
    report = _progress(progress)
    ids, split, names, multi = read_splits(samples, split_field, split_tags)
    if label_field == "auto":
        label_field = _default_label_field(samples)
    config = {"split_field": split_field, "split_tags": list(split_tags) if split_tags else None,
              "group_field": group_field, "embeddings_field": embeddings_field, "label_field": label_field,
              "near_threshold": int(near_threshold), "annotation_iou": float(annotation_iou),
              "embeddings_threshold": float(embeddings_threshold), "alpha": float(alpha),
              "min_effect": float(min_effect), "shifted": bool(shifted), "transformed": bool(transformed),
              "shift_correlation": float(shift_correlation)}
    filepaths = samples.values("filepath")
    report(0.0, "hashing images")
    sha, phash, whash, thash, stats, cached, unreadable = image_hashes(
        samples, filepaths, audit_key, workers,
        lambda done, total: report(0.7 * done / max(total, 1), f"hashed {done}/{total} images"))

    frames = [_unreadable_findings(unreadable, ids, filepaths)]
    bad = np.zeros(len(ids), dtype=bool)
    bad[list(unreadable)] = True
    # unreadable files have no content hash: a per-row marker never equals another file's hash, and
    # they take no part in the pixel searches (split -1), so their zero hashes never pair up
    content = sha.copy()
    content[bad] = [f"unreadable:{r}" for r in np.flatnonzero(bad)]
    split_px = np.where(bad, -1, split)
    exact = exact_leaks(content, np.asarray(filepaths, dtype=object), split)
    frames.append(_findings("leak_exact", exact, ids, split, names))
    if multi:
        rows = [{"audit": AUDIT, "kind": "leak_exact", "sample_id": sid, "other_sample_id": sid, "score": 1.0,
                 "detail": f"one sample tagged with several splits: {', '.join(tags)}"} for sid, tags in multi.items()]
        frames.append(make_findings(rows))
    near = near_leaks(phash, split_px, int(near_threshold), exclude=exact)
    frames.append(_findings("leak_near", near, ids, split, names))
    found = [exact, near]  # pixel-verified searches skip pairs already reported

    def already() -> LeakPairs:
        return LeakPairs.build(np.concatenate([p.i for p in found]), np.concatenate([p.j for p in found]),
                               np.ones(sum(len(p) for p in found)))

    if shifted:
        report(0.72, "shifted views")
        found.append(shifted_leaks(whash, split_px, DEFAULT_SHIFT_THRESHOLD, float(shift_correlation),
                                   windows_loader(filepaths, workers), exclude=already()))
        frames.append(_findings("leak_near", found[-1], ids, split, names))
    if transformed:
        report(0.74, "mirrored and rotated copies")
        found.append(transformed_leaks(thash, phash, split_px, int(near_threshold), DEFAULT_TRANSFORM_CORRELATION,
                                       thumbs_loader(filepaths, workers), exclude=already()))
        frames.append(_findings("leak_near", found[-1], ids, split, names))
    if embeddings_field:
        frames.append(_findings("leak_near", embedding_leaks(read_embeddings(samples, embeddings_field), split,
                                                             float(embeddings_threshold)), ids, split, names))
    if group_field:
        frames.append(_findings("leak_group", group_leaks(read_groups(samples, group_field), split,
                                                          dict(enumerate(names))), ids, split, names,
                                orient=False))
    report(0.75, "reading labels")
    tables = {"splits": pd.DataFrame({"split": names, "samples": np.bincount(split[split >= 0], minlength=len(names))})}
    if label_field:
        frames_l, tables_l, drift_splits = _label_checks(samples, label_field, ids, split, names,
                                                         float(annotation_iou), float(alpha), float(min_effect))
        frames += frames_l
        tables.update(tables_l)
    else:
        drift_splits = []
    findings = concat_findings(frames)
    counts = findings["kind"].value_counts()
    metrics = {f"n_{kind}": int(counts.get(kind, 0)) for kind in KINDS}
    metrics.update(n_samples=len(ids), n_without_split=int((split < 0).sum()), hash_cache_hits=cached,
                   drift_splits=drift_splits)
    result = AuditResult(AUDIT, audit_key, config, findings, tables=tables, metrics=metrics)
    if save:
        report(0.9, "saving")
        _save(samples, result, ids, sha, phash, whash, thash, stats)
    report(1.0, "done")
    return result


def _unreadable_findings(unreadable: dict, ids, filepaths) -> pd.DataFrame:
    """One ``unreadable_image`` finding (score 1) per image file that could not be read or decoded."""
    from iou_audit.results import make_findings

    return make_findings([{"audit": AUDIT, "kind": "unreadable_image", "sample_id": str(ids[r]), "score": 1.0,
                           "detail": f"cannot read image {filepaths[r]!r}: {error}"}
                          for r, error in sorted(unreadable.items())])


def _label_checks(samples, label_field, ids, split, names, annotation_iou, alpha, min_effect):
    from iou_audit.table import read_label_table

    table = read_label_table(samples, label_field, masks=False)
    if not np.array_equal(np.asarray(table.sample_ids, dtype=object), ids):  # same view read twice: same order
        raise ValueError(f"label table of {label_field!r} is not in the collection's sample order")
    pairs = annotation_leaks(table.offsets, table.label, table.box, split, annotation_iou)
    frames = [_findings("leak_annotation", pairs, ids, split, names, field=label_field)]
    tests, counts = drift_tests(split, table.offsets, table.label, table.box, table.width, table.height, names)
    flagged = tests[drifted(tests, alpha, min_effect)]
    absent = flagged["test"] == "absent class"
    cls = flagged["class"].where(absent, "")
    score = np.where(absent, 1.0 - flagged["p_value"].fillna(1.0), flagged["effect_size"].clip(0, 1))
    frames.append(pd.DataFrame({
        "audit": AUDIT, "kind": "split_drift", "sample_id": "", "field": label_field, "label": cls.fillna(""),
        "score": score, "detail": (flagged["split_a"] + " vs " + flagged["split_b"] + ": " + flagged["quantity"]
                                   + " " + flagged["test"] + ": " + flagged["detail"]),
    }))
    involved = sorted(set(flagged["split_a"]) | set(flagged["split_b"]))
    return frames, {"drift_tests": tests, "class_counts": counts.reset_index()}, involved


def _save(samples, result, ids, sha, phash, whash, thash, stats) -> None:
    from fiftyone import ViewField as F

    from iou_audit.results import save_audit

    key = result.audit_key
    f = result.findings
    leaks = f[f["kind"].isin(LEAK_KINDS)]
    pair_of = pair_groups(leaks["sample_id"].to_numpy(), leaks["other_sample_id"].to_numpy())
    sample_fields = {"sha256": dict(zip(ids, sha)), "phash": dict(zip(ids, hash_to_hex(phash))),
                     "whash": dict(zip(ids, window_hex(whash))), "thash": dict(zip(ids, window_hex(thash))),
                     "filestat": dict(zip(ids, stats))}
    if pair_of:
        sample_fields["pair"] = pair_of
    save_audit(samples, result, sample_fields=sample_fields)
    # Replace the per-kind leak views with ones that show both sides of every pair, sorted by pair.
    dataset = samples._root_dataset
    for kind, group in leaks.groupby("kind"):
        members = sorted(set(group["sample_id"]) | set(group["other_sample_id"]))
        view = samples.select(members).sort_by(F(f"{key}_pair"))
        dataset.save_view(f"{key}-{kind}", view, description=f"iou-audit {key}: {kind} ({len(group)} pairs), "
                          f"both sides of each pair, sorted by {key}_pair", overwrite=True)
    # Drift findings name splits, not samples: show the drifting splits' samples, split by split.
    drift = f[f["kind"] == "split_drift"]
    if len(drift):
        involved = result.metrics.get("drift_splits", [])
        split_field, split_tags = result.config.get("split_field"), result.config.get("split_tags")
        if split_field:
            view = samples.match(F(split_field).is_in(involved)).sort_by(split_field)
        else:
            view = samples.match_tags([t for t in split_tags if t in involved])
        dataset.save_view(f"{key}-split_drift", view, overwrite=True,
                          description=f"iou-audit {key}: split_drift ({len(drift)} findings), samples of {involved}")


def run_demo_splits(dataset, split_field: str = "split", label_field: str = "ground_truth"):
    """The demo's split audit (audit key ``splits``) on BCCD's official split field and human labels.

    On BCCD it reports 8 leak_near pairs: one field of view refocused (00037/00038) and seven
    photographed again with the stage moved (shifted views), each across two official splits.
    """
    return audit_splits(dataset, split_field=split_field, label_field=label_field, audit_key="splits",
                        progress=True)

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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from iou_audit.audits.base import AuditConfig, AuditOutput, kind_counts, option
from iou_audit.audits.splits.copies import shifted_leaks, transformed_leaks
from iou_audit.audits.splits.drift import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT, drift_tests, drifted
from iou_audit.audits.splits.hashing import DEFAULT_NEAR_THRESHOLD, hash_to_hex
from iou_audit.audits.splits.leaks import (
    LeakPairs,
    annotation_leaks,
    embedding_leaks,
    exact_leaks,
    group_leaks,
    near_leaks,
)
from iou_audit.audits.splits.sources import (
    image_hashes,
    read_embeddings,
    read_groups,
    read_splits,
    thumbs_loader,
    window_hex,
    windows_loader,
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


@dataclass(frozen=True)
class SplitsConfig(AuditConfig):
    """Parameters of the split audit (the defaults, the stored config, the CLI and the form)."""

    split_field: str | None = option(None, "sample field naming each sample's split", kind="name")
    split_tags: tuple | None = option(None, "sample tags that are splits (instead of split_field)", kind="names")
    group_field: str | None = option(None, "sample field of group values (video, patient, scene): a group in "
                                     "two splits is a leak", kind="name")
    embeddings_field: str | None = option(None, "sample field of embedding vectors for embedding leaks", kind="name")
    label_field: str | None = option("auto", "Detections field for annotation leaks and drift (auto: the only "
                                     "one, or ground_truth)", kind="field")
    near_threshold: int = option(DEFAULT_NEAR_THRESHOLD, "pHash Hamming radius (bits of 64) for leak_near",
                                 low=0, high=32, label="Near-duplicate radius (bits)")
    annotation_iou: float = option(DEFAULT_ANNOTATION_IOU, "IoU every box must reach for leak_annotation",
                                   low=0.0, high=1.0, low_open=True, label="Annotation-copy IoU")
    embeddings_threshold: float = option(DEFAULT_EMBEDDINGS_THRESHOLD, "cosine distance for embedding leaks",
                                         low=0.0, high=2.0, form=False)
    alpha: float = option(DEFAULT_ALPHA, "drift: Bonferroni-adjusted p-value below which a test is "
                          "significant", low=0.0, high=1.0, low_open=True, label="Drift alpha")
    min_effect: float = option(DEFAULT_MIN_EFFECT, "drift: smallest effect size reported", low=0.0, high=1.0,
                               label="Drift minimum effect")
    shifted: bool = option(True, "also look for shifted views of one scene", label="Shifted views")
    transformed: bool = option(True, "also look for mirrored or rotated copies", label="Mirrored/rotated copies")
    shift_correlation: float = option(DEFAULT_SHIFT_CORRELATION, "pixel correlation a shifted view must reach",
                                      low=-1.0, high=1.0, form=False)
    workers: int | None = option(None, "threads reading image files (default: FiftyOne's)", low=1, high=256,
                                 form=False)

    def validate(self) -> None:
        if isinstance(self.near_threshold, float) and not float(self.near_threshold).is_integer():
            raise ValueError(f"near_threshold must be a whole number of bits, got {self.near_threshold!r}")
        if self.annotation_iou >= 1.0:
            raise ValueError(f"annotation_iou must be in (0, 1), got {self.annotation_iou!r}")


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
    keep_parts=False,
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
        progress: None, True (a tqdm bar), a callable ``(fraction, label)`` or an operator context.
        workers: threads reading image files.
        keep_parts: True (or a number of samples per part) keeps the run's parts so
            ``iou_audit.rerun_changed`` can later re-run only the changed samples (same stored run;
            see ``iou_audit.shards.plain``).

    Returns:
        ``iou_audit.results.AuditResult`` with findings, tables ``splits``, ``drift_tests``,
        ``class_counts`` and metrics (counts per kind, hash cache hits).

    Example:
        >>> r = audit_splits(dataset, split_field="split")        # doctest: +SKIP
        >>> r.summary()                                           # doctest: +SKIP
    """
    from iou_audit.audits.runner import run_audit

    config = SplitsConfig(
        split_field=split_field, split_tags=tuple(split_tags) if split_tags else None, group_field=group_field,
        embeddings_field=embeddings_field, label_field=label_field, near_threshold=near_threshold,
        annotation_iou=annotation_iou, embeddings_threshold=embeddings_threshold, alpha=alpha,
        min_effect=min_effect, shifted=bool(shifted), transformed=bool(transformed),
        shift_correlation=shift_correlation, workers=workers)

    def work(samples, config, report):
        return _read_and_compute(samples, config, report, audit_key)

    return run_audit(AUDIT, samples, config, work, audit_key, save=save, progress=progress, keep_parts=keep_parts)


def read_hashes(samples, config: SplitsConfig, report, audit_key: str, filepaths=None) -> tuple:
    """``image_hashes`` of every sample's file (the hash cache lives in the previous run's
    ``<key>_*`` fields, hence the key); per sample, so a sharded run hashes its shards apart."""
    filepaths = samples.values("filepath") if filepaths is None else filepaths
    report.report(0.0, "hashing images")
    return image_hashes(samples, filepaths, audit_key, config.workers,
                        lambda done, total: report.report(0.7 * done / max(total, 1), f"hashed {done}/{total} images"))


def _read_and_compute(samples, config: SplitsConfig, report, audit_key: str, hashes: tuple | None = None) -> AuditOutput:
    """The audit; ``hashes``: :func:`read_hashes` of ``samples`` when already computed (the joined
    shards of a sharded run, ``iou_audit.shards``)."""
    from iou_audit.results import concat_findings, make_findings

    workers = config.workers
    near_threshold = int(config.near_threshold)
    ids, split, names, multi = read_splits(samples, config.split_field, config.split_tags)
    label_field = _default_label_field(samples) if config.label_field == "auto" else config.label_field
    filepaths = samples.values("filepath")
    if hashes is None:
        hashes = read_hashes(samples, config, report, audit_key, filepaths)
    sha, phash, whash, thash, stats, cached, unreadable = hashes

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
    near = near_leaks(phash, split_px, near_threshold, exclude=exact)
    frames.append(_findings("leak_near", near, ids, split, names))
    found = [exact, near]  # pixel-verified searches skip pairs already reported

    def already() -> LeakPairs:
        return LeakPairs.build(np.concatenate([p.i for p in found]), np.concatenate([p.j for p in found]),
                               np.ones(sum(len(p) for p in found)))

    if config.shifted:
        report.report(0.72, "shifted views")
        found.append(shifted_leaks(whash, split_px, DEFAULT_SHIFT_THRESHOLD, float(config.shift_correlation),
                                   windows_loader(filepaths, workers), exclude=already()))
        frames.append(_findings("leak_near", found[-1], ids, split, names))
    if config.transformed:
        report.report(0.74, "mirrored and rotated copies")
        found.append(transformed_leaks(thash, phash, split_px, near_threshold, DEFAULT_TRANSFORM_CORRELATION,
                                       thumbs_loader(filepaths, workers), exclude=already()))
        frames.append(_findings("leak_near", found[-1], ids, split, names))
    if config.embeddings_field:
        frames.append(_findings("leak_near", embedding_leaks(read_embeddings(samples, config.embeddings_field), split,
                                                             float(config.embeddings_threshold)), ids, split, names))
    if config.group_field:
        frames.append(_findings("leak_group", group_leaks(read_groups(samples, config.group_field), split,
                                                          dict(enumerate(names))), ids, split, names,
                                orient=False))
    report.report(0.75, "reading labels")
    tables = {"splits": pd.DataFrame({"split": names, "samples": np.bincount(split[split >= 0], minlength=len(names))})}
    if label_field:
        frames_l, tables_l, drift_splits = _label_checks(samples, label_field, ids, split, names,
                                                         float(config.annotation_iou), float(config.alpha),
                                                         float(config.min_effect))
        frames += frames_l
        tables.update(tables_l)
    else:
        drift_splits = []
    findings = concat_findings(frames)
    metrics = kind_counts(findings, KINDS)
    metrics.update(n_samples=len(ids), n_without_split=int((split < 0).sum()), hash_cache_hits=cached,
                   drift_splits=drift_splits)
    leaks = findings[findings["kind"].isin(LEAK_KINDS)]
    pair_of = pair_groups(leaks["sample_id"].to_numpy(), leaks["other_sample_id"].to_numpy())
    sample_values = {"sha256": dict(zip(ids, sha)), "phash": dict(zip(ids, hash_to_hex(phash))),
                     "whash": dict(zip(ids, window_hex(whash))), "thash": dict(zip(ids, window_hex(thash))),
                     "filestat": dict(zip(ids, stats))}
    if pair_of:
        sample_values["pair"] = pair_of
    return AuditOutput(findings, sample_values=sample_values, tables=tables, metrics=metrics,
                       config_extra={"label_field": label_field}, view_builder=_views)


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


def _views(samples, result) -> dict:
    """``{kind: (view, description)}``: leak views showing both sides of every pair, sorted by pair,
    and a drift view of the drifting splits' samples (they replace the default per-kind views)."""
    from fiftyone import ViewField as F

    key = result.audit_key
    f = result.findings
    leaks = f[f["kind"].isin(LEAK_KINDS)]
    views = {}
    for kind, group in leaks.groupby("kind"):
        members = sorted(set(group["sample_id"]) | set(group["other_sample_id"]))
        views[kind] = (samples.select(members).sort_by(F(f"{key}_pair")),
                       f"iou-audit {key}: {kind} ({len(group)} pairs), both sides of each pair, sorted by {key}_pair")
    drift = f[f["kind"] == "split_drift"]
    if len(drift):
        involved = result.metrics.get("drift_splits", [])
        split_field, split_tags = result.config.get("split_field"), result.config.get("split_tags")
        if split_field:
            view = samples.match(F(split_field).is_in(involved)).sort_by(split_field)
        else:
            view = samples.match_tags([t for t in split_tags if t in involved])
        views["split_drift"] = (view, f"iou-audit {key}: split_drift ({len(drift)} findings), samples of {involved}")
    return views

"""The agreement audit on arrays: K annotator tables in, findings + tables + per-label values out.

No database access here (see ``audit.py`` for the FiftyOne wiring). An annotator table is any
object with ``offsets`` (S+1), ``label_id``, ``label``, ``box`` (relative xyxy) and, for masks or
polygons, ``masks``/``polygons`` and ``width``/``height`` -- i.e. an ``iou_audit.table.LabelTable``.
All tables must list the same samples in the same order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from iou_audit.audits.agreement import kalpha
from iou_audit.audits.agreement.clusters import Clusters, EdgeGraph, edge_graph
from iou_audit.audits.agreement.curve import curve_alphas
from iou_audit.audits.agreement.findings import agreement_findings
from iou_audit.audits.agreement.pairs import PairMatch, pick_geometry
from iou_audit.audits.agreement.parts import compute_part, merge_parts
from iou_audit.audits.agreement.stats import annotator_reliability, matrix, pair_table, per_image_and_class

DEFAULT_CURVE = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2))


@dataclass
class Agreement:
    """Everything the audit computed; ``tables`` and ``metrics`` go into the AuditResult.

    ``cluster_table`` (one row per object) and ``members`` (one row per label) stay here rather than
    in the stored run: they are as long as the label fields.
    """

    findings: pd.DataFrame
    tables: dict
    metrics: dict
    clusters: Clusters
    cluster_table: pd.DataFrame
    member_rows: pd.DataFrame  # the member table without its label ids and classes (see ``members``)
    pair_matches: list = field(repr=False)
    label_values: list = field(repr=False)  # per annotator: {attr: (L_k,) array}
    geometry: str = "boxes"
    consensus: pd.DataFrame | None = field(default=None, repr=False)  # fused labels, if asked
    label_tables: list | None = field(default=None, repr=False)  # per annotator: offsets, label_id, label, box, sample_ids

    @property
    def members(self) -> pd.DataFrame:
        """The member table (one row per label: cluster, annotator, row, ...) with each label's
        ``label`` and ``label_id`` read from ``label_tables`` and its edge offsets recomputed from
        their boxes (not kept beside them: memory)."""
        mem = self.member_rows
        if "label_id" in mem or self.label_tables is None:
            return mem
        from iou_audit.audits.agreement.cluster_stats import EDGE_COLUMNS
        from iou_audit.audits.agreement.findings import MemberColumn
        from iou_audit.audits.agreement.stats import edge_offsets

        out = mem.copy()
        for col in ("cluster", "annotator", "row", "own_votes"):  # as cluster_table lists them (narrowed when kept)
            if col in out:
                out[col] = out[col].astype(np.int64)
        every = np.arange(len(mem))
        ann, row = mem.annotator.to_numpy(), mem.row.to_numpy()
        for pos, name in ((3, "label"), (4, "label_id")):
            column = MemberColumn(self.label_tables, name, ann, row)
            out.insert(min(pos, out.shape[1]), name, column.take(every))
        if "d_left" not in out:
            edges = edge_offsets(self.label_tables, mem.cluster.to_numpy(), ann, row, every)
            at = out.columns.get_loc("member_iou") + 1
            for j, name in enumerate(EDGE_COLUMNS):
                out.insert(at + j, name, edges[:, j])
        return out


def coverage_matrix(tables, coverage: np.ndarray | None) -> np.ndarray:
    """(S, K) bool: annotator k labelled sample s. A sample where an annotator has labels is covered."""
    S = len(tables[0].offsets) - 1
    has = np.stack([np.diff(np.asarray(t.offsets)) > 0 for t in tables], axis=1)
    if coverage is None:
        return np.ones((S, len(tables)), dtype=bool)
    cov = np.asarray(coverage, dtype=bool)
    if cov.shape != (S, len(tables)):
        raise ValueError(f"coverage must have shape (samples, annotators) = {(S, len(tables))}, got {cov.shape}")
    return cov | has


def class_codes(tables) -> np.ndarray:
    """Integer class code of every label of all annotators (concatenated in annotator order)."""
    labels = np.concatenate([np.asarray(t.label, dtype=object) for t in tables])
    if not len(labels):
        return np.zeros(0, np.int64)
    # = np.unique(labels.astype(str), return_inverse=True)[1]: hash first, sort only distinct labels
    codes, uniq = pd.factorize(labels, use_na_sentinel=False)
    return np.unique(np.asarray(uniq, dtype=object).astype(str), return_inverse=True)[1][codes].astype(np.int64)


def _alpha_observations(tables, clusters: Clusters, covered: np.ndarray, codes: np.ndarray, with_annotator: bool = False):
    """(unit, value, sample[, annotator]) per covering annotator of each cluster; value -1 = "empty"."""
    start = np.cumsum([0] + [len(t.label) for t in tables])
    units, values, annotators = [], [], []
    cov = covered[clusters.sample_index]
    for k in range(len(tables)):
        rows = np.flatnonzero(cov[:, k])
        member = clusters.members[rows, k]
        idx = np.where(member >= 0, member + start[k], 0)
        v = np.where(member >= 0, codes[idx], -1) if len(codes) else np.full(len(rows), -1)
        units.append(rows), values.append(v), annotators.append(np.full(len(rows), k))
    u = np.concatenate(units)
    out = (u, np.concatenate(values), clusters.sample_index[u])
    return (*out, np.concatenate(annotators)) if with_annotator else out


def pair_alphas(clusters: Clusters, unit, value, annotator, pms) -> list:
    """Nominal alpha of each annotator pair alone: its observations on the objects either one drew."""
    out = []
    for pm in pms:
        drawn = (clusters.members[:, pm.a] >= 0) | (clusters.members[:, pm.b] >= 0)
        sel = ((annotator == pm.a) | (annotator == pm.b)) & drawn[unit]
        out.append(kalpha.nominal_alpha_counts(unit[sel], value[sel]))
    return out


def compute_agreement(
    tables,
    names=None,
    fields=None,
    sample_ids=None,
    iou_thresh: float = 0.5,
    method: str = "hungarian",
    quorum: float | int | None = None,
    coverage: np.ndarray | None = None,
    geometry: str = "auto",
    low_iou: float = 0.75,
    curve_thresholds=DEFAULT_CURVE,
    compute_map: bool = True,
    consensus: bool = False,
) -> Agreement:
    """Match, cluster and score K annotators (see the package docstring for every definition).

    Example: two annotators, one shared box (IoU 1) and one box only annotator b drew:
        >>> from types import SimpleNamespace as T
        >>> a = T(offsets=np.array([0, 1]), label_id=np.array(["a1"]), label=np.array(["cat"]),
        ...       box=np.array([[0, 0, .5, .5]]))
        >>> b = T(offsets=np.array([0, 2]), label_id=np.array(["b1", "b2"]), label=np.array(["cat", "dog"]),
        ...       box=np.array([[0, 0, .5, .5], [.6, .6, .9, .9]]))
        >>> r = compute_agreement([a, b], names=["a", "b"], compute_map=False)
        >>> r.tables["pairs"][["f1", "mean_iou"]].round(3).values.tolist()
        [[0.667, 1.0]]
        >>> r.findings.kind.tolist()
        ['extra_in_annotator']
    """
    return compute_agreement_batches(
        [(tables, coverage)], names=names, fields=fields, sample_ids=sample_ids, iou_thresh=iou_thresh, method=method,
        quorum=quorum, geometry=geometry, low_iou=low_iou, curve_thresholds=curve_thresholds, compute_map=compute_map,
        consensus=consensus)


def compute_agreement_batches(
    batches,
    names=None,
    fields=None,
    sample_ids=None,
    iou_thresh: float = 0.5,
    method: str = "hungarian",
    quorum: float | int | None = None,
    geometry: str = "auto",
    low_iou: float = 0.75,
    curve_thresholds=DEFAULT_CURVE,
    compute_map: bool = True,
    consensus: bool = False,
) -> Agreement:
    """:func:`compute_agreement` over consecutive batches of samples, memory O(batch) + O(labels).

    ``batches`` yields ``(tables, coverage)``: the K annotator tables of one batch of samples (same
    samples, same order) and its (S_b, K) coverage or None. Results equal one pass over all samples
    (see ``parts.py``: geometry stays in its batch, O(labels) arrays are joined, then the global
    statistics are computed once). ``consensus=True`` also fuses the consensus labels per batch.
    """
    parts, geometry = agreement_parts(batches, iou_thresh=iou_thresh, method=method, quorum=quorum, geometry=geometry,
                                      curve_thresholds=curve_thresholds, compute_map=compute_map, consensus=consensus)
    return agreement_from_parts(parts, names=names, fields=fields, sample_ids=sample_ids, iou_thresh=iou_thresh,
                                quorum=quorum, geometry=geometry, low_iou=low_iou, curve_thresholds=curve_thresholds,
                                compute_map=compute_map)


def agreement_parts(batches, iou_thresh: float = 0.5, method: str = "hungarian", quorum=None, geometry: str = "auto",
                    curve_thresholds=DEFAULT_CURVE, compute_map: bool = True, consensus: bool = False):
    """``(parts, geometry)``: the per-batch :class:`parts.BatchPart` of ``batches`` (the first half of
    :func:`compute_agreement_batches`; a sharded run stores them per shard, ``iou_audit.shards``)."""
    parts, K, curve_lowest = [], None, min(curve_thresholds) if len(curve_thresholds) else iou_thresh
    for tables, coverage in batches:
        if K is None:
            K = len(tables)
            if K < 2:
                raise ValueError(f"agreement needs at least 2 annotators, got {K}")
            geometry = pick_geometry(tables, geometry)
        parts.append(compute_part(tables, coverage_matrix(tables, coverage), iou_thresh, method, geometry, quorum,
                                  curve_lowest, compute_map, consensus))
    return parts, geometry


def agreement_from_parts(parts: list, names=None, fields=None, sample_ids=None, iou_thresh: float = 0.5, quorum=None,
                         geometry: str = "boxes", low_iou: float = 0.75, curve_thresholds=DEFAULT_CURVE,
                         compute_map: bool = True) -> Agreement:
    """The global statistics of consecutive batches' parts (the second half of
    :func:`compute_agreement_batches`): parts joined with ``merge_parts`` (``parts`` is emptied
    then, so the batches' arrays are freed), then computed once."""
    if not parts:
        raise ValueError("no samples to audit: the view is empty")
    K = len(parts[0].tables)
    m = merge_parts(parts, release=True)
    parts.clear()  # the joined arrays replace them (the caller's list too: memory)
    _narrow_indices(m)
    tables, covered, pms, clusters, ctab, mem = m.tables, m.covered, m.pms, m.clusters, m.ctab, m.mem
    names = list(names) if names is not None else [f"annotator_{k}" for k in range(K)]
    fields = list(fields) if fields is not None else names
    S = len(covered)
    sample_ids = np.asarray(sample_ids if sample_ids is not None else tables[0].sample_ids, dtype=object)
    pairs = pair_table(tables, names, pms, covered)
    per_image, per_class = per_image_and_class(tables, pms, covered)
    per_image.insert(0, "sample_id", sample_ids)
    reliability = annotator_reliability(names, clusters, ctab, mem, covered, quorum)

    codes = class_codes(tables)
    unit, value, smp, ann = _alpha_observations(tables, clusters, covered, codes, with_annotator=True)
    alpha_nominal = kalpha.nominal_alpha_counts(unit, value)
    pairs["alpha"] = pair_alphas(clusters, unit, value, ann, pms)
    groups, alpha_img = kalpha.nominal_alpha_counts(unit, value, group=smp)
    per_image["alpha"] = pd.Series(alpha_img, index=groups).reindex(range(S)).to_numpy()
    # Per class: the units (objects) whose majority class is that class. Inside one class nearly
    # every value is that class (or "empty"), so alpha there is low whenever one value dominates
    # (the prevalence paradox of chance-corrected coefficients): read it next to the class F1.
    maj = ctab.label.to_numpy().astype(str)
    cls_names, cls_of_unit = np.unique(maj, return_inverse=True)
    groups, alpha_cls = kalpha.nominal_alpha_counts(unit, value, group=cls_of_unit[unit])
    per_class["alpha"] = pd.Series(alpha_cls, index=cls_names[groups]).reindex(per_class.label.astype(str)).to_numpy()
    alpha_ci = kalpha.nominal_alpha_ci(unit, value, smp, S)
    alpha_interval = kalpha.interval_alpha(ctab.n_covering.to_numpy(), ctab.n_present.to_numpy(), ctab.iou_pair_sum.to_numpy())
    # the alpha observations (one per label and annotator) and the objects' class names are not
    # used below: freed before the curve and the findings, where the peak was (~0.15 GB at 100,000 samples)
    del unit, value, smp, ann, maj, cls_of_unit

    curve = threshold_curve(tables, m.curve_pms or pms, covered, codes, curve_thresholds, m.curve_graph)
    findings = agreement_findings(ctab, mem, clusters, covered, sample_ids, fields, names, low_iou, tables)
    findings["field"] = findings["field"].astype(object)

    tables_out = {
        "pairs": pairs,
        "matrix_f1": matrix(pairs, names, "f1"),
        "matrix_f1_class": matrix(pairs, names, "f1_class"),
        "matrix_mean_iou": matrix(pairs, names, "mean_iou"),
        "per_image": per_image,
        "per_class": per_class,
        "annotators": reliability,
        "threshold_curve": curve,
        "alpha": pd.DataFrame({
            "variant": ["nominal (class, empty when unmatched)", "interval (1 - IoU)"],
            "alpha": [alpha_nominal, alpha_interval], "ci95_low": [alpha_ci[0], np.nan], "ci95_high": [alpha_ci[1], np.nan],
            "iou_thresh": [iou_thresh, iou_thresh]}),
    }
    tot_labels = pairs.n_a.sum() + pairs.n_b.sum()
    metrics = {
        "n_annotators": K, "n_samples": S, "n_objects": len(ctab), "geometry": geometry,
        "alpha_nominal": alpha_nominal, "alpha_nominal_ci95": list(alpha_ci), "alpha_interval": alpha_interval,
        "f1": float(2 * pairs.matched.sum() / tot_labels) if tot_labels else float("nan"),
        "f1_class": float(2 * pairs.matched_same_class.sum() / tot_labels) if tot_labels else float("nan"),
        "mean_iou": float(np.average(pairs.mean_iou.fillna(0), weights=pairs.matched)) if pairs.matched.sum() else float("nan"),
    }
    if compute_map:
        from iou_audit.audits.agreement.coco_map import map_table

        mp = map_table(m.map_parts, pms, names)
        tables_out["map_pairs"] = mp
        metrics["map"] = float(mp["map"].mean()) if mp["map"].notna().any() else float("nan")
        metrics["map50"] = float(mp["map50"].mean()) if mp["map50"].notna().any() else float("nan")
    boundary = _boundary(tables, pms, m.boundary, pairs, metrics) if geometry == "masks" else None
    label_values = []
    m_ann, m_row, m_cluster, m_iou = (mem[c].to_numpy() for c in ("annotator", "row", "cluster", "member_iou"))
    for k in range(K):
        sel = np.flatnonzero(m_ann == k)
        sel = sel[np.argsort(m_row[sel], kind="stable")]  # by row (arrays, not a frame filter + sort)
        label_values.append({"n_annotators": ctab.n_present.to_numpy()[m_cluster[sel]], "iou": m_iou[sel]})
        if boundary is not None:
            label_values[-1]["boundary_iou"] = boundary[k]
    return Agreement(findings, tables_out, metrics, clusters, ctab, mem, pms, label_values, geometry, m.fused, tables)


def _narrow_indices(m) -> None:
    """Narrow the joined per-label index columns (``merge_parts``' output, in place): the member
    table's cluster and row as int32, annotator and own votes as int8, the pairs' matches and the
    clusters' member rows as int32 (when they fit), and ``cluster_of`` as views of the member
    table's cluster column (the same numbers: it lists annotator by annotator, in row order).
    Values do not change; about 40 bytes per label less."""
    from iou_audit.audits.agreement.parts import _narrow

    mem = m.mem
    for col, small in (("cluster", _narrow), ("row", _narrow), ("annotator", _int8), ("own_votes", _int8)):
        if col in mem:
            mem[col] = small(mem[col].to_numpy())
    m.pms = [PairMatch(pm.a, pm.b, pm.values, pm.pair_offsets, _narrow_match(pm.match_a), pm.iou_a,
                       _narrow_match(pm.match_b), pm.iou_b) for pm in m.pms]
    c = m.clusters
    members = c.members.astype(np.int32) if c.members.size and int(c.members.max()) < 2**31 else c.members
    bounds = np.searchsorted(mem.annotator.to_numpy(), np.arange(members.shape[1] + 1))
    ordered = len(mem) == sum(map(len, c.cluster_of)) and all(
        bounds[k + 1] - bounds[k] == len(c.cluster_of[k]) for k in range(members.shape[1]))
    cluster = mem.cluster.to_numpy()
    cluster_of = [cluster[bounds[k]:bounds[k + 1]] for k in range(members.shape[1])] if ordered and all(
        np.array_equal(cluster[bounds[k]:bounds[k + 1]], c.cluster_of[k]) for k in range(members.shape[1])) else c.cluster_of
    m.clusters = Clusters(c.sample_index, members, cluster_of)


def _int8(values: np.ndarray) -> np.ndarray:
    return values.astype(np.int8) if not len(values) or (values.min() >= -128 and values.max() < 128) else values


def _narrow_match(match: np.ndarray) -> np.ndarray:
    return match.astype(np.int32) if not len(match) or int(match.max()) < 2**31 else match


def _boundary(tables, pms, per_pair: list, pairs: pd.DataFrame, metrics: dict) -> list:
    """Boundary IoU of matched mask pairs (``per_pair``: one array per pair, computed per batch):
    pair-table column, overall metric, per-label mean."""
    sums = [np.zeros(len(t.label_id)) for t in tables]
    counts = [np.zeros(len(t.label_id)) for t in tables]
    means, all_values = [], []
    for pm, b in zip(pms, per_pair):
        hit = np.flatnonzero((pm.match_a >= 0) & np.isfinite(b))
        np.add.at(sums[pm.a], hit, b[hit]), np.add.at(counts[pm.a], hit, 1)
        np.add.at(sums[pm.b], pm.match_a[hit], b[hit]), np.add.at(counts[pm.b], pm.match_a[hit], 1)
        means.append(float(b[hit].mean()) if len(hit) else np.nan)
        all_values.append(b[hit])
    pairs["mean_boundary_iou"] = means
    v = np.concatenate(all_values)
    metrics["boundary_iou"] = float(v.mean()) if len(v) else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        return [np.where(c > 0, s / np.maximum(c, 1), np.nan) for s, c in zip(sums, counts)]


def threshold_curve(tables, pms, covered, codes, thresholds, graph: EdgeGraph | None = None, ranks=None) -> pd.DataFrame:
    """Nominal alpha and matching F1 when only matches with IoU >= t count, for each threshold t.

    ``pms`` is one matching, made at the lowest threshold of the curve (the audit's own matching
    when that is ``iou_thresh``, the default; else ``parts.compute_part`` re-matches each batch);
    a stricter t drops its weaker pairs (each then becomes an "empty" against a lone label)
    instead of re-matching, which keeps the curve cheap and monotone. ``graph`` is the
    :func:`edge_graph` of ``pms`` (``merge_parts`` joins the batches' graphs; built from ``ranks``
    when not given).
    """
    graph = edge_graph(tables, pms, ranks) if graph is None else graph  # edges sorted once; each threshold filters them
    # F1 numerator per threshold: the matched IoUs of covered samples, sorted once and counted
    # with searchsorted (the same integers as counting iou >= t per threshold and pair).
    matched_iou, den = [], 0
    for pm in pms:
        both = covered[:, pm.a] & covered[:, pm.b]
        sa = np.repeat(both, np.diff(tables[pm.a].offsets))
        sb = np.repeat(both, np.diff(tables[pm.b].offsets))
        matched_iou.append(pm.iou_a[(pm.match_a >= 0) & sa])
        den += int(sa.sum() + sb.sum())
    matched_iou = np.concatenate(matched_iou) if matched_iou else np.zeros(0)
    matched_iou = np.sort(matched_iou[~np.isnan(matched_iou)])  # NaN is never >= t
    rows = []
    for t, alpha in zip(thresholds, curve_alphas(graph, list(thresholds), covered, codes)):
        m = len(matched_iou) - int(np.searchsorted(matched_iou, t, side="left"))  # count of iou >= t
        rows.append({"iou_thresh": float(t), "alpha_nominal": alpha, "f1": 2 * m / den if den else np.nan})
    return pd.DataFrame(rows)

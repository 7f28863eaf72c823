"""The agreement audit in batches of samples: what each batch keeps, and how batches are joined.

Everything that needs geometry (IoU blocks, masks, polygons) is done inside a batch: pairwise IoU
and matching, clusters (objects never span samples), the per-object table, Boundary IoU, the
per-detection COCO outcomes for mAP, re-matching for the threshold curve, consensus fusion. A
batch then keeps only O(labels) data: per label its id, class, box, match and IoU in every pair,
its cluster row; per object its statistics row. :func:`merge_parts` joins batches in order,
shifting row, cluster and sample indices, into exactly what one pass over all samples would hold
(clusters are numbered by sample, then by label id, and label-id order inside a sample does not
depend on the batch). Global statistics (F1, mean IoU, alpha and its bootstrap, mAP, threshold
curve, per-class/per-pair/per-annotator tables, findings) are then computed once on that.

Memory: O(batch) for geometry and IoU blocks; O(labels) for the kept arrays (a few dozen bytes
per label per annotator pair, plus 10 bits per label and pair direction for mAP; the member
table keeps no copy of the label ids and classes, which stay in the compact tables).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd

from iou_audit.audits.agreement.cluster_stats import EDGE_COLUMNS
from iou_audit.audits.agreement.clusters import Clusters, EdgeGraph, build_clusters, edge_graph, graph_nodes, label_rank
from iou_audit.audits.agreement.pairs import PairMatch, match_all_pairs, match_blocks
from iou_audit.audits.agreement.stats import cluster_table
from iou_audit.table.concat import compact_ids, concat_ids, str_ids


@dataclass
class BatchPart:
    """One batch's O(labels) results (indices local to the batch)."""

    tables: list  # compact: offsets, label_id, label, box, sample_ids
    covered: np.ndarray  # (S_b, K)
    pms: list  # PairMatch without IoU blocks
    curve_pms: list | None  # matches at the curve's lowest threshold, when below iou_thresh
    clusters: Clusters
    ctab: pd.DataFrame
    mem: pd.DataFrame
    boundary: list | None  # per pair: (La_b,) Boundary IoU of a's matched labels
    map_parts: list | None  # coco_map.map_parts of this batch
    fused: pd.DataFrame | None  # consensus_labels of this batch
    ranks: list  # per annotator: rank of each label id within the batch (label_rank)
    curve_edges: tuple  # (u, v, w): the threshold curve's matching as sorted graph edges (batch nodes)


def compact(t) -> SimpleNamespace:
    """The O(labels) columns of an annotator table (no masks or polygons), compactly: label ids as
    fixed-width bytes when they are ASCII (24 bytes for an ObjectId instead of an 81-byte ``str``;
    :func:`label_ids` gives them back as ``str``), and each class name stored once (the reader
    makes one ``str`` per label).

    Example:
        >>> from types import SimpleNamespace as T
        >>> c = compact(T(offsets=[0, 2], label_id=["a" * 24, "b" * 24], label=["cat", "cat"], box=np.zeros((2, 4))))
        >>> c.label_id.dtype, label_ids(c).tolist() == ["a" * 24, "b" * 24], c.label[0] is c.label[1]
        (dtype('S24'), True, True)
    """
    n = len(t.offsets) - 1
    ids = compact_ids(t.label_id)
    codes, uniq = pd.factorize(np.asarray(t.label, dtype=object), use_na_sentinel=False)
    labels = np.asarray(uniq, dtype=object)[codes] if len(codes) else np.asarray(t.label, dtype=object)
    return SimpleNamespace(
        offsets=np.asarray(t.offsets, np.int64), label_id=ids, label=labels,
        box=np.asarray(t.box, dtype=np.float64).reshape(-1, 4),
        sample_ids=np.asarray(getattr(t, "sample_ids", np.arange(n)), dtype=object), masks=None, polygons=None)


def label_ids(t, rows=slice(None)) -> np.ndarray:
    """Label ids of a :func:`compact` table (at ``rows``) as an object array of ``str``."""
    return str_ids(t.label_id[rows])


def _strip(pm: PairMatch) -> PairMatch:
    return PairMatch(pm.a, pm.b, None, None, pm.match_a, pm.iou_a, pm.match_b, pm.iou_b)


def compute_part(tables, covered, iou_thresh, method, geometry, quorum, curve_lowest, compute_map, consensus) -> BatchPart:
    """Match, cluster and score one batch; keep what :func:`merge_parts` and the statistics need."""
    pms = match_all_pairs(tables, iou_thresh, method, geometry)
    ranks = label_rank(tables)
    graph = edge_graph(tables, pms, ranks)
    clusters = build_clusters(tables, pms, ranks=ranks, graph=graph)
    ctab, mem = cluster_table(tables, clusters, pms, covered, quorum)
    curve_pms = None
    if curve_lowest < iou_thresh - 1e-9:
        curve_pms = [_strip(PairMatch(pm.a, pm.b, pm.values, pm.pair_offsets, *match_blocks(
            pm.values, pm.pair_offsets, tables[pm.a].offsets, tables[pm.b].offsets, curve_lowest, method))) for pm in pms]
    # The curve's edges are sorted here, per batch: merge_parts joins them in batch order, which
    # is the global order (edges sort by sample first), so no global re-sort (30 ms of 1.0 s).
    curve_graph = graph if curve_pms is None else edge_graph(tables, curve_pms, ranks)
    boundary = None
    if geometry == "masks":
        from iou_audit.audits.agreement.boundary import matched_boundary_iou

        boundary = [matched_boundary_iou(tables[pm.a], tables[pm.b], pm.match_a) for pm in pms]
    maps = None
    if compute_map:
        from iou_audit.audits.agreement.coco_map import map_parts

        maps = map_parts(tables, pms, covered)
    fused = None
    if consensus:
        from iou_audit.audits.agreement.consensus import consensus_labels

        fused = consensus_labels(tables, ctab, mem, geometry)
    # the member boxes served the edge offsets and the consensus; the tables keep the boxes, and
    # the label ids and classes (findings read them there: findings.MemberColumn); the edge
    # offsets are recomputed from the boxes where a finding needs them (stats.edge_offsets)
    mem = mem.drop(columns=["x1", "y1", "x2", "y2", "label", "label_id", *EDGE_COLUMNS])
    return BatchPart([compact(t) for t in tables], covered, [_strip(pm) for pm in pms], curve_pms, clusters, ctab, mem,
                     boundary, maps, fused, [_narrow(r) for r in ranks], (_narrow(curve_graph.u), _narrow(curve_graph.v), curve_graph.w))


def _narrow(index: np.ndarray) -> np.ndarray:
    """Non-negative indices as int32 when they fit (memory: per-label arrays; the same values)."""
    return index.astype(np.int32) if not len(index) or int(index.max()) < 2**31 else index


def _shift(match: np.ndarray, by: int) -> np.ndarray:
    return np.where(match >= 0, match + by, -1)


def _merge_pms(pms_by_batch, row_start) -> list:
    out = []
    for j, pm in enumerate(pms_by_batch[0]):
        cols = [[], [], [], []]
        for i, pms in enumerate(pms_by_batch):
            p = pms[j]
            cols[0].append(_shift(p.match_a, row_start[i][p.b])), cols[1].append(p.iou_a)
            cols[2].append(_shift(p.match_b, row_start[i][p.a])), cols[3].append(p.iou_b)
        out.append(PairMatch(pm.a, pm.b, None, None, *(np.concatenate(c) for c in cols)))
    return out


def _merge_edges(parts: list[BatchPart], tables, ranks, row_start, part_sizes) -> EdgeGraph:
    """The batches' sorted curve edges as one :class:`EdgeGraph` of the joined tables.

    Edges are sorted by (sample, -IoU, label-id ranks), and batches hold consecutive samples with
    ranks that keep their order inside a sample, so batch after batch is the global order. A batch
    node (annotator k, row r of the batch) becomes node ``node_start[k] + row_start[i][k] + r``.
    """
    nodes = graph_nodes(tables, ranks)
    us, vs, ws = [], [], []
    for i, p in enumerate(parts):
        sizes = part_sizes[i]
        batch_start = np.concatenate([[0], np.cumsum(sizes)])
        shift = nodes["node_start"][:-1] + row_start[i] - batch_start[:-1]  # per annotator
        u, v, w = p.curve_edges
        shift_of_node = np.repeat(shift, sizes)
        us.append(_narrow(u + shift_of_node[u]))
        vs.append(_narrow(v + shift_of_node[v]))
        ws.append(w)
    return EdgeGraph(**nodes, u=_narrow(np.concatenate(us)), v=_narrow(np.concatenate(vs)), w=np.concatenate(ws))


def _merge_members(parts: list[BatchPart], c_start, row_start) -> pd.DataFrame:
    """The batches' member tables as a single pass lists them: annotator by annotator, each in row
    order, cluster and row shifted to the joined numbering.

    Each batch lists its members that way already, so annotator k's block of every batch, batch
    after batch, is the order; joining those blocks replaces a sort of the joined frame by
    (annotator, row) and the take it implies (about 10 ms of the benchmark's 0.65 s). A batch
    listed otherwise falls back to that sort.
    """
    K = len(parts[0].tables)
    ann = [p.mem.annotator.to_numpy() for p in parts]
    row = [p.mem.row.to_numpy() for p in parts]
    ordered = all(np.all((a[1:] > a[:-1]) | ((a[1:] == a[:-1]) & (r[1:] > r[:-1]))) for a, r in zip(ann, row))
    if not ordered:
        mems = [p.mem.assign(cluster=p.mem.cluster + c_start[i], row=p.mem.row + row_start[i][ann[i]]) for i, p in enumerate(parts)]
        return pd.concat(mems, ignore_index=True).sort_values(["annotator", "row"], kind="stable").reset_index(drop=True)
    bounds = [np.searchsorted(a, np.arange(K + 1)) for a in ann]
    blocks = [(i, b[k], b[k + 1]) for k in range(K) for i, b in enumerate(bounds)]
    mem = pd.concat([parts[i].mem.iloc[lo:hi] for i, lo, hi in blocks], ignore_index=True)
    mem["cluster"] = np.concatenate([parts[i].mem.cluster.to_numpy()[lo:hi] + c_start[i] for i, lo, hi in blocks])
    mem["row"] = np.concatenate([row[i][lo:hi] + row_start[i][ann[i][lo:hi]] for i, lo, hi in blocks])
    return mem


def merge_parts(parts: list[BatchPart], release: bool = False) -> SimpleNamespace:
    """Join consecutive batches into the arrays a single pass would hold (see the module docstring).

    ``release``: drop each part's columns as soon as they are joined (the parts are left empty),
    so the join holds about one extra column, not a second copy of everything.
    """
    K = len(parts[0].tables)
    n_rows = np.array([[len(t.label_id) for t in p.tables] for p in parts], dtype=np.int64).reshape(len(parts), K)
    row_start = np.vstack([np.zeros((1, K), np.int64), np.cumsum(n_rows, axis=0)])
    n_samples = np.array([len(p.covered) for p in parts], dtype=np.int64)
    s_start = np.concatenate([[0], np.cumsum(n_samples)])
    n_clusters = np.array([len(p.ctab) for p in parts], dtype=np.int64)
    c_start = np.concatenate([[0], np.cumsum(n_clusters)])
    sizes = [np.array([len(t.label_id) for t in p.tables], dtype=np.int64) for p in parts]
    tables = []
    for k in range(K):
        ts = [p.tables[k] for p in parts]
        offsets = np.concatenate([[0]] + [t.offsets[1:] + row_start[i][k] for i, t in enumerate(ts)])
        tables.append(SimpleNamespace(
            offsets=offsets, label_id=concat_ids([t.label_id for t in ts]), label=np.concatenate([t.label for t in ts]),
            box=np.concatenate([t.box for t in ts]), sample_ids=np.concatenate([t.sample_ids for t in ts]),
            masks=None, polygons=None))
        del ts
        _release(parts, release, lambda p: p.tables.__setitem__(k, None))
    members = np.concatenate([np.where(p.clusters.members >= 0, p.clusters.members + row_start[i][None, :], -1)
                              for i, p in enumerate(parts)])
    clusters = Clusters(np.concatenate([p.clusters.sample_index + s_start[i] for i, p in enumerate(parts)]), members,
                        [np.concatenate([p.clusters.cluster_of[k] + c_start[i] for i, p in enumerate(parts)]) for k in range(K)])
    _release(parts, release, "clusters")
    fused = [p.fused.assign(cluster=p.fused.cluster + c_start[i], sample_index=p.fused.sample_index + s_start[i])
             for i, p in enumerate(parts) if p.fused is not None]
    _release(parts, release, "fused")
    # Frames are joined first and their index columns shifted after (one copy, not two).
    ctab = pd.concat([p.ctab for p in parts], ignore_index=True)
    ctab["cluster"] = np.concatenate([p.ctab.cluster.to_numpy() + c_start[i] for i, p in enumerate(parts)])
    ctab["sample_index"] = np.concatenate([p.ctab.sample_index.to_numpy() + s_start[i] for i, p in enumerate(parts)])
    _release(parts, release, "ctab")
    mem = _merge_members(parts, c_start, row_start)
    _release(parts, release, "mem")
    pms = _merge_pms([p.pms for p in parts], row_start)
    curve = _merge_pms([p.curve_pms for p in parts], row_start) if parts[0].curve_pms is not None else None
    _release(parts, release, "pms", "curve_pms")
    boundary = None if parts[0].boundary is None else [np.concatenate([p.boundary[j] for p in parts]) for j in range(len(pms))]
    # Label-id ranks are only compared inside a sample, so batch-local ranks (shifted to stay
    # distinct) order every sample's labels as global ranks would.
    total = np.concatenate([[0], np.cumsum(n_rows.sum(axis=1))])
    ranks = [_narrow(np.concatenate([p.ranks[k] + total[i] for i, p in enumerate(parts)])) for k in range(K)]
    curve_graph = _merge_edges(parts, tables, ranks, row_start, sizes)
    # the graph's node ranks are these ranks joined: keep one copy (views of it), not two
    ranks = [curve_graph.node_rank[curve_graph.node_start[k]:curve_graph.node_start[k + 1]] for k in range(K)]
    _release(parts, release, "ranks", "curve_edges", "boundary")
    return SimpleNamespace(
        ranks=ranks, curve_graph=curve_graph, tables=tables, covered=np.concatenate([p.covered for p in parts]), pms=pms, curve_pms=curve, clusters=clusters,
        ctab=ctab, mem=mem, boundary=boundary,
        map_parts=None if parts[0].map_parts is None else [p.map_parts for p in parts],
        fused=pd.concat(fused, ignore_index=True) if fused else None)


def _release(parts: list[BatchPart], release: bool, *what) -> None:
    """Drop attributes ``what`` (names, or a function of the part) of every part, when ``release``."""
    if not release:
        return
    for p in parts:
        for w in what:
            w(p) if callable(w) else setattr(p, w, None)

"""Near-duplicate hash search: multi-index hashing (iou_audit.audits.splits.index.near_pairs)
vs brute force (vectorized numpy XOR + popcount over every pair, in chunks), same run, same data.

Data: N uniform random 64-bit hashes, of which ``--planted`` are near copies of other hashes with
1..radius random bits flipped (like re-encoded/resized images under pHash). Checks that the index
returns exactly the brute-force pair set and contains every planted pair, then prints median
times over interleaved rounds and the speed ratio.

    python bench/bench_hash_index.py            # 100,000 hashes, radius 8 (the audit default)
    python bench/bench_hash_index.py --quick    # 10,000 hashes
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from iou_audit.audits.splits.index import brute_force_pairs, choose_n_bands, near_pairs


def make_hashes(n: int, n_planted: int, radius: int, seed: int = 0):
    """(hashes, planted_pairs): the last ``n_planted`` hashes copy random earlier ones with
    1..radius bits flipped."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, np.iinfo(np.uint64).max, n - n_planted, dtype=np.uint64, endpoint=True)
    sources = rng.choice(len(base), n_planted, replace=False)
    copies = base[sources].copy()
    n_flips = rng.integers(1, radius + 1, n_planted)
    for row, flips in enumerate(n_flips):
        for bit in rng.choice(64, flips, replace=False):
            copies[row] ^= np.uint64(1) << np.uint64(bit)
    hashes = np.concatenate([base, copies])
    planted = np.stack([sources, np.arange(len(base), n)], axis=1)
    return hashes, planted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="number of hashes")
    parser.add_argument("--planted", type=int, default=1_000, help="planted near copies")
    parser.add_argument("--radius", type=int, default=8, help="Hamming radius (audit default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--quick", action="store_true", help="small size (10,000 hashes, 100 planted)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.planted = 10_000, 100

    hashes, planted = make_hashes(args.n, args.planted, args.radius)
    t_index, t_brute = [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        got = near_pairs(hashes, args.radius)
        t_index.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = brute_force_pairs(hashes, args.radius)
        t_brute.append(time.perf_counter() - t0)
        identical = all(np.array_equal(a, b) for a, b in zip(got, ref))
        assert identical, "index and brute force disagree"

    found = set(zip(got[0].tolist(), got[1].tolist()))
    missed = [p for p in map(tuple, np.sort(planted, axis=1).tolist()) if p not in found]
    med_i, med_b = statistics.median(t_index), statistics.median(t_brute)
    print(f"hashes={args.n:,} planted={args.planted:,} radius={args.radius} "
          f"bands={choose_n_bands(args.n, args.radius)} rounds={args.rounds}")
    print(f"pairs found: index={len(got[0]):,} brute={len(ref[0]):,} identical={identical} "
          f"planted found={args.planted - len(missed):,}/{args.planted:,}")
    print(f"median time: index {med_i:.3f} s   brute force {med_b:.3f} s   ratio {med_b / med_i:.1f}x")
    if missed:
        raise SystemExit(f"index missed {len(missed)} planted pairs, e.g. {missed[:5]}")


if __name__ == "__main__":
    main()

"""Multi-index hashing must return exactly the brute-force pair set (XOR + popcount of every pair)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iou_audit.audits.splits.index import (
    band_probe_radii,
    brute_force_pairs,
    choose_n_bands,
    near_pairs,
)


def _python_pairs(hashes, radius):
    """Independent oracle: plain Python ints and bin().count over every pair."""
    h = [int(x) for x in hashes]
    out = []
    for i in range(len(h)):
        for j in range(i + 1, len(h)):
            d = bin(h[i] ^ h[j]).count("1")
            if d <= radius:
                out.append((i, j, d))
    return out


def _as_triples(result):
    return list(zip(*(a.tolist() for a in result)))


def _clustered_hashes(rng, n, radius):
    """Random hashes plus copies with 0..radius+2 flipped bits (some just outside the radius)."""
    base = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    copies = base[rng.integers(0, n, n // 2)].copy()
    for k in range(len(copies)):
        for bit in rng.choice(64, rng.integers(0, radius + 3), replace=False):
            copies[k] ^= np.uint64(1) << np.uint64(bit)
    return np.concatenate([base, copies])


@pytest.mark.parametrize("radius", [0, 1, 2, 3, 5, 8, 10, 12])
def test_near_pairs_equals_python_oracle(radius):
    rng = np.random.default_rng(radius)
    hashes = _clustered_hashes(rng, 300, radius)
    expected = _python_pairs(hashes, radius)
    assert _as_triples(near_pairs(hashes, radius)) == expected
    assert _as_triples(brute_force_pairs(hashes, radius)) == expected
    assert any(d == radius for _, _, d in expected) or radius == 0  # the boundary is exercised


@pytest.mark.parametrize("n_bands", [3, 4, 5, 7, 9, 16, 64])
def test_every_band_count_is_exact(n_bands):
    rng = np.random.default_rng(n_bands)
    hashes = _clustered_hashes(rng, 200, 8)
    assert _as_triples(near_pairs(hashes, 8, n_bands=n_bands)) == _python_pairs(hashes, 8)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=40),
    flips=st.lists(st.integers(0, 63), max_size=12),
    radius=st.integers(0, 16),
)
def test_near_pairs_property(values, flips, radius):
    # duplicates and bit-flipped copies make close pairs likely
    extra = []
    for k, bit in enumerate(flips):
        if values:
            extra.append(values[k % len(values)] ^ (1 << bit))
    hashes = np.array(values + extra + values[:3], dtype=np.uint64)
    assert _as_triples(near_pairs(hashes, radius)) == _python_pairs(hashes, radius)


def test_exact_duplicates_in_large_groups():
    hashes = np.array([7] * 5 + [9] * 3 + [1], np.uint64)
    got = _as_triples(near_pairs(hashes, 0))
    assert got == _python_pairs(hashes, 0)
    assert len(got) == 10 + 3


def test_probe_radii_cover_the_radius():
    # the pigeonhole bound: the cheapest way to miss every probe costs radius + 1 bits
    for radius in range(0, 20):
        for m in range(3, 12):
            radii = band_probe_radii(radius, m)
            assert sum(r + 1 for r in radii) == radius + 1


def test_choose_n_bands_and_bad_radius():
    assert choose_n_bands(100_000, 0) == 1
    assert 3 <= choose_n_bands(100_000, 8) <= 64
    with pytest.raises(ValueError, match="radius"):
        near_pairs(np.zeros(3, np.uint64), -1)
    assert all(len(a) == 0 for a in near_pairs(np.zeros(1, np.uint64), 3))


@pytest.mark.parametrize("radius", [0, 3, 8, 12])
def test_query_pairs_equals_python_oracle(radius):
    from iou_audit.audits.splits.index import query_pairs

    rng = np.random.default_rng(10 + radius)
    database = _clustered_hashes(rng, 300, radius)
    queries = database[rng.integers(0, len(database), 80)].copy()
    for k in range(len(queries)):
        for bit in rng.choice(64, rng.integers(0, radius + 3), replace=False):
            queries[k] ^= np.uint64(1) << np.uint64(bit)
    expected = [(q, d, bin(int(a) ^ int(b)).count("1")) for q, a in enumerate(queries)
                for d, b in enumerate(database) if bin(int(a) ^ int(b)).count("1") <= radius]
    assert _as_triples(query_pairs(queries, database, radius)) == expected
    assert expected

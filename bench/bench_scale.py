"""Scale: wall time and peak memory of each audit at 25k, 50k and 100k samples (6 million labels at 100k).

Dataset (seeded, synthetic; built once and cached in ``--db-dir``, so later runs start at once):
N samples, each with
- ``a``: 15 boxes (5 classes, skewed 50/20/15/10/5 %), sizes 3-15 % of the image, ~5 % of them shifted
  copies of the previous box (what the duplicate audit finds);
- ``b``, ``c``: SIMULATED annotators drawn from ``a`` with ``iou_audit.simulate.annotators`` default
  noise (misses 8 %, class swaps 5 %, edge jitter 3 %, sloppy edges 5 %, 0.25 invented boxes per
  sample); fast enough on 1.5M labels (a few seconds per field);
- ``pred``: a numpy detector model (as ``bench_predictions``): 13 of the 15 labels of ``a`` with the
  box moved by N(0, 0.1) of its size and scaled by U(0.85, 1.15) per side, class kept (90 %) or
  uniform (10 %), plus 4 random boxes; confidences U(0.05, 1);
- ``split``: train/val/test with probabilities 0.7/0.2/0.1; ``metadata`` 640 x 480;
- ``filepath``: a 32 x 32 grayscale PNG of seeded noise in ``--image-dir`` (written once, 100k files,
  ~1 KB each; sample i of every size uses file i, so the sizes share them), every 1,000th sample
  reuses the previous sample's file (exact leaks for the split audit to find). The files stand in
  for photos only for hashing (the split audit reads every file: SHA-256, pHash, window and symmetry
  hashes); the labels' pixel sizes come from the 640 x 480 metadata.
About 15 + 14.8 + 14.8 + 17 = 62 labels per sample: 6.2 million labels at 100k. The documents are
inserted raw with pymongo ``insert_many`` in the layout FiftyOne writes (checked against a dataset
built with ``add_samples`` at build time: same keys, same nesting), after declaring the fields with
``add_sample_field(..., embedded_doc_type=fo.Detections)``; one dataset per size, the smaller sizes
being prefixes of the larger (chunks of 5,000 samples seeded by chunk number).

Measured, each audit at each size in its own subprocess (fresh interpreter, so peak RSS is that
audit's), after an untimed warm-up on the first 200 samples (numba cache load / JIT, FiftyOne
imports) with ``save=False``:
- ``duplicates``: ``audit_duplicates(ds, "a")``
- ``agreement``:  ``audit_agreement(ds, ["a", "b", "c"])`` (incl. inter-annotator mAP)
- ``predictions``: ``audit_predictions(ds, "pred", "a")`` (incl. COCO AP@[.5:.95] and TIDE)
- ``splits``: ``audit_splits(ds, split_field="split", label_field="a")`` (hashes every file: no cache)
each including writing its results (attributes, tags, sample fields, saved views, run). Reported:
wall time, time per 1k samples, peak RSS of the Python process (``VmHWM`` of /proc/self/status: the
high-water mark of the child's own address space; ``ru_maxrss`` would include the parent's RSS at
fork, which Linux carries over exec) and its peak before the audit (imports + warm-up), and the mongod's peak RSS sampled every 0.2 s (a separate process,
not counted in the target); also CPU seconds (user + system) of the Python process and of mongod
during the audit, and their per-sample ratio to the smallest size ("CPU x"): on a shared machine
wall time swings with the other load, CPU time much less, so CPU x tells real non-linearity apart. The run's results are deleted afterwards (untimed) so the cached
database stays clean.

Targets: Python peak RSS < 2 GB at 100k for every audit; time per sample at 100k within 15 % of
that at 25k.

    python bench/bench_scale.py                     # 25k / 50k / 100k, every audit (builds the cache once)
    python bench/bench_scale.py --quick             # 2.5k / 5k / 10k: checks that it runs
    python bench/bench_scale.py --audits agreement --sizes 100000 --repeat 3
    python bench/bench_scale.py --db-dir /tmp/x --image-dir /tmp/y   # cache elsewhere; --rebuild to rebuild
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "iou-audit-bench-scale")
BUILD_VERSION = 1  # bump when the generator changes: cached datasets of another version are rebuilt
CHUNK = 5000
CLASSES = np.array(["a", "b", "c", "d", "e"], dtype=object)
CLASS_P = [0.5, 0.2, 0.15, 0.1, 0.05]
N_BOXES = 15
IMG_SIDE = 32
AUDITS = ("duplicates", "agreement", "predictions", "splits")
WARMUP = 200
GB = 1 << 30


# --------------------------------------------------------------------------------------- images
def image_path(image_dir: str, i: int) -> str:
    return os.path.join(image_dir, f"{i // 10000:03d}", f"{i:07d}.png")


def ensure_images(image_dir: str, n: int) -> None:
    """32 x 32 seeded noise PNGs 0..n-1 (written once; existing files are kept)."""
    from PIL import Image

    marker = os.path.join(image_dir, f"complete_{n}")
    if os.path.exists(marker):
        return
    t = time.perf_counter()
    for i in range(n):
        path = image_path(image_dir, i)
        if i % 10000 == 0:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            px = np.random.default_rng([7, i]).integers(0, 256, (IMG_SIDE, IMG_SIDE), dtype=np.uint8)
            Image.fromarray(px, "L").save(path)
    open(marker, "w").close()
    print(f"images: {n} files in {image_dir} ({time.perf_counter() - t:.1f} s)", flush=True)


# --------------------------------------------------------------------------------------- labels
def chunk_labels(c: int, n: int) -> dict:
    """Labels of samples [c * CHUNK, c * CHUNK + n): {field: (sample_index, xyxy boxes, labels, conf)}."""
    from iou_audit.simulate.annotators import AnnotatorNoise, simulate_annotator

    rng = np.random.default_rng([11, c])
    m = n * N_BOXES
    wh = rng.uniform(0.03, 0.15, (m, 2))
    xy = rng.uniform(0, 1, (m, 2)) * (1 - wh)
    labels = rng.choice(CLASSES, m, p=CLASS_P)
    copy = rng.random(m) < 0.05
    copy[::N_BOXES] = False  # the first box of a sample is never a copy
    src = np.flatnonzero(copy) - 1
    xy[copy] = np.clip(xy[src] + rng.uniform(-0.004, 0.004, (len(src), 2)), 0, 1 - wh[src])
    wh[copy] = wh[src]
    labels[copy] = labels[src]
    boxes = np.c_[xy, xy + wh]
    sample = np.repeat(np.arange(n), N_BOXES)
    offsets = np.arange(n + 1) * N_BOXES
    out = {"a": (sample, boxes, labels, None)}
    for k, name in enumerate(("b", "c")):
        sim = simulate_annotator(offsets, boxes, labels, AnnotatorNoise(), seed=1000 * c + k, classes=CLASSES)
        out[name] = (sim["sample_index"], sim["box"], sim["label"], None)
    # detector: 13 jittered copies of the sample's labels + 4 random boxes
    pick = np.argsort(rng.random((n, N_BOXES)), axis=1)[:, :13] + offsets[:-1, None]
    pick = pick.ravel()
    pwh = wh[pick] * rng.uniform(0.85, 1.15, (len(pick), 2))
    pxy = xy[pick] + rng.normal(0, 0.1, (len(pick), 2)) * wh[pick]
    plab = np.where(rng.random(len(pick)) < 0.1, rng.choice(CLASSES, len(pick)), labels[pick])
    rwh = rng.uniform(0.03, 0.2, (n * 4, 2))
    rxy = rng.uniform(0, 1, (n * 4, 2)) * (1 - rwh)
    psample = np.r_[np.repeat(np.arange(n), 13), np.repeat(np.arange(n), 4)]
    pb = np.r_[np.c_[pxy, pxy + pwh], np.c_[rxy, rxy + rwh]]
    order = np.argsort(psample, kind="stable")
    conf = rng.uniform(0.05, 1.0, len(order))
    out["pred"] = (psample[order], np.clip(pb[order], 0, 1), np.r_[plab, rng.choice(CLASSES, n * 4)][order], conf)
    return out


def _detections(sample_index, boxes, labels, conf, n):
    from bson import ObjectId

    bounds = np.searchsorted(sample_index, np.arange(n + 1))
    xywh = np.c_[boxes[:, :2], boxes[:, 2:] - boxes[:, :2]].tolist()
    labels = [str(x) for x in labels]
    conf = conf.tolist() if conf is not None else None
    dets = []
    for i in range(len(labels)):
        d = {"_id": ObjectId(), "_cls": "Detection", "tags": [], "attributes": {}, "label": labels[i],
             "bounding_box": xywh[i]}
        if conf is not None:
            d["confidence"] = conf[i]
        dets.append(d)
    return [{"_cls": "Detections", "detections": dets[bounds[s]:bounds[s + 1]]} for s in range(n)]


def build_dataset(name: str, n_samples: int, image_dir: str):
    """A persistent dataset of n_samples built with raw insert_many (see the module docstring)."""
    import datetime

    import fiftyone as fo
    from bson import ObjectId

    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    t0 = time.perf_counter()
    ds = fo.Dataset(name, persistent=True)
    ds.media_type = "image"
    ds.add_sample_field("split", fo.StringField)
    for f in ("a", "b", "c", "pred"):
        ds.add_sample_field(f, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    coll = ds._sample_collection
    dataset_id = ds._doc.id
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)
    n_labels = 0
    for c in range(0, (n_samples + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        n = min(CHUNK, n_samples - lo)
        fields = {f: _detections(*v, n) for f, v in chunk_labels(c, n).items()}
        n_labels += sum(len(d["detections"]) for v in fields.values() for d in v)
        rng = np.random.default_rng([13, c])
        split = rng.choice(np.array(["train", "val", "test"], dtype=object), n, p=[0.7, 0.2, 0.1])
        rand = (0.999 + 0.001 * rng.random(n)).tolist()
        docs = []
        for s in range(n):
            i = lo + s
            f_i = i - 1 if i % 1000 == 999 else i  # every 1,000th sample: the previous sample's file
            docs.append({"_id": ObjectId(), "filepath": image_path(image_dir, f_i), "tags": [],
                         "metadata": {"_cls": "ImageMetadata", "width": 640, "height": 480},
                         "created_at": now, "last_modified_at": now, "_media_type": "image",
                         "_rand": rand[s], "_dataset_id": dataset_id, "split": str(split[s]),
                         **{f: v[s] for f, v in fields.items()}})
        coll.insert_many(docs, ordered=False)
    ds.info = {"bench_scale_version": BUILD_VERSION, "n_samples": n_samples, "n_labels": n_labels}
    ds.save()
    print(f"built {name}: {n_samples} samples, {n_labels} labels ({time.perf_counter() - t0:.1f} s)", flush=True)
    return ds


def check_layout(ds) -> None:
    """The raw documents have the keys and nesting FiftyOne writes itself (compared with add_samples)."""
    import fiftyone as fo

    ref = fo.Dataset()
    try:
        dets = fo.Detections(detections=[fo.Detection(label="a", bounding_box=[.1, .1, .2, .2], confidence=.5)])
        s = fo.Sample(filepath="/x.png", split="train", a=dets.copy(), b=dets.copy(), c=dets.copy(), pred=dets.copy())
        s["metadata"] = fo.ImageMetadata(width=640, height=480)
        ref.add_sample(s)
        want, got = ref._sample_collection.find_one(), ds._sample_collection.find_one()

        def shape(d):
            if isinstance(d, dict):
                return {k: shape(v) for k, v in d.items()}
            if isinstance(d, list):
                return [shape(d[0])] if d else []
            return type(d).__name__
        want_s, got_s = shape(want), shape(got)
        for f in ("a", "b", "c"):  # annotator labels have no confidence
            want_s[f]["detections"][0].pop("confidence")
        if want_s != got_s:
            raise AssertionError(f"raw layout differs from FiftyOne's:\n{want_s}\n{got_s}")
        if ds.get_field_schema().keys() != ref.get_field_schema().keys():
            raise AssertionError(f"schema differs: {ds.get_field_schema().keys()} vs {ref.get_field_schema().keys()}")
    finally:
        ref.delete()


def ensure_dataset(n: int, image_dir: str, rebuild: bool):
    import fiftyone as fo

    name = f"iou_audit_bench_scale_{n}"
    if not rebuild and fo.dataset_exists(name):
        ds = fo.load_dataset(name)
        if ds.info.get("bench_scale_version") == BUILD_VERSION and len(ds) == n:
            return ds
    ds = build_dataset(name, n, image_dir)
    check_layout(ds)
    return ds


# ----------------------------------------------------------------------------------------- child
def run_audit(audit: str, samples, save: bool = True):
    key = f"scale_{audit}"
    if audit == "duplicates":
        from iou_audit.audits.duplicates import audit_duplicates

        return audit_duplicates(samples, "a", audit_key=key, save=save)
    if audit == "agreement":
        from iou_audit.audits.agreement import audit_agreement

        return audit_agreement(samples, ["a", "b", "c"], audit_key=key, save=save)
    if audit == "predictions":
        from iou_audit.audits.predictions import audit_predictions

        return audit_predictions(samples, "pred", "a", audit_key=key, save=save)
    if audit == "splits":
        from iou_audit.audits.splits import audit_splits

        return audit_splits(samples, split_field="split", label_field="a", audit_key=key, save=save)
    raise ValueError(audit)


def _mongod():
    import psutil

    db_dir = os.environ.get("FIFTYONE_DATABASE_DIR", "")
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            if "mongod" in (p.info["name"] or "") and db_dir and db_dir in " ".join(p.info["cmdline"] or []):
                return p
        except Exception:
            pass
    return None


def peak_rss() -> int:
    """Peak RSS of this process image in bytes: ``VmHWM`` (reset at exec). ``ru_maxrss`` is not used
    because Linux carries it over exec from the forking parent, so a child started by a parent holding
    0.8 GB would report >= 0.8 GB whatever it did."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu(proc) -> float:
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except Exception:
        return float("nan")


def child(audit: str, name: str) -> None:
    import resource
    import threading

    import fiftyone as fo

    from iou_audit.results import delete_audit, list_audits

    ds = fo.load_dataset(name)
    key = f"scale_{audit}"
    if key in list_audits(ds):  # left over by an interrupted run
        delete_audit(ds, key)
    run_audit(audit, ds.limit(WARMUP), save=False)  # warm-up, untimed
    rss_before = peak_rss()
    mongod, mongod_peak, stop = _mongod(), [0], threading.Event()

    def sample_mongod():
        while not stop.is_set():
            try:
                mongod_peak[0] = max(mongod_peak[0], mongod.memory_info().rss)
            except Exception:
                return
            stop.wait(0.2)

    if mongod is not None:
        threading.Thread(target=sample_mongod, daemon=True).start()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    mcpu0 = _cpu(mongod)
    t = time.perf_counter()
    result = run_audit(audit, ds)
    wall = time.perf_counter() - t
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    mongod_cpu = _cpu(mongod) - mcpu0
    peak = peak_rss()
    counts = {k: int(v) for k, v in result.counts().items()} if hasattr(result, "counts") else {}
    t = time.perf_counter()
    delete_audit(ds, key)
    print("RESULT " + json.dumps({"audit": audit, "n": len(ds), "wall": wall, "cpu": cpu, "mongod_cpu": mongod_cpu,
                                  "peak_rss": peak,
                                  "rss_before": rss_before, "mongod_peak": mongod_peak[0],
                                  "delete_s": time.perf_counter() - t, "findings": counts}), flush=True)


# ---------------------------------------------------------------------------------------- parent
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25000,50000,100000", help="comma-separated sample counts")
    parser.add_argument("--quick", action="store_true", help="2,500 / 5,000 / 10,000 samples: checks that it runs")
    parser.add_argument("--audits", default=",".join(AUDITS), help=f"comma-separated, of {','.join(AUDITS)}")
    parser.add_argument("--repeat", type=int, default=1, help="runs per audit and size (median time, max RSS)")
    parser.add_argument("--db-dir", default=os.path.join(CACHE, "db"), help="FiftyOne database dir (the cache)")
    parser.add_argument("--image-dir", default=os.path.join(CACHE, "images"), help="where the PNGs are written")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached datasets")
    parser.add_argument("--out", help="append each measured row as a JSON line to this file")
    parser.add_argument("--child", nargs=2, metavar=("AUDIT", "DATASET"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ["FIFTYONE_DATABASE_DIR"] = os.path.abspath(args.db_dir)
    if args.child:
        child(*args.child)
        return 0
    sizes = [2500, 5000, 10000] if args.quick else [int(s) for s in args.sizes.split(",")]
    audits = [a for a in args.audits.split(",") if a]
    unknown = set(audits) - set(AUDITS)
    if unknown:
        parser.error(f"unknown audits {sorted(unknown)}")
    os.makedirs(args.db_dir, exist_ok=True)
    ensure_images(args.image_dir, max(sizes))
    t0 = time.perf_counter()
    names = {}
    import fiftyone as fo  # noqa: F401  (after FIFTYONE_DATABASE_DIR is set)

    for n in sizes:
        ds = ensure_dataset(n, args.image_dir, args.rebuild)
        names[n] = ds.name
        print(f"dataset {ds.name}: {len(ds)} samples, {ds.info['n_labels']} labels", flush=True)
    print(f"datasets ready in {time.perf_counter() - t0:.1f} s; db {args.db_dir}", flush=True)

    rows = {}
    for audit in audits:
        for n in sizes:
            runs = []
            for _ in range(args.repeat):
                cmd = [sys.executable, os.path.abspath(__file__), "--db-dir", args.db_dir,
                       "--child", audit, names[n]]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                if proc.returncode or not line:
                    print(proc.stdout[-3000:], proc.stderr[-5000:], file=sys.stderr)
                    raise SystemExit(f"child {audit} {n} failed (rc {proc.returncode})")
                runs.append(json.loads(line[0][7:]))
            r = dict(runs[-1])
            r["wall"] = statistics.median(x["wall"] for x in runs)
            r["walls"] = [x["wall"] for x in runs]
            r["peak_rss"] = max(x["peak_rss"] for x in runs)
            r["mongod_peak"] = max(x["mongod_peak"] for x in runs)
            r["cpu"] = statistics.median(x["cpu"] for x in runs)
            r["mongod_cpu"] = statistics.median(x["mongod_cpu"] for x in runs)
            rows[audit, n] = r
            if args.out:
                with open(args.out, "a") as fh:
                    fh.write(json.dumps(r) + "\n")
            print(f"{audit:12s} {n:>7d}: {r['wall']:7.2f} s  peak RSS {r['peak_rss'] / GB:.2f} GB  "
                  f"(runs {', '.join(f'{w:.2f}' for w in r['walls'])}; findings {r['findings']})", flush=True)

    lo, hi = min(sizes), max(sizes)
    print(f"\n{'audit':12s} {'samples':>8s} {'wall s':>8s} {'s / 1k':>7s} {'x per-sample @' + str(lo):>16s} "
          f"{'peak RSS GB':>12s} {'RSS before':>11s} {'mongod GB':>10s} {'CPU s':>7s} {'mongod CPU s':>12s} {'CPU x':>6s}")
    verdicts = []
    for audit in audits:
        base = rows[audit, lo]["wall"] / lo
        cbase = (rows[audit, lo]["cpu"] + rows[audit, lo]["mongod_cpu"]) / lo
        for n in sizes:
            r = rows[audit, n]
            print(f"{audit:12s} {n:8d} {r['wall']:8.2f} {r['wall'] / n * 1000:7.3f} {r['wall'] / n / base:16.3f} "
                  f"{r['peak_rss'] / GB:12.2f} {r['rss_before'] / GB:11.2f} {r['mongod_peak'] / GB:10.2f} "
                  f"{r['cpu']:7.1f} {r['mongod_cpu']:12.1f} {(r['cpu'] + r['mongod_cpu']) / n / cbase:6.3f}")
        ratio = rows[audit, hi]["wall"] / hi / base
        rss = rows[audit, hi]["peak_rss"] / GB
        verdicts.append(f"{audit}: time per sample at {hi} = {ratio:.3f} x at {lo} "
                        f"({'MET' if ratio <= 1.15 else 'NOT MET'}, target <= 1.15); peak RSS {rss:.2f} GB "
                        f"({'MET' if rss < 2 else 'NOT MET'}, target < 2 GB)")
    print("\n" + "\n".join(verdicts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

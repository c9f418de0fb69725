"""Benchmark of the neighbour index: exact search (IndexFlatIP) against IVF (IndexIVFFlat), as the index stage
builds them (inference/vector_index.py `build_index`), on synthetic unit-length embeddings.

Why: `twingan neighbors` searches a domain's every crop. Exact search is a matrix product over all of them,
IVF scans `nprobe` of `nlist` k-means lists; the question is from which size IVF pays for its training and
its lost neighbours (index.kind: auto switches at index.ivf_from_rows).

For each --rows x --dims x --data:
  data       random: Gaussian vectors, normalised (no structure: the worst case for IVF, every point nearly
             equidistant); clustered: rows / 20 random centres (groups of about 20 look-alikes) plus
             Gaussian noise of norm --spread (1.5: a vector's nearest neighbours at cosine 0.3-0.35,
             unrelated ones at 0), normalised: closer to embeddings of faces than structureless noise.
             Queries are --queries further vectors drawn the same way, not in the index (a new photo).
  exact      build (add) seconds; throughput of one search call with every query (queries/s; FAISS runs
             it as a BLAS matrix product on all cores); latency of one query alone (median of 50, ms;
             what `twingan neighbors` does for a photo's face).
  ivf        nlist lists (--nlist, 0: 4 sqrt(rows), as the stage), k-means trained on at most
             --train-per-list vectors per list, nprobe --nprobe; train and add seconds, the same
             throughput and latency, and recall@k: the share of exact search's k nearest that IVF finds.
  ratio      IVF queries/s over exact queries/s, batch and single, measured in the same run.

    .venv/bin/python benchmarks/index.py                                    # 20k and 200k, 1024-d and 4096-d
    .venv/bin/python benchmarks/index.py --rows 20000 --dims 1024 --data clustered --nprobe 8 16 32

Memory: rows x dims x 4 bytes three times over (the vectors, the exact index, the IVF index): 10 GB for
200k x 4096. Threads: FAISS's OpenMP default (all cores).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from inference.vector_index import build_index, lists_for  # noqa: E402


def unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_data(
    kind: str, rows: int, queries: int, dim: int, spread: float = 1.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    total = rows + queries
    if kind == "random":
        data = rng.standard_normal((total, dim), dtype=np.float32)
    else:
        centres = unit(rng.standard_normal((max(1, rows // 20), dim), dtype=np.float32))
        data = rng.standard_normal((total, dim), dtype=np.float32)
        data *= np.float32(spread / math.sqrt(dim))
        data += centres[rng.integers(0, len(centres), total)]
    unit(data)
    return data[:rows], np.ascontiguousarray(data[rows:])


def throughput(index, queries: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    index.search(queries[:10], k)  # warm-up
    start = time.perf_counter()
    positions = index.search(queries, k)[1]
    return len(queries) / (time.perf_counter() - start), positions


def latency_ms(index, queries: np.ndarray, k: int, count: int = 50) -> float:
    times = []
    for row in queries[:count]:
        start = time.perf_counter()
        index.search(row[None], k)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, truth, strict=True)) / (len(truth) * k)


def run(rows: int, dim: int, kind: str, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    vectors, queries = make_data(kind, rows, args.queries, dim, args.spread)
    made = time.perf_counter() - start
    start = time.perf_counter()
    exact, _ = build_index(vectors, "exact")
    exact_build = time.perf_counter() - start
    exact_qps, truth = throughput(exact, queries, args.k)
    exact_ms = latency_ms(exact, queries, args.k)
    del exact
    print(f"{rows:>7} x {dim:<5} {kind:<9} data {made:5.1f} s | exact: add {exact_build:5.2f} s, "
          f"{exact_qps:8.1f} q/s, {exact_ms:7.2f} ms/query", flush=True)  # fmt: skip
    for nlist in args.nlist:
        lists = lists_for(rows, nlist)
        start = time.perf_counter()
        ivf, built = build_index(vectors, "ivf", nlist=nlist, nprobe=max(args.nprobe),
                                 train_per_list=args.train_per_list, seed=0)  # fmt: skip
        ivf_build = time.perf_counter() - start
        for nprobe in args.nprobe:
            ivf.nprobe = min(nprobe, lists)
            ivf_qps, found = throughput(ivf, queries, args.k)
            ivf_ms = latency_ms(ivf, queries, args.k)
            print(f"{'':>25} ivf nlist {built['nlist']:>5} nprobe {ivf.nprobe:>3}: train+add {ivf_build:6.1f} s, "
                  f"{ivf_qps:8.1f} q/s ({ivf_qps / exact_qps:5.1f}x exact), {ivf_ms:6.2f} ms/query "
                  f"({exact_ms / ivf_ms:5.1f}x), recall@{args.k} {recall(found, truth):.3f}", flush=True)  # fmt: skip
        del ivf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[20000, 200000])
    parser.add_argument("--dims", type=int, nargs="+", default=[1024, 4096], help="1024: the demo model; 4096: 256x4x4")
    parser.add_argument("--data", nargs="+", choices=["random", "clustered"], default=["random", "clustered"])
    parser.add_argument("--spread", type=float, default=1.5, help="noise norm around the clustered data's centres")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--nlist", type=int, nargs="+", default=[0], help="0: 4 sqrt(rows), as the stage")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 64], help="index.nprobe: 64")
    parser.add_argument("--train-per-list", type=int, default=256, help="index.train_per_list")
    args = parser.parse_args()

    import faiss

    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}; k={args.k}, {args.queries} queries")  # fmt: skip
    for rows in args.rows:
        for dim in args.dims:
            for kind in args.data:
                run(rows, dim, kind, args)


if __name__ == "__main__":
    main()

"""The neighbour index on disk (`data/index/`): one FAISS index per domain and one table of who is where.

    data/index/<domain>.faiss   the domain's embeddings (inference/embeddings.py), exact or IVF
    data/index/ids.parquet      schema index_ids/1: domain, position in its index, face id, split, and the
                                pixel shard and row of the crop; its metadata records the model (encoder
                                digest, step, resolution), the embedding width and each index's kind

One index per domain rather than one with a domain column: every query asks for the nearest crops of ONE
domain ("the 8 closest anime faces"), so a shared index would need a filter per search, which an IVF index
applies only after choosing its lists (too few results when a domain is rare among them); per-domain
indexes also let a small domain stay exact while a large one is IVF, and recall is measured per domain.

Embeddings are unit vectors, so the inner-product metric is cosine similarity (score 1 = the same crop).
A flat index serialises to the same bytes for the same vectors; IVF k-means is seeded, so rebuilding the
same inputs gives the same files and DVC sees no change.

`build_domain_index` is the index stage's work for one domain (embed its crops, build, write and measure
its index); `cross_domain_agreement` measures how well searches across domains agree with searches with
the translations. torch and the model code are imported only there: searching needs neither.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import UserError
from core.params import IndexParams
from core.parquet import read_params, read_table
from core.schemas import INDEX_IDS

if TYPE_CHECKING:
    from training.data import DomainSplit
    from training.networks import TwinGAN

log = logging.getLogger("twingan.index")

IDS = "ids.parquet"
_REBUILD = "rebuild it with `dvc repro index` (or `twingan index`)"


class IndexFileError(UserError, ValueError):
    """The index folder is missing, incomplete, or was built with another model; the message names it."""


def index_file(domain: str) -> str:
    return f"{domain}.faiss"


# ------------------------------------------------------------------------------------------------ build


def choose_kind(kind: str, rows: int, ivf_from_rows: int) -> str:
    """`auto` -> `ivf` from `ivf_from_rows` rows on, `exact` below; otherwise what was asked."""
    if kind == "auto":
        return "ivf" if rows >= ivf_from_rows else "exact"
    return kind


def lists_for(rows: int, nlist: int) -> int:
    """The IVF list count: `nlist`, or 4 sqrt(rows) when 0; never more than rows / 39, the fewest training
    points per centroid FAISS's k-means accepts without warning."""
    wanted = nlist or round(4 * math.sqrt(rows))
    return max(1, min(wanted, rows // 39))


def build_index(
    vectors: np.ndarray,
    kind: str,
    *,
    nlist: int = 0,
    nprobe: int = 64,
    train_per_list: int = 256,
    seed: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """An inner-product FAISS index of `vectors` ((n, d) float32 unit rows, added in order: position i is
    row i) and what was built: {"kind", "rows", "nlist", "nprobe"}."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    rows, dim = vectors.shape
    if kind == "exact":
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return index, {"kind": "exact", "rows": rows, "nlist": None, "nprobe": None}
    if kind != "ivf":
        raise ValueError(f"index kind {kind!r}: not one of exact, ivf")
    if rows < 1:
        raise ValueError("an IVF index needs at least one vector to train on")
    lists = lists_for(rows, nlist)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed  # k-means initialisation and its subsample: the same inputs give the same index
    index.cp.max_points_per_centroid = train_per_list
    index.cp.min_points_per_centroid = 1
    index.cp.spherical = True  # unit-length centroids: the right ones for cosine similarity
    index.train(vectors)
    index.add(vectors)
    index.nprobe = min(nprobe, lists)  # stored in the file; a search may override it
    return index, {"kind": "ivf", "rows": rows, "nlist": lists, "nprobe": int(index.nprobe)}


def write_index(index: Any, path: Path) -> None:
    """`faiss.write_index` into `path` (the caller builds in a staging folder that is renamed whole)."""
    import faiss

    faiss.write_index(index, str(path))


def recall_at_k(index: Any, vectors: np.ndarray, k: int, queries: int, seed: int = 0) -> float | None:
    """Mean share of the exact k nearest OTHER vectors that `index` finds, with `queries` of the indexed
    vectors (drawn with `seed`) as queries; the exact answer by brute force over all vectors. Each query's
    own position is left out of both lists (it would count as a free hit). None with fewer than 2 vectors."""
    rows = len(vectors)
    k = min(k, rows - 1)
    if k < 1:
        return None
    pick = np.sort(np.random.default_rng(seed).choice(rows, size=min(queries, rows), replace=False))
    query = np.ascontiguousarray(vectors[pick])
    exact = exact_search(vectors, query, k + 1)[1]
    found = index.search(query, k + 1)[1]
    hits = 0
    for own, truth, got in zip(pick.tolist(), exact, found, strict=True):
        truth_k = [p for p in truth.tolist() if p != own][:k]
        got_k = [p for p in got.tolist() if p != own and p >= 0][:k]
        hits += len(set(truth_k) & set(got_k))
    return hits / (len(pick) * k)


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner products by brute force in NumPy, in blocks of queries: (scores, positions), best first.
    The reference that the FAISS indexes are checked against."""
    scores = np.empty((len(queries), k), dtype=np.float32)
    positions = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), block):
        sims = queries[start : start + block] @ vectors.T
        if k < sims.shape[1]:
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:
            top = np.tile(np.arange(sims.shape[1]), (len(sims), 1))
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        positions[start : start + block] = np.take_along_axis(top, order, axis=1)
        scores[start : start + block] = np.take_along_axis(top_sims, order, axis=1)
    return scores, positions


# ------------------------------------------------------------------------------------------ one domain


@dataclass(frozen=True)
class DomainIndex:
    """One domain's index, as `build_domain_index` wrote it."""

    summary: dict[str, Any]  # kind, rows, nlist, nprobe, file, splits (rows each) and, for IVF, recall_at_<k>
    vectors: np.ndarray  # (rows, d) float32 unit rows: row i is position i of the index
    ids: list[dict[str, Any]]  # ids.parquet rows of the domain, positions 0 to rows - 1
    seconds: dict[str, float]  # embed, build and (IVF only) recall


def build_domain_index(
    model: TwinGAN,
    folder: Path,
    domain: str,
    splits: Sequence[str],
    settings: IndexParams,
    *,
    batch_size: int,
    out: Path,
) -> DomainIndex:
    """The crops of `splits` of the dataset folder of `domain` embedded by `model` (in that order), indexed
    by `settings` (`kind`, `nlist`, `nprobe`, `train_per_list`, `seed`) into `out`/<domain>.faiss, and an IVF
    index's recall@`recall_k` against exact search measured."""
    from inference.embeddings import embed_split
    from training.data import DomainSplit

    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    parts, vectors_of = [], []
    for split in splits:
        part = DomainSplit(folder, split, name=domain)
        parts.append(part)
        vectors_of.append(embed_split(model, part, domain, batch_size=batch_size))
    vectors = np.concatenate(vectors_of) if len(vectors_of) > 1 else vectors_of[0]
    seconds["embed"] = time.perf_counter() - tick

    tick = time.perf_counter()
    kind = choose_kind(settings.kind, len(vectors), settings.ivf_from_rows)
    index, summary = build_index(vectors, kind, nlist=settings.nlist, nprobe=settings.nprobe,
                                 train_per_list=settings.train_per_list, seed=settings.seed)  # fmt: skip
    write_index(index, out / index_file(domain))
    seconds["build"] = time.perf_counter() - tick
    summary.update(file=index_file(domain), splits={p.split: len(p) for p in parts})
    if kind == "ivf":
        tick = time.perf_counter()
        recall = recall_at_k(index, vectors, settings.recall_k, settings.recall_queries, settings.seed)
        summary[f"recall_at_{settings.recall_k}"] = None if recall is None else round(recall, 4)
        seconds["recall"] = time.perf_counter() - tick
    return DomainIndex(summary, vectors, split_ids_rows(domain, parts), seconds)


def split_ids_rows(domain: str, parts: Sequence[DomainSplit]) -> list[dict[str, Any]]:
    """ids.parquet rows of the splits' crops, added to the index in this order from position 0."""
    ids: list[dict[str, Any]] = []
    position = 0
    for part in parts:
        places = [part.groups[g] for g in part.group.tolist()]
        shards = [group.shard.name for group in places]
        shard_rows = [group.first_row + o for group, o in zip(places, part.offset.tolist(), strict=True)]
        ids += ids_rows(domain, part.face_ids, [part.split] * len(part), shards, shard_rows, start=position)
        position += len(part)
    return ids


def agreement_sample(
    vectors: np.ndarray, ids: Sequence[Mapping[str, Any]], datasets: Path, domain: str, count: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A seeded sample of `count` of the domain's indexed crops (`ids`: its rows, `vectors`: its embeddings, in
    position order): their embeddings and pixels, for `cross_domain_agreement`."""
    pick = np.sort(rng.choice(len(ids), size=min(count, len(ids)), replace=False))
    places = [(ids[i]["shard"], ids[i]["shard_row"], ids[i]["face_id"]) for i in pick.tolist()]
    return vectors[pick].copy(), read_crops(datasets, domain, places)


def cross_domain_agreement(
    model: TwinGAN,
    folder: Path,
    built: Mapping[str, Mapping[str, Any]],
    samples: Mapping[str, tuple[np.ndarray, np.ndarray]],
    k: int,
) -> dict[str, dict[str, float | int]]:
    """For each ordered pair A -> B, on a sample of A's crops x (the indexes in `folder`, `built` their
    summaries):
    - cosine: mean similarity of x's embedding (encoded as A) and of its translation G_B(x) (encoded as B);
      the semantic loss trains this towards 1;
    - overlap_at_k: mean share of B's k nearest crops that searching with x and searching with G_B(x) have
      in common: 1 when a cross-domain search finds what a search with the translation finds;
    - chance: the overlap two random sets of k of B's crops would have (k / rows of B), for comparison.
    """
    import faiss
    import torch

    from inference.embeddings import embed_images
    from training.data import to_images

    out: dict[str, dict[str, float | int]] = {}
    device = next(model.parameters()).device
    with torch.inference_mode():
        for target in built:
            index = faiss.read_index(str(folder / built[target]["file"]))
            kk = min(k, index.ntotal)
            for source, (queries, crops) in samples.items():
                if source == target or not len(queries):
                    continue
                images = to_images(crops, model.config.resolution).contiguous().to(device)
                translated = model.translate(images, source, target).clamp(-1, 1)
                translated_queries = embed_images(model, translated, target)
                direct = index.search(np.ascontiguousarray(queries), kk)[1]
                via = index.search(translated_queries, kk)[1]
                overlap = np.mean(
                    [len(set(a.tolist()) & set(b.tolist())) / kk for a, b in zip(direct, via, strict=True)]
                )
                out[f"{source}->{target}"] = {
                    "samples": len(queries),
                    "k": kk,
                    "cosine": round(float(np.mean(np.sum(queries * translated_queries, axis=1))), 4),
                    "overlap_at_k": round(float(overlap), 4),
                    "chance": round(kk / index.ntotal, 4),
                }
    return out


# ------------------------------------------------------------------------------------------------- read


@dataclass(frozen=True)
class Hit:
    """One neighbour: where it is in the dataset, and its cosine similarity to the query."""

    domain: str
    rank: int  # 1 = nearest
    score: float
    face_id: str
    split: str
    shard: str
    shard_row: int


class NeighborIndex:
    """An index folder opened for searching; FAISS files are read on first use of their domain."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        ids_path = self.folder / IDS
        if not ids_path.is_file():
            what = "no such folder" if not self.folder.exists() else f"no {IDS} in it"
            raise IndexFileError(f"{self.folder}: {what}: no neighbour index; build it with `dvc repro index`")
        table = read_table(ids_path, INDEX_IDS)
        self.meta: dict[str, Any] = read_params(ids_path)
        if "model" not in self.meta or "domains" not in self.meta:
            raise IndexFileError(f"{ids_path}: its metadata does not name the model and domains; {_REBUILD}")
        columns = {name: np.asarray(table[name].to_pylist(), dtype=object) for name in table.column_names}
        self.rows: dict[str, dict[str, np.ndarray]] = {}
        for domain, info in self.meta["domains"].items():
            mine = np.flatnonzero(columns["domain"] == domain)
            mine = mine[np.argsort(columns["position"][mine].astype(np.int64), kind="stable")]
            part = {name: values[mine] for name, values in columns.items()}
            if len(mine) != info["rows"] or not np.array_equal(part["position"].astype(np.int64), np.arange(len(mine))):
                raise IndexFileError(
                    f"{ids_path}: {len(mine)} rows of {domain}, positions not 0..{info['rows'] - 1}; {_REBUILD}"
                )
            self.rows[domain] = part
        self._indexes: dict[str, Any] = {}

    @property
    def domains(self) -> tuple[str, ...]:
        """In the model's order (the metadata's JSON has sorted keys)."""
        order = [d for d in self.meta["model"].get("domains", []) if d in self.meta["domains"]]
        return tuple(order + sorted(set(self.meta["domains"]) - set(order)))

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    def size(self, domain: str) -> int:
        return int(self.meta["domains"][domain]["rows"])

    def datasets(self) -> Path:
        """The dataset folders the shards are in (recorded relative to the index folder)."""
        return (self.folder / self.meta.get("datasets", "../datasets")).resolve()

    def check_model(self, digest: str, step: int, model_path: Path | str) -> None:
        """Refuse to search with a model other than the one the index was built with."""
        built = self.meta["model"]
        if built.get("encoder_sha256") != digest:
            raise IndexFileError(
                f"{self.folder}: built with another model (encoder {str(built.get('encoder_sha256'))[:12]} at step "
                f"{built.get('step')}; {model_path} has encoder {digest[:12]} at step {step}): the neighbours would "
                f"be wrong; {_REBUILD}"
            )

    def index(self, domain: str) -> Any:
        if domain not in self._indexes:
            import faiss

            path = self.folder / self.meta["domains"][domain]["file"]
            if not path.is_file():
                raise IndexFileError(f"{path}: missing from the index folder; {_REBUILD}")
            index = faiss.read_index(str(path))
            if index.ntotal != self.size(domain) or index.d != self.dim:
                raise IndexFileError(
                    f"{path}: holds {index.ntotal} vectors of {index.d} values, {IDS} says "
                    f"{self.size(domain)} of {self.dim}; {_REBUILD}"
                )
            self._indexes[domain] = index
        return self._indexes[domain]

    def search(self, domain: str, queries: np.ndarray, k: int, *, nprobe: int | None = None) -> list[list[Hit]]:
        """The k nearest crops of `domain` for each query row, best first."""
        index = self.index(domain)
        if nprobe is not None and hasattr(index, "nprobe"):
            index.nprobe = nprobe
        scores, positions = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        part = self.rows[domain]
        return [
            [
                Hit(domain, rank + 1, float(score), str(part["face_id"][p]), str(part["split"][p]),
                    str(part["shard"][p]), int(part["shard_row"][p]))
                for rank, (score, p) in enumerate(zip(row_scores, row_positions, strict=True))
                if p >= 0  # an IVF search can come back short when its lists hold fewer than k vectors
            ]
            for row_scores, row_positions in zip(scores, positions, strict=True)
        ]  # fmt: skip


def relative_to(target: Path, start: Path) -> str:
    return os.path.relpath(target.resolve(), start.resolve())


def ids_rows(domain: str, face_ids: Sequence[str], splits: Sequence[str], shards: Sequence[str],
             shard_rows: Sequence[int], start: int = 0) -> list[dict[str, Any]]:  # fmt: skip
    """Rows of ids.parquet for vectors added in this order, from position `start`."""
    return [
        {"position": start + i, "face_id": f, "domain": domain, "split": s, "shard": sh, "shard_row": int(r)}
        for i, (f, s, sh, r) in enumerate(zip(face_ids, splits, shards, shard_rows, strict=True))
    ]


def describe(meta: Mapping[str, Any]) -> str:
    parts = [f"{d}: {info['rows']} {info['kind']}" for d, info in meta["domains"].items()]
    return ", ".join(parts)


# ------------------------------------------------------------------------------------------------ crops


def read_crops(datasets: Path, domain: str, places: Sequence[tuple[str, int, str]]) -> np.ndarray:
    """The crops at (shard, shard_row, face_id) of data/datasets/<domain>/, as (n, S, S, 3) uint8 at the
    dataset's stored size. Each row group is read once; a row holding another face (the dataset was rebuilt
    after the index) is an error naming the shard."""
    import pyarrow.parquet as pq

    from training.data import RowGroup, check_pixel_schema, manifest_image_size, read_row_group

    folder = Path(datasets) / domain
    groups: dict[str, tuple[list[RowGroup], int]] = {}
    cache: dict[tuple[str, int], tuple[list[str], np.ndarray]] = {}
    out: list[np.ndarray] = []
    for shard, shard_row, face_id in places:
        if shard not in groups:
            path = folder / shard
            if not path.is_file():
                raise IndexFileError(f"{path}: pixel shard named by the index is missing; {_REBUILD}")
            parquet = pq.ParquetFile(path)
            check_pixel_schema(path, parquet.schema_arrow)
            size = manifest_image_size(path, read_params(path))
            first, found = 0, []
            for g in range(parquet.metadata.num_row_groups):
                rows = parquet.metadata.row_group(g).num_rows
                found.append(RowGroup(path, g, rows, first))
                first += rows
            groups[shard] = (found, size)
        found, size = groups[shard]
        group = next((g for g in found if g.first_row <= shard_row < g.first_row + g.num_rows), None)
        if group is None:
            raise IndexFileError(f"{folder / shard}: has no row {shard_row}; the dataset changed; {_REBUILD}")
        key = (shard, group.index)
        if key not in cache:
            cache[key] = read_row_group(group, size)
        face_ids, images = cache[key]
        if face_ids[shard_row - group.first_row] != face_id:
            raise IndexFileError(
                f"{folder / shard}: row {shard_row} holds {face_ids[shard_row - group.first_row]}, the index says "
                f"{face_id}: the dataset was rebuilt after the index; {_REBUILD}"
            )
        out.append(images[shard_row - group.first_row].copy())
    sizes = {image.shape for image in out}
    if len(sizes) > 1:
        raise IndexFileError(f"{folder}: shards of different image sizes ({sorted(sizes)}); {_REBUILD}")
    return np.stack(out) if out else np.empty((0, 0, 0, 3), dtype=np.uint8)

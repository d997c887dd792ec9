"""``python -m bench [--quick] [--output FILE]``: the speed figures, each beside its baseline.

Everything is measured in this one run, on this machine: a throwaway MariaDB/MySQL server (``throwaway.mysql``),
the served model trained here on the shared fashion catalogue and run by ONNX Runtime (TensorFlow beside it
as the baseline), gunicorn serving the app on loopback.
"""
from __future__ import annotations

import argparse
import datetime
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
from sqlalchemy import func, select

from bench import decode_bench, ingest_bench, model_bench, ranking_bench, search_bench
from bench.databases import fresh_database, server_process
from bench.machine import Machine, this_machine
from bench.report import Row, at_least, at_most, markdown
from bench.served import ROOT, train_served_model
from catalogue.folder import CatalogueFile, list_catalogue, per_category
from config import DEFAULTS, Settings
from db.schema import Feature
from db.store import Store
from evaluation.tables import markdown_table
from images.decoding import decode_image
from model.card import onnx_path
from model.inference import default_threads, load_network
from model.network import KerasNetwork
from search.ann import AnnPolicy
from throwaway.mysql import mysql_server

SHARED = Path(os.environ.get("LOOKALIKE_SHARED_DIR") or ROOT.parent / "shared")
BATCH = DEFAULTS.batch_size  # the loader's default batch
BATCH_SIZES = (1, 8, 32, 64)
CLIENTS = 8


@dataclass(frozen=True)
class Sizes:
    categories: int  # 0 = all
    per_category: int  # catalogue images per category to ingest, 0 = all
    train_per_category: int
    per_image_images: int  # the per-image baseline runs on this many images (it is slow)
    queries: int
    baseline_queries: int
    load_seconds: float
    throughput_images: int
    ranking_vectors: int
    ranking_queries: int
    scaling: tuple[int, ...]
    ann_sizes: tuple[int, ...]


FULL = Sizes(0, 0, 25, 240, 150, 100, 45.0, 256, 1_000_000, 10, (10_000, 100_000, 1_000_000),
             (100_000, 1_000_000))
QUICK = Sizes(4, 40, 10, 24, 24, 12, 8.0, 64, 100_000, 3, (10_000, 100_000), (20_000, 100_000))


def _subset(files: list[CatalogueFile], sizes: Sizes) -> list[CatalogueFile]:
    categories = sorted({f.category for f in files})
    kept = set(categories[:sizes.categories] if sizes.categories else categories)
    return per_category(files, sizes.per_category, kept)


def _evenly(items: list, count: int) -> list:
    """``count`` items spread over the whole list (so every category is represented)."""
    return [items[i] for i in np.linspace(0, len(items) - 1, min(count, len(items))).astype(int)]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def run(sizes: Sizes, catalogue: Path, queries_dir: Path, work: Path, machine: Machine,
        say) -> tuple[list[Row], list[str]]:
    """Run every benchmark; returns the table's rows and the detail sections."""
    rows: list[Row] = []
    details: list[str] = []
    files = _subset(list_catalogue(catalogue), sizes)
    categories = {f.category for f in files}
    queries = [f.path.read_bytes() for f in list_catalogue(queries_dir) if f.category in categories]

    say(f"training the served model's head on {sizes.train_per_category} images per category")
    model_path = work / "model.keras"
    train_served_model(files, sizes.train_per_category, model_path, BATCH)
    keras_model = KerasNetwork.load(model_path, max(BATCH_SIZES))
    model = load_network(model_path, "onnx", batch_size=max(BATCH_SIZES))

    # 1. The bare model, on the served runtime and on TensorFlow.
    say("1. bare model throughput, ONNX Runtime and TensorFlow")
    flops = model_bench.graph_flops(keras_model)
    rates = model_bench.throughput(model, BATCH_SIZES, sizes.throughput_images)
    tf_rates = model_bench.throughput(keras_model, BATCH_SIZES, sizes.throughput_images)
    forward_one = model_bench.batch_one(model, repeats=30)
    tf_forward_one = model_bench.batch_one(keras_model, repeats=30)
    predict_one = model_bench.keras_predict_one(keras_model, repeats=20)
    for batch, rate in rates.items():
        share = rate * flops / machine.peak_flops
        rows.append(at_least(f"1. bare model (ONNX Runtime), batch {batch}",
                             f"{rate:.1f} img/s = {rate * flops / 1e9:.1f} GFLOP/s",
                             f"FP32 peak {machine.peak_flops / 1e9:.1f} GFLOP/s", share, 0.5, "≥ 50% of peak",
                             "MobileNetV2 is mostly depthwise and 1×1 convolutions, which move many bytes per FLOP, "
                             "so no CPU runtime keeps the FMA units busy on them; small batches also pay a fixed "
                             "cost per call, and the peak assumes both cores free while this machine is shared.")
                    if batch == BATCH else
                    Row(f"1. bare model (ONNX Runtime), batch {batch}",
                        f"{rate:.1f} img/s = {rate * flops / 1e9:.1f} GFLOP/s",
                        f"TensorFlow: {tf_rates[batch]:.1f} img/s", rate / tf_rates[batch]))
    rows.append(Row(f"1. ONNX Runtime against TensorFlow, batch {BATCH}", f"{rates[BATCH]:.1f} img/s",
                    f"TensorFlow tf.function: {tf_rates[BATCH]:.1f} img/s", rates[BATCH] / tf_rates[BATCH]))
    details.append(f"Model: MobileNetV2 at {model.input_size} px + head, {flops / 1e6:.1f} MFLOP per image "
                   "(TensorFlow profiler on the frozen graph, multiply-add = 2 FLOP). ONNX Runtime "
                   f"{onnxruntime.__version__}: graph exported by Keras, all graph optimisations, "
                   f"{default_threads()} intra-op threads, no spinning.\n\n"
                   + markdown_table(["forward pass, median", "ONNX Runtime (served)", "TensorFlow tf.function",
                                     "ratio"],
                                    [*((f"batch {b}", f"{rates[b]:.1f} img/s", f"{tf_rates[b]:.1f} img/s",
                                        f"{rates[b] / tf_rates[b]:.2f}×") for b in BATCH_SIZES),
                                     ("one image", _ms(forward_one), _ms(tf_forward_one),
                                      f"{tf_forward_one / forward_one:.2f}× faster"),
                                     ("one image, Keras Model.predict", "", _ms(predict_one), "")]))

    # 7. The upload path of a large phone photo.
    say("7. upload decode: 12 MP phone photos, reduced scale against a full decode")
    decode = decode_bench.upload_decode([f.path for f in _evenly(files, 5)], model.input_size,
                                        Settings().max_image_pixels)
    rows.append(at_most(f"7. upload decode of a {decode.megapixels:.0f} MP JPEG "
                        f"({decode.jpeg_bytes / 2**20:.1f} MB), reduced scale + resize", _ms(decode.reduced),
                        f"one forward pass (batch 1): {_ms(forward_one)}",
                        decode.reduced / forward_one, 1.0, "≤ 1× forward pass",
                        "the JPEG's entropy decoding reads every byte of the file whatever the scale; only the "
                        "inverse DCT and colour conversion shrink with it."))
    rows.append(Row("7. upload decode, against a full decode", _ms(decode.reduced),
                    f"every pixel decoded, then resized: {_ms(decode.full)}", decode.full / decode.reduced))

    with mysql_server() as server:
        # 2. Ingest.
        say(f"2. ingest {len(files)} images into MySQL")
        url = fresh_database(server, "bench_lookalike")
        network = load_network(model_path, "onnx", batch_size=BATCH)
        loader = ingest_bench.loader_rate(network, url, files, BATCH)
        looks = 1 + network.card.gallery_views  # forward passes a product takes: its photo and its views
        per_image_files = _evenly(files, sizes.per_image_images)
        say(f"   one predict + one INSERT per image on {len(per_image_files)} images")
        per_image = ingest_bench.per_image_baseline_rate(keras_model, fresh_database(server, "bench_per_image"),
                                                         per_image_files)
        rows.append(at_least(f"2. ingest {len(files)} JPEGs → MySQL (loader, batch {BATCH}), forward passes",
                             f"{loader:.1f} img/s × {looks} = {loader * looks:.1f} passes/s",
                             f"bare model, batch {BATCH}: {rates[BATCH]:.1f} img/s", loader * looks / rates[BATCH],
                             0.9, "≥ 0.9× bare batched model",
                             "JPEG decoding and resizing, the views, hashing, the writer thread and the MySQL server "
                             f"take CPU time from the network's own threads on {machine.cores} cores, although the "
                             "stages overlap."))
        rows.append(at_least("2. ingest, against one predict + one INSERT per image", f"{loader:.1f} img/s",
                             f"Keras predict + INSERT + commit per image, on {len(per_image_files)} images: "
                             f"{per_image:.1f} img/s", loader / per_image, 10.0, "≥ 10×",
                             f"a product takes {looks} forward passes here (its photo and {looks - 1} views, "
                             "`model.gallery`) where the per-image way takes one, and both are bound by the same "
                             f"network: the per-image way costs one Keras predict ({_ms(predict_one)}) per image, so "
                             "a loader at the bare model's throughput would beat it by about that × the throughput ÷ "
                             f"{looks} = {predict_one * rates[BATCH] / looks:.1f}× here. Per forward pass it beats it "
                             f"by {loader * looks / per_image:.1f}×."))

        # 3, 5, 6. Serving, with the README's production command.
        store = Store.from_url(url)
        database = server_process(url)
        with search_bench.serving(url, model_path, work, workers=1, threads=CLIENTS) as served:
            say("3. search latency over HTTP")
            search_bench.warm_up(served, _evenly(queries, 4 * len(categories)))
            timed = _evenly(queries, sizes.queries)
            latency = search_bench.sequential(served, timed, database)
            say("   Keras predict + SELECT with BLOBs per query")
            baseline = [search_bench.per_query_baseline(keras_model, store, image)
                        for image in timed[:sizes.baseline_queries]]
            p50 = statistics.median(latency.seconds)
            baseline_p50 = statistics.median(t[0] for t in baseline)
            retrieval = statistics.median(latency.retrieval_seconds)
            baseline_retrieval = statistics.median(t[1] for t in baseline)
            rows.append(at_most("3. search p50 over HTTP (upload → JSON top 30)", _ms(p50),
                                f"one bare forward pass (batch 1): {_ms(forward_one)}", p50 / forward_one, 1.25,
                                "≤ 1.25× forward pass",
                                f"{_ms(p50 - forward_one)} above the forward pass go to HTTP and multipart parsing, "
                                "JPEG decode and resize, preprocessing, the revision query, the reviewer trace (a "
                                "stored-vector query and a thumbnail) and JSON; the retrieval itself is "
                                f"{_ms(retrieval)}. "
                                "With a forward pass this short, those fixed costs weigh more."))
            rows.append(Row("3. search p95 over HTTP", _ms(_p95(latency.seconds))))
            rows.append(at_least("3. search p50, against Keras predict + SELECT with BLOBs per query", _ms(p50),
                                 f"Keras predict + SELECT vectors with BLOBs + decode + np.linalg.norm, in process: "
                                 f"p50 {_ms(baseline_p50)}, p95 {_ms(_p95([t[0] for t in baseline]))}",
                                 baseline_p50 / p50, 10.0, "≥ 10× faster",
                                 "the baseline spends most of its time in one Keras predict "
                                 f"({_ms(predict_one)}) and the BLOB read; the served search's own floor is its "
                                 "forward pass plus HTTP."))
            rows.append(Row("3. retrieval step alone (revision check + cached ranking)", _ms(retrieval),
                            f"SELECT with BLOBs + decode + norm: {_ms(baseline_retrieval)}",
                            baseline_retrieval / retrieval))
            same_best = sum(a == b[2] for a, b in zip(latency.best, baseline))
            details.append(f"Search: the best match agrees with the Keras baseline for {same_best} of {len(baseline)} "
                           f"queries; CPU per search (server + database + client): {_ms(latency.cpu_per_query)}; the "
                           "server's own step times, median: "
                           + ", ".join(f"{step} {ms:.2f} ms" for step, ms in latency.steps_ms.items()) + ".")

            say(f"5. sustained load, {CLIENTS} clients for {sizes.load_seconds:.0f} s")
            load = search_bench.sustained(served, queries, CLIENTS, sizes.load_seconds)
            bound = machine.cores / latency.cpu_per_query
            rows.append(at_least(f"5. sustained QPS, {CLIENTS} clients, {load.seconds:.0f} s", f"{load.qps:.1f} q/s",
                                 f"bound {machine.cores} cores ÷ {_ms(latency.cpu_per_query)} CPU per query = "
                                 f"{bound:.1f} q/s", load.qps / bound, 0.9, "≥ 0.9× bound",
                                 f"{CLIENTS} request threads share one Python interpreter (decode, Flask, JSON), and "
                                 "the load generator runs on the same cores."))
            rows.append(Row("5. errors under load", f"{load.errors} of {load.ok + load.errors}", goal="0",
                            verdict="met" if load.errors == 0 else f"NOT met: {load.errors} errors"))

            say("6. serving memory")
            rss = served.workers[0].memory_info().rss
            with store.engine.connect() as conn:
                vector_bytes = int(conn.execute(select(func.sum(func.length(Feature.vector)))).scalar_one())
            graph_bytes = onnx_path(model_path).stat().st_size
            rows.append(at_most(f"6. resident memory of the serving process ({len(files):,} products loaded)",
                                f"{rss / 2**20:.0f} MiB", "300 MiB", rss / 2**20 / 300, 1.0, "≤ 300 MiB",
                                "Python, Flask, SQLAlchemy, NumPy and ONNX Runtime's own arenas."))
            details.append(f"Memory: the ONNX graph is {graph_bytes / 2**20:.1f} MiB and the stored vectors "
                           f"{vector_bytes / 2**20:.1f} MiB; the serving process holds {rss / 2**20:.0f} MiB in all.")

        say(f"   other gunicorn layouts, {CLIENTS} clients for {sizes.load_seconds / 2:.0f} s each")
        layouts = [(1, CLIENTS, load.qps, rss)]
        for workers, threads in ((1, 4), (2, 4)):
            with search_bench.serving(url, model_path, work, workers, threads,
                                      {"LOOKALIKE_THREADS": str(max(1, machine.cores // workers))}) as other:
                search_bench.warm_up(other, _evenly(queries, 4 * len(categories)) * workers)
                run_load = search_bench.sustained(other, queries, CLIENTS, sizes.load_seconds / 2)
                layouts.append((workers, threads, run_load.qps,
                                sum(w.memory_info().rss for w in other.workers)))
        details.append("gunicorn layouts (workers × threads; each worker's ONNX Runtime gets cores ÷ workers "
                       "intra-op threads), same load:\n\n"
                       + markdown_table(["layout", "QPS", "resident memory, all workers"],
                                        [(f"{w} × {t}", f"{q:.1f}", f"{m / 2**20:.0f} MiB") for w, t, q, m in layouts]))
        say("   real embeddings for the approximate index")
        real_vectors = np.concatenate([store.category_vectors(c, model.version).vectors for c in sorted(categories)])
        real_pictures = [decode_image(q, DEFAULTS.max_image_pixels).rgb for q in _evenly(queries, 50)]
        real_queries = model.predict(model.arrays(real_pictures)).embeddings
        store.engine.dispose()

    # 4. Ranking, after the server has gone, so the 2 GB matrix does not compete with it.
    say(f"4. ranking {sizes.ranking_vectors:,} vectors against FAISS")
    vectors = ranking_bench.unit_vectors(sizes.ranking_vectors)
    versus = ranking_bench.versus_faiss(vectors, ranking_bench.queries_near(vectors, sizes.ranking_queries), 30)
    del vectors
    rows.append(at_most(f"4. exact ranking {sizes.ranking_vectors:,} × {ranking_bench.DIM}-d float32, top 30",
                        _ms(versus.ours), f"FAISS IndexFlatL2: {_ms(versus.faiss)}", versus.ours / versus.faiss,
                        1.2, "≤ 1.2× FAISS"))
    rows.append(Row("4. identical top 30 (ids, in order)", f"{versus.identical} of {versus.queries} queries",
                    goal="all", verdict="met" if versus.identical == versus.queries else "NOT met"))

    say("4. approximate index (FAISS IVF) against exact ranking")
    policy = AnnPolicy()
    approximate = []
    for n in sizes.ann_sizes:
        vectors = ranking_bench.clustered_unit_vectors(n, seed=n)
        found = ranking_bench.ann_versus_exact(vectors, ranking_bench.queries_near(vectors, sizes.ranking_queries,
                                                                                     noise=0.02), 30, policy.nprobe)
        approximate.append((f"{n:,} synthetic (clustered)", found))
        del vectors
    approximate.append((f"{len(real_vectors):,} real embeddings (whole catalogue)",
                        ranking_bench.ann_versus_exact(np.ascontiguousarray(real_vectors), real_queries, 30,
                                                       policy.nprobe)))
    largest = approximate[-2][1]
    rows.append(at_least(f"4. approximate index, recall@30 at {largest.n:,} vectors", f"{largest.recall:.3f}",
                         "exact ranking", largest.recall, 0.95, "≥ 0.95",
                         f"nprobe {policy.nprobe} scans a fixed share of the clusters; more clusters scanned "
                         "(LOOKALIKE_ANN_NPROBE) buy recall with time."))
    rows.append(at_least(f"4. approximate index, speed at {largest.n:,} vectors", _ms(largest.ann_seconds),
                         f"exact: {_ms(largest.exact_seconds)}", largest.exact_seconds / largest.ann_seconds, 10.0,
                         "≥ 10× faster"))
    details.append(f"Approximate index (FAISS IndexIVFFlat, about 4√n clusters, nprobe {policy.nprobe}; candidates "
                   "re-ranked exactly), top 30, queries near stored vectors:\n\n"
                   + markdown_table(["vectors", "recall@30", "exact p50", "approximate p50", "speed-up", "build",
                                     "memory exact / IVF"],
                                    [(name, f"{a.recall:.3f}", _ms(a.exact_seconds), _ms(a.ann_seconds),
                                      f"{a.exact_seconds / a.ann_seconds:.1f}×", f"{a.build_seconds:.1f} s",
                                      f"{a.exact_bytes / 2**20:.0f} / {a.ann_bytes / 2**20:.0f} MiB")
                                     for name, a in approximate])
                   + f"\n\nA category gets the index from {policy.min_vectors:,} vectors (LOOKALIKE_ANN_MIN_VECTORS).")

    say("scaling")
    scales = ranking_bench.scaling(sizes.scaling)
    details.append("Scaling (one category matrix of synthetic unit vectors, 512-d float32):\n\n"
                   + markdown_table(["vectors", "cached matrix + norms", "ranking p50 (top 30)",
                                     "search p50 estimate (forward pass + ranking)"],
                                    [(f"{s.n:,}", f"{s.cached_bytes / 2**20:.1f} MiB", _ms(s.rank_seconds),
                                      _ms(forward_one + s.rank_seconds)) for s in scales]))
    return rows, details


def document(rows: list[Row], details: list[str], machine: Machine, command: str, seconds: float) -> str:
    return "\n".join([
        "# Benchmarks",
        "",
        "Written by the benchmark itself (`bench/`); do not edit by hand. Every figure and its baseline were measured",
        "in the same run, on a machine shared with other work: compare ratios, not absolute times.",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; run time {seconds / 60:.1f} min",
        f"- machine: {machine.describe()}",
        "",
        markdown(rows),
        "",
        *[part + "\n" for part in details],
        "How these figures grow with the catalogue, and the plan past one machine: `docs/scaling.md`.",
        "",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for developing the benchmarks")
    parser.add_argument("--catalogue", type=Path, default=SHARED / "data" / "fashion" / "catalogue")
    parser.add_argument("--queries", type=Path, default=SHARED / "data" / "fashion" / "queries")
    parser.add_argument("--output", type=Path, default=None,
                        help="markdown file to write (default: docs/benchmarks.md, or nothing with --quick)")
    args = parser.parse_args(argv)
    output = args.output or (None if args.quick else ROOT / "docs" / "benchmarks.md")
    machine = this_machine()
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as work:
        rows, details = run(QUICK if args.quick else FULL, args.catalogue, args.queries, Path(work), machine, say)
    seconds = time.perf_counter() - started
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    text = document(rows, details, machine, command.strip(), seconds)
    print(text)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        print(f"written to {output}")


if __name__ == "__main__":
    main()

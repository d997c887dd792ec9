"""The catalogue loader: files → hash check → decode → views → batched forward pass → batched transaction.

Three overlapping stages: reading and decoding run in worker threads a few batches ahead of the network,
and a writer thread commits one batch while the network embeds the next, so the model waits neither
for JPEG decoding nor for the database. Each batch of products is committed together with its vectors in one
transaction, so a killed run leaves nothing half-written and a re-run skips what is already stored. A product's
vector is its photo's embedding with its augmented views' (``model.gallery``; as many as the model's card says).
While a new model version waits for activation, every new product gets a vector of each registered version.
"""
from __future__ import annotations

import hashlib
import shlex
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from catalogue.folder import CatalogueFile, ahead, category_form, product_key
from config import DEFAULTS
from db.registry import ModelRegistry
from db.store import Move, NewProduct, Place, Store
from images.decoding import ImageError, NotAnImage, decode_image
from model.gallery import gallery_inputs, gallery_vectors
from model.inference import Network


@dataclass
class IngestReport:
    added: int = 0
    present: int = 0
    updated: int = 0  # stored products whose metadata changed
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    # Rejected files that may hold a product's photo (unreadable, damaged, half copied, too large, not named in
    # UTF-8), unlike a file in no image format: while there are any, which products are gone is unknown.
    doubtful: int = 0
    moved: list[Move] = field(default_factory=list)  # stored products now elsewhere
    kept: list[Move] = field(default_factory=list)  # files whose picture is a product of a category not in the folder
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (stored category, folder holding all its products)
    # New categories whose names differ from another's only in case, spaces or underscores: (new, other).
    lookalikes: list[tuple[str, str]] = field(default_factory=list)
    unpredicted: list[str] = field(default_factory=list)  # the folder's stored categories the model cannot predict
    seconds: float = 0.0
    # By the SHA-256 of every file read (stored before or now), where the catalogue has it: (category, external id).
    places: dict[str, list[Place]] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"added {self.added}, already present {self.present}, moved {len(self.moved)}, "
                 f"rejected {len(self.rejected)}, metadata updated {self.updated} in {self.seconds:.1f} s"]
        lines += [f"  moved {product_key(*move.before)} → {product_key(*move.after)}" + (
            f", where product {move.sharing} is too ('ingest --sync' removes it if its file is gone)"
            if move.sharing else "") for move in self.moved]
        lines += [f"  new category {new!r} differs from {other!r} only in case, spaces or underscores: rename its "
                  "folder if they are one" for new, other in self.lookalikes]
        lines += [f"  not moved: {product_key(*move.after)} is the picture of product {move.product}, "
                  f"{product_key(*move.before)}, of a category this folder does not hold; if it belongs here: "
                  f"'lookalike products delete {move.product}', then ingest again" for move in self.kept]
        lines += [f"  not moved: folder {after!r} holds every product of category {before!r}; if the category was "
                  f"renamed: 'lookalike categories rename {shlex.quote(before)} {shlex.quote(after)}' (its model "
                  "follows)" for before, after in self.renamed]
        lines += [f"  {product_key(*place)} is the same picture as {product_key(*places[0])}: one product"
                  for places in self.places.values() for place in places[1:]]
        if self.doubtful:
            lines.append(f"  moves not looked for: {self.doubtful} rejected files may hold a product's photo (below)")
        lines += [f"  rejected {path}: {reason}" for path, reason in self.rejected]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Decoded:
    entry: CatalogueFile
    data: bytes
    sha256: str
    content_type: str
    width: int
    height: int
    inputs: dict[int, np.ndarray]  # the networks' inputs (the photo and its views), by input size


@dataclass
class _Prepared:
    """One chunk of files after reading and decoding: what goes to the network and what was set aside."""

    size: int
    decoded: list[_Decoded] = field(default_factory=list)
    present: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    doubtful: int = 0
    places: dict[str, list[Place]] = field(default_factory=dict)


def _named_in_utf8(entry: CatalogueFile) -> bool:
    """Whether the file's category and external id are text (a name the file system could not decode is not)."""
    try:
        f"{entry.category}/{entry.external_id}".encode()
    except UnicodeEncodeError:
        return False
    return True


class Loader:
    """Loads catalogues into the store and re-embeds stored products when the model changes.

    Args:
        model: the network that embeds each image.
        store: where products and vectors go.
        batch_size: images per forward pass and per committed transaction.
        max_image_pixels: larger images are rejected.
        max_file_bytes: larger files are rejected unread.
        workers: threads reading and decoding ahead of the network.
        progress: show a progress bar.
        more_models: networks of other registered versions (one waiting for activation, the previous one kept
            for a roll-back): new products get their vectors too, so any of them can be activated.
    """

    def __init__(self, model: Network, store: Store, batch_size: int = DEFAULTS.batch_size,
                 max_image_pixels: int = DEFAULTS.max_image_pixels,
                 max_file_bytes: int = DEFAULTS.max_upload_bytes, workers: int = 2, progress: bool = True,
                 more_models: Sequence[Network] = ()):
        self.models = [model, *more_models]
        self.store = store
        self.batch_size = batch_size
        self.max_image_pixels = max_image_pixels
        self.max_file_bytes = max_file_bytes
        self.workers = workers
        self.progress = progress

    def ingest(self, files: Sequence[CatalogueFile], metadata: dict[Path, dict] | None = None) -> IngestReport:
        """Store every new image of ``files`` with its vectors; report what was added, present or rejected.

        A product of one of the files' categories whose image they now have at another place only (a file moved to
        another category folder, or renamed) moves there, unless a rejected file may hold a product's photo; one of
        another category stays, and the report names it. Products already stored get the metadata given for their
        file (matched by category and external id), and the report counts those whose metadata changed.
        """
        metadata = metadata or {}
        categories = {entry.category for entry in files}
        report = IngestReport(lookalikes=self._lookalikes(categories))
        # Each batch is stored only while the registry lists these versions still, and no other (a model
        # registered meanwhile could be activated while the batch lacks its vectors).
        registered = set(ModelRegistry(self.store).versions())
        started = time.perf_counter()
        seen: set[str] = set()
        chunks = [files[i:i + self.batch_size] for i in range(0, len(files), self.batch_size)]
        # One writer thread commits a batch while the network embeds the next one. The next batch is handed
        # to it only once the previous one has committed, so a failed write stops everything after it.
        writing: tuple[Future | None, _Prepared] | None = None
        with tqdm(total=len(files), unit="img", desc="ingest", disable=not self.progress) as bar, \
                ThreadPoolExecutor(1, thread_name_prefix="write") as writer:
            for prepared in ahead(self._prepare, chunks, self.workers):
                # The same picture twice in one catalogue is stored once.
                batch = [item for item in prepared.decoded if item.sha256 not in seen]
                seen.update(item.sha256 for item in batch)
                products = self._embed(batch, metadata) if batch else []
                if writing:
                    self._settle(*writing, report, bar)
                write = writer.submit(self.store.add_products, products, registered) if products else None
                writing = (write, prepared)
            if writing:
                self._settle(*writing, report, bar)
        kept: list[Move] = []
        if not report.doubtful:  # else that file may be a product's own, and the product could move to a copy
            report.moved, kept = self.store.relocate(report.places, categories)
        counts = self.store.category_counts()  # after the moves
        self._sort_kept(kept, counts, report)
        if metadata:
            report.updated = self.store.update_metadata(
                {(entry.category, entry.external_id): metadata[entry.path] for entry in files
                 if entry.path in metadata})
        holding = categories & set(counts)  # not a folder whose products were renamed away
        report.unpredicted = sorted(holding - set(self.models[0].categories))
        report.seconds = time.perf_counter() - started
        return report

    @staticmethod
    def _sort_kept(kept: list[Move], counts: dict[str, int], report: IngestReport) -> None:
        """Products left in a category the folder does not hold: one by one, unless a folder holds all of a category's
        products (a category folder renamed, which 'categories rename' follows, the model's outputs too)."""
        groups: dict[tuple[str, str], list[Move]] = {}
        for move in kept:
            groups.setdefault((move.before[0], move.after[0]), []).append(move)
        for (before, after), moves in groups.items():
            if len(moves) == counts.get(before) and after not in counts:
                report.renamed.append((before, after))
            else:
                report.kept += moves

    def _lookalikes(self, categories: set[str]) -> list[tuple[str, str]]:
        """Each new category with the first stored one holding products (else the first other new one) that looks
        the same."""
        known = set(self.store.category_counts())
        new = sorted(categories - known)
        first: dict[str, str] = {}
        for name in sorted(known) + new:
            first.setdefault(category_form(name), name)
        return [(name, first[category_form(name)]) for name in new if first[category_form(name)] != name]

    @staticmethod
    def _settle(write: Future | None, prepared: _Prepared, report: IngestReport, bar: tqdm) -> None:
        """Wait for one batch's transaction and count its outcome."""
        added = len(write.result()) if write else 0
        report.added += added
        report.present += prepared.present + len(prepared.decoded) - added
        report.rejected += prepared.rejected
        report.doubtful += prepared.doubtful
        for sha, places in prepared.places.items():
            report.places.setdefault(sha, []).extend(places)
        bar.update(prepared.size)

    def _prepare(self, chunk: Sequence[CatalogueFile]) -> _Prepared:
        prepared = _Prepared(size=len(chunk))
        contents = []
        for entry in chunk:
            if not _named_in_utf8(entry):
                shown = str(entry.path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                prepared.rejected.append((shown, "its name is not UTF-8 (the store keeps names as text): rename it"))
                prepared.doubtful += 1
                continue
            try:
                size = entry.path.stat().st_size
                if size > self.max_file_bytes:
                    prepared.rejected.append((str(entry.path), f"{size:,} bytes, larger than the limit of "
                                              f"{self.max_file_bytes:,} (LOOKALIKE_MAX_UPLOAD_BYTES)"))
                    prepared.doubtful += 1
                    continue
                data = entry.path.read_bytes()
            except OSError as e:
                prepared.rejected.append((str(entry.path), f"cannot be read ({e.strerror or e})"))
                prepared.doubtful += 1
                continue
            contents.append((entry, data, hashlib.sha256(data).hexdigest()))
        known = self.store.known_hashes(sha for _, _, sha in contents)
        sizes = {model.input_size for model in self.models}
        views = max(model.card.gallery_views for model in self.models)  # a model asking fewer takes the first
        for entry, data, sha in contents:
            prepared.places.setdefault(sha, []).append((entry.category, entry.external_id))
            if sha in known:
                prepared.present += 1
                continue
            try:
                image = decode_image(data, self.max_image_pixels, max(sizes))
            except ImageError as e:
                prepared.rejected.append((str(entry.path), str(e)))
                prepared.doubtful += not isinstance(e, NotAnImage)  # a damaged picture may be a product's, half copied
                continue
            prepared.decoded.append(_Decoded(entry, data, sha, image.content_type, image.width, image.height,
                                             {size: gallery_inputs(image.rgb, size, sha, views)
                                              for size in sizes}))
        return prepared

    def _embed(self, batch: list[_Decoded], metadata: dict[Path, dict]) -> list[NewProduct]:
        vectors = {model.version: gallery_vectors(model, np.stack([item.inputs[model.input_size] for item in batch]))
                   for model in self.models}
        return [
            NewProduct(category=item.entry.category, external_id=item.entry.external_id, image=item.data,
                       image_sha256=item.sha256, content_type=item.content_type, width=item.width,
                       height=item.height, vectors={version: v[i] for version, (v, _) in vectors.items()},
                       metadata=metadata.get(item.entry.path, {}),
                       photo_vectors={version: p[i] for version, (_, p) in vectors.items()})
            for i, item in enumerate(batch)
        ]

    def reembed(self) -> dict[str, dict[str, int]]:
        """Give every stored product a vector of each of the loader's models; counts by version. A model whose
        vectors hold views also re-embeds the products stored without the photo's own embedding beside their vector
        (before migration 0003), so the neighbours' vote reads it for them too.

        Other versions' vectors are left alone (a serving process may still be using them: pruning is the
        registry's, on request). Resumable: only products still lacking a vector are read, so a re-run continues.
        """
        return {model.version: self._reembed(model) for model in self.models}

    def _reembed(self, model: Network) -> dict[str, int]:
        counts: Counter[str] = Counter(embedded=0)
        after_id = 0
        # Rows stored before migration 0003 lack the photo's own embedding.
        with_photos = model.card.gallery_views > 0
        registered = model.version in ModelRegistry(self.store).versions()  # then only while it stays so
        total = self.store.products_without_vector_count(model.version, with_photos)
        with tqdm(total=total, unit="img", desc=f"embed {model.version}", disable=not self.progress) as bar:
            while rows := self.store.products_without_vector(model.version, after_id, self.batch_size, with_photos):
                after_id = rows[-1][0]
                ids, inputs = [], []
                for product_id, data in rows:
                    try:
                        image = decode_image(data, self.max_image_pixels, model.input_size)
                    except ImageError:
                        counts["undecodable"] += 1
                        continue
                    ids.append(product_id)
                    inputs.append(gallery_inputs(image.rgb, model.input_size, hashlib.sha256(data).hexdigest(),
                                                 model.card.gallery_views))
                if ids:
                    vectors, photos = gallery_vectors(model, np.stack(inputs))
                    counts["embedded"] += self.store.put_vectors(dict(zip(ids, vectors)), model.version,
                                                                 dict(zip(ids, photos)), registered)
                bar.update(len(rows))
        return dict(counts)

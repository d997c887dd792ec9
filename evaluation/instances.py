"""Instance search: can an altered photo of a catalogue product find that very product?

Each query is a catalogue image cropped to 70–90 % of each side, rotated by up to ±15°, brightened or
darkened by up to 30 % and re-encoded as JPEG at quality 40.
"""
from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageEnhance
from tqdm import tqdm

from catalogue.folder import CatalogueFile, product_key
from config.choices import Scope
from evaluation.tables import markdown_table
from search.service import SearchService


def alter(image: Image.Image, rng: random.Random) -> Image.Image:
    """One random alteration as described above (white fill, like the catalogue's background)."""
    width, height = image.size
    keep_w, keep_h = rng.uniform(0.7, 0.9), rng.uniform(0.7, 0.9)
    left = rng.uniform(0, 1 - keep_w) * width
    top = rng.uniform(0, 1 - keep_h) * height
    image = image.crop((round(left), round(top), round(left + keep_w * width), round(top + keep_h * height)))
    image = image.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BILINEAR, expand=False,
                         fillcolor=(255, 255, 255))
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=40)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


@dataclass(frozen=True)
class InstanceReport:
    """Where each altered photo's original ranked: as served (narrowed, merged, safety net) and with the whole
    catalogue searched; products the model kept out of its instance objective are reported apart."""

    served_ranks: list[int | None]
    whole_ranks: list[int | None]
    held_out: list[bool]
    category_searched: list[bool]
    safety_net_fired: list[bool]
    ks: tuple[int, ...] = (1, 5, 10)
    not_stored: int = 0  # files drawn whose picture is no stored product (never ingested, or unreadable): skipped

    @property
    def queries(self) -> int:
        return len(self.served_ranks)

    def found(self, k: int, whole: bool = False, held_out: bool | None = None) -> float:
        """Share of the queries (all, or only held-out / trained products) whose original is in the top ``k``."""
        ranks = self.whole_ranks if whole else self.served_ranks
        chosen = [r for r, h in zip(ranks, self.held_out) if held_out is None or h == held_out]
        return sum(r is not None and r <= k for r in chosen) / max(len(chosen), 1)

    def markdown(self) -> str:
        groups = [("all products", None)]
        if any(self.held_out):
            groups += [("trained products", False), ("held-out products (never in the instance objective)", True)]
        header = ["altered catalogue photos", "queries",
                  *(f"{mode} top {k}" for mode in ("served", "whole") for k in self.ks)]
        rows = [(name, sum(held_out is None or h == held_out for h in self.held_out),
                 *(f"{self.found(k, whole, held_out):.1%}" for whole in (False, True) for k in self.ks))
                for name, held_out in groups]
        return (markdown_table(header, rows, right_aligned=range(1, len(header)))
                + "\n\nserved: as a shopper's search runs (narrowed to likely categories, merged, "
                "with the safety net); whole: every category searched.\n"
                f"- original's category searched: {_share(self.category_searched):.1%}\n"
                f"- safety net fired: {_share(self.safety_net_fired):.1%}\n"
                + (f"- skipped: {self.not_stored} files drawn whose picture is no stored product\n"
                   if self.not_stored else ""))


def _share(flags: list[bool]) -> float:
    return sum(flags) / max(len(flags), 1)


def evaluate_instances(service: SearchService, files: Sequence[CatalogueFile], count: int = 500, seed: int = 0,
                       ks: Sequence[int] = (1, 5, 10), batch_size: int = 64, progress: bool = True) -> InstanceReport:
    """Alter ``count`` random catalogue files (already ingested) and look for each original, as served and in
    the whole catalogue. The held-out products are those the model card lists (none for older models).

    Raises:
        ValueError: none of the files drawn is a stored product's picture.
    """
    rng = random.Random(seed)
    drawn = rng.sample(list(files), min(count, len(files)))
    contents = {entry.path: entry.path.read_bytes() for entry in drawn}
    digests = {path: hashlib.sha256(data).hexdigest() for path, data in contents.items()}
    stored = service.store.known_hashes(digests.values())
    chosen = [entry for entry in drawn if digests[entry.path] in stored]
    if not chosen:
        raise ValueError(f"none of the {len(drawn)} files drawn is the picture of a stored product: "
                         "ingest their folder first ('lookalike ingest FOLDER')")
    held_out = set(service.model.card.training.get("instance_held_out", []))
    served, whole, searched, fired = [], [], [], []

    def rank_of(original: CatalogueFile, result) -> int | None:
        found = [i for i, m in enumerate(result.matches)
                 if product_key(m.product.category, m.product.external_id) == original.key]
        return found[0] + 1 if found else None

    for start in tqdm(range(0, len(chosen), batch_size), desc="instances", disable=not progress):
        batch = chosen[start:start + batch_size]
        altered = [alter(Image.open(io.BytesIO(contents[f.path])).convert("RGB"), rng) for f in batch]
        seen = service.look(altered)  # one forward pass answers both ways
        as_served = service.answer(seen, k=max(ks))
        everywhere = service.answer(seen, k=max(ks), scope=Scope.ALL)
        for original, result, all_result in zip(batch, as_served, everywhere):
            served.append(rank_of(original, result))
            whole.append(rank_of(original, all_result))
            searched.append(original.category in result.searched)
            fired.append(result.exact_match is not None)
    return InstanceReport(served, whole, [f.key in held_out for f in chosen], searched, fired, tuple(ks),
                          len(drawn) - len(chosen))

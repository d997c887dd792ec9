"""Instance search: can an altered photo of a catalogue product find that very product?

Each query is a catalogue image cropped to 70–90 % of each side, rotated by up to ±15°, brightened or
darkened by up to 30 % and re-encoded as JPEG at quality 40.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass
from typing import Sequence

from PIL import Image, ImageEnhance
from tqdm import tqdm

from ingest.catalogue import CatalogueFile
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
    queries: int
    found_at: dict[int, float]  # k → share of queries whose original is in the top k
    category_searched: float  # share of queries whose original's category was searched

    def markdown(self) -> str:
        found = ", ".join(f"top {k}: {share:.1%}" for k, share in self.found_at.items())
        return (f"- altered catalogue images searched: {self.queries}\n- original found in {found}\n"
                f"- original's category searched: {self.category_searched:.1%}\n")


def evaluate_instances(service: SearchService, files: Sequence[CatalogueFile], count: int = 500, seed: int = 0,
                       ks: Sequence[int] = (1, 5, 10), batch_size: int = 64, progress: bool = True) -> InstanceReport:
    """Alter ``count`` random catalogue files (already ingested) and look for each original."""
    rng = random.Random(seed)
    chosen = rng.sample(list(files), min(count, len(files)))
    ranks, searched = [], []
    for start in tqdm(range(0, len(chosen), batch_size), desc="instances", disable=not progress):
        batch = chosen[start:start + batch_size]
        altered = [alter(Image.open(f.path).convert("RGB"), rng) for f in batch]
        for original, result in zip(batch, service.search_images(altered, k=max(ks))):
            found = [i for i, m in enumerate(result.matches)
                     if m.product.external_id == original.external_id and m.product.category == original.category]
            ranks.append(found[0] + 1 if found else None)
            searched.append(original.category in result.searched)
    return InstanceReport(len(chosen), {k: sum(r is not None and r <= k for r in ranks) / len(ranks) for k in ks},
                          sum(searched) / len(searched))

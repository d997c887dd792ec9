"""How well the activation map's box finds a product whose place is known: catalogue products cut out of their white
background and pasted on a larger background (plain, or smooth random colour like a wall or a floor) at a random
place and size; the box of each threshold against the pasted rectangle (IoU)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from catalogue.folder import CatalogueFile
from evaluation.tables import markdown_table
from images.decoding import ImageError, decode_image, to_array
from model.inference import Network
from search.localisation import Box, localise

CANVAS = 480
WHITE = 24  # a pixel this close to white is the catalogue photo's background


def cut_out(product: Image.Image) -> Image.Image:
    """The product without its photo's white margins."""
    product = product.convert("RGB")
    return product.crop(ImageOps.invert(product).point(lambda v: 255 if v > WHITE else 0).getbbox())


def background(seed: int, plain: bool, side: int = CANVAS) -> Image.Image:
    rng = np.random.default_rng(seed)
    if plain:
        return Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(40, 220, 3)))
    return Image.fromarray(rng.uniform(60, 200, (4, 4, 3)).astype(np.uint8)).resize((side, side),
                                                                                   Image.Resampling.BICUBIC)


def pasted(product: Image.Image, box: Box, seed: int, plain: bool = False, side: int = CANVAS) -> Image.Image:
    """``product`` cut out and scaled to fill ``box`` on a ``side``-px background."""
    canvas = background(seed, plain, side)
    canvas.paste(cut_out(product).resize((box.w, box.h)), (box.x, box.y))
    return canvas


def run(network: Network, products: Sequence[CatalogueFile], thresholds: Sequence[float], max_pixels: int,
        seed: int = 0) -> dict:
    """Each product pasted twice (a plain and a smooth background), a third to a half of the canvas high; the IoU of
    each threshold's box with it. An unreadable photo is skipped and counted."""
    rng = np.random.default_rng(seed)
    canvases, truths, unreadable = [], [], 0
    for i, entry in enumerate(products):
        try:
            product = decode_image(entry.path.read_bytes(), max_pixels).rgb
        except (ImageError, OSError):
            unreadable += 1
            continue
        for plain in (True, False):
            h = int(rng.integers(CANVAS // 3, CANVAS // 2))
            w = int(h * rng.uniform(0.6, 1.0))
            truth = Box(int(rng.integers(0, CANVAS - w)), int(rng.integers(0, CANVAS - h)), w, h)
            canvases.append(pasted(product, truth, seed + i, plain))
            truths.append(truth)
    if not canvases:
        raise ValueError(f"none of the {len(products)} photos is readable")
    maps = network.predict(np.stack([to_array(c, network.input_size) for c in canvases])).activation_maps
    if maps is None:
        raise ValueError("this model's ONNX graph has no activation map: run 'lookalike export' first")
    rows = {}
    for threshold in thresholds:
        boxes = [localise(m, (CANVAS, CANVAS), threshold).box for m in maps]
        ious = np.array([box.iou(truth) if box else 0.0 for box, truth in zip(boxes, truths)])
        shares = [box.share((CANVAS, CANVAS)) if box else 0 for box in boxes]
        rows[f"{threshold:g}"] = {"median_iou": float(np.median(ious)), "iou_at_least_0.5": float((ious >= 0.5).mean()),
                                  "median_share": float(np.median(shares))}
    return {"pictures": len(canvases), "unreadable": unreadable, "thresholds": rows}


def write(summary: dict, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    skipped = f" ({summary['unreadable']} unreadable photos skipped)" if summary["unreadable"] else ""
    table = f"{summary['pictures']} pasted products{skipped}\n\n" + markdown_table(
        ["threshold", "median IoU", "IoU ≥ 0.5", "median box share"],
        [(t, f"{r['median_iou']:.2f}", f"{r['iou_at_least_0.5']:.0%}", f"{r['median_share']:.0%}")
         for t, r in summary["thresholds"].items()])
    (out / "summary.md").write_text(table + "\n")
    return table

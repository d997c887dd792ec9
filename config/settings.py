"""One settings object built from ``LOOKALIKE_*`` environment variables.

Nothing else in the code reads the environment, so tests build a ``Settings`` by hand and every path
comes from here instead of being hard-coded.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from limits import parse_many

METRICS = ("euclidean", "cosine")
SCOPES = ("category", "all")
RUNTIMES = ("onnx", "keras")
# Chosen from the measured sweeps in docs/quality.md (see Settings).
NARROW_TAU = 0.8
MERGE_WEIGHT = 0.2
EXACT_DISTANCE = 0.8
LOCALISE_MAX_SHARE = 0.0  # off: cropping to the box cost precision on every measured set (docs/quality.md)
LOCALISE_THRESHOLD = 0.5


def _number(environ: Mapping[str, str], name: str, default, kind=int):
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError as e:
        raise ValueError(f"{name} must be {'a whole number' if kind is int else 'a number'}, got {raw!r}") from e


def _rate(environ: Mapping[str, str], name: str, default: str) -> str:
    value = environ.get(name) or default
    try:
        parse_many(value)
    except ValueError as e:
        raise ValueError(f"{name} must be a rate like '60 per minute' or '5/second;100/hour', got {value!r}") from e
    return value


def _choice(environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = environ.get(name) or default
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Runtime configuration.

    Attributes:
        data_dir: where the embedded SQLite database and the trained model live by default.
        database_url: SQLAlchemy URL; empty means the embedded SQLite file in ``data_dir``.
        model_path: the trained ``.keras`` file (its ``.meta.json`` sits beside it): what ``train`` writes, and
            what is served until a model is registered.
        models_dir: registered models' files, one folder per version (``model.versions``); empty means
            ``data_dir/models``.
        backbone: registry name used when training a new model.
        weights: ``imagenet`` (Keras's own loader and cache), ``none``, or a local weights file.
        input_size: side of the square network input; 0 means the backbone's default.
        runtime: what runs the network when serving, ingesting and evaluating: ``onnx`` (ONNX Runtime, the
            default: no TensorFlow in the process) or ``keras`` (TensorFlow, the training runtime).
        threads: intra-op threads of the runtime; 0 means every core this process may use.
        top_k: results returned by a search unless the caller asks otherwise.
        batch_size: images per forward pass and per committed batch of rows.
        metric, scope: defaults of a search (``euclidean|cosine``, ``category|all``).
        max_upload_bytes: largest image accepted for a search or an ingest.
        max_image_pixels: decoded images larger than this are refused (decompression bombs).
        narrow_tau, narrow_max_categories: a search covers the fewest most probable categories whose
            probabilities sum to at least ``narrow_tau``, and at most ``narrow_max_categories`` of them
            (the defaults were chosen from the measured curve in docs/quality.md).
        merge_weight: when several categories are searched, results are merged by ``d² − merge_weight · ln p``
            (d: distance, p: the result's category probability), so a less probable category's results must fit
            clearly better to push out the likely category's; 0 merges by distance alone.
        exact_distance: the exact-product safety net: the nearest product of the categories not searched is
            shown first when it is closer than this (Euclidean, unit vectors) and closer than every searched
            result, so a near-identical catalogue photo is found when the classifier picks the wrong category
            (0 turns it off).
        localise_max_share: a search embeds the crop around the product (the box from the network's activation
            map, search/localisation.py) instead of the whole photo when that box covers at most this share of
            the photo; 0 turns it off (measured in docs/quality.md).
        localise_threshold: the box is drawn around the largest region where the activation map reaches this
            share of its peak.
        ann_min_vectors, ann_nprobe: a category with at least ``ann_min_vectors`` vectors is searched through
            an approximate FAISS IVF index scanning ``ann_nprobe`` clusters (0 turns it off; see docs/benchmarks.md).
        min_similarity: below this best-match similarity (percent) a search says plainly that nothing
            in the catalogue looks much like the photo.
        trace_ttl_seconds: how long the reviewer page of a search stays available (kept in memory only).
        trace_max_bytes: memory the kept searches may take together; past it the oldest are forgotten first.
        allow_private_urls: let URL search fetch loopback/private/link-local addresses (tests only).
        url_timeout_seconds: time limit of a URL search's download.
        demo_backbone: backbone of the demo; ``mobilenet_v2`` uses the offline weights shipped in
            ``demo/weights``, any other uses Keras's ImageNet loader (cache, or a download with internet).
        rate_limit: searches allowed per client address (page and API counted together), in the
            ``limits`` notation, e.g. ``60 per minute`` or ``5/second;100/hour``.
        trusted_proxies: how many reverse proxies in front of the app set ``X-Forwarded-For``; 0 means the
            client is the socket's peer (a client cannot then pretend to be another by sending the header).
    """

    data_dir: Path = Path("var")
    database_url: str = ""
    model_path: Path | None = None
    models_dir: Path | None = None
    backbone: str = "resnet50"
    weights: str = "imagenet"
    input_size: int = 0
    runtime: str = "onnx"
    threads: int = 0
    top_k: int = 30
    batch_size: int = 32
    metric: str = "euclidean"
    scope: str = "category"
    max_upload_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    narrow_tau: float = NARROW_TAU
    narrow_max_categories: int = 3
    merge_weight: float = MERGE_WEIGHT
    exact_distance: float = EXACT_DISTANCE
    localise_max_share: float = LOCALISE_MAX_SHARE
    localise_threshold: float = LOCALISE_THRESHOLD
    ann_min_vectors: int = 50_000
    ann_nprobe: int = 32
    min_similarity: float = 60.0
    trace_ttl_seconds: int = 900
    trace_max_bytes: int = 64 * 1024 * 1024
    allow_private_urls: bool = False
    url_timeout_seconds: float = 5.0
    demo_backbone: str = "mobilenet_v2"
    rate_limit: str = "60 per minute"
    trusted_proxies: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("LOOKALIKE_DATA_DIR") or "var")
        model_path = env.get("LOOKALIKE_MODEL_PATH")
        models_dir = env.get("LOOKALIKE_MODELS_DIR")
        return cls(
            data_dir=data_dir,
            database_url=env.get("LOOKALIKE_DATABASE_URL", ""),
            model_path=Path(model_path) if model_path else None,
            models_dir=Path(models_dir) if models_dir else None,
            backbone=env.get("LOOKALIKE_BACKBONE") or "resnet50",
            weights=env.get("LOOKALIKE_WEIGHTS") or "imagenet",
            input_size=_number(env, "LOOKALIKE_INPUT_SIZE", 0),
            runtime=_choice(env, "LOOKALIKE_RUNTIME", "onnx", RUNTIMES),
            threads=_number(env, "LOOKALIKE_THREADS", 0),
            top_k=_number(env, "LOOKALIKE_TOP_K", 30),
            batch_size=_number(env, "LOOKALIKE_BATCH_SIZE", 32),
            metric=_choice(env, "LOOKALIKE_METRIC", "euclidean", METRICS),
            scope=_choice(env, "LOOKALIKE_SCOPE", "category", SCOPES),
            max_upload_bytes=_number(env, "LOOKALIKE_MAX_UPLOAD_BYTES", 10 * 1024 * 1024),
            max_image_pixels=_number(env, "LOOKALIKE_MAX_IMAGE_PIXELS", 40_000_000),
            narrow_tau=_number(env, "LOOKALIKE_NARROW_TAU", NARROW_TAU, float),
            narrow_max_categories=_number(env, "LOOKALIKE_NARROW_MAX_CATEGORIES", 3),
            merge_weight=_number(env, "LOOKALIKE_MERGE_WEIGHT", MERGE_WEIGHT, float),
            exact_distance=_number(env, "LOOKALIKE_EXACT_DISTANCE", EXACT_DISTANCE, float),
            localise_max_share=_number(env, "LOOKALIKE_LOCALISE_MAX_SHARE", LOCALISE_MAX_SHARE, float),
            localise_threshold=_number(env, "LOOKALIKE_LOCALISE_THRESHOLD", LOCALISE_THRESHOLD, float),
            ann_min_vectors=_number(env, "LOOKALIKE_ANN_MIN_VECTORS", 50_000),
            ann_nprobe=_number(env, "LOOKALIKE_ANN_NPROBE", 32),
            min_similarity=_number(env, "LOOKALIKE_MIN_SIMILARITY", 60.0, float),
            trace_ttl_seconds=_number(env, "LOOKALIKE_TRACE_TTL_SECONDS", 900),
            trace_max_bytes=_number(env, "LOOKALIKE_TRACE_MAX_BYTES", 64 * 1024 * 1024),
            allow_private_urls=env.get("LOOKALIKE_ALLOW_PRIVATE_URLS", "").lower() in ("1", "true", "yes"),
            url_timeout_seconds=_number(env, "LOOKALIKE_URL_TIMEOUT_SECONDS", 5.0, float),
            demo_backbone=env.get("LOOKALIKE_DEMO_BACKBONE") or "mobilenet_v2",
            rate_limit=_rate(env, "LOOKALIKE_RATE_LIMIT", "60 per minute"),
            trusted_proxies=_number(env, "LOOKALIKE_TRUSTED_PROXIES", 0),
        )

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file when none is set."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'lookalike.db').resolve()}"

    @property
    def resolved_model_path(self) -> Path:
        return self.model_path or self.data_dir / "model.keras"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

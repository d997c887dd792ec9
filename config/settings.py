"""One settings object built from ``LOOKALIKE_*`` environment variables, each setting declared once below.

A field carries its type, its default and its description; its variable is ``LOOKALIKE_`` + its name in capitals.
Nothing else in the code reads the environment, so tests build a ``Settings`` by hand, every path comes from
here instead of being hard-coded, constructors that take a setting default to ``DEFAULTS``, and the README's
table of variables is printed from these fields (``python -m config``, checked by a test).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

from limits import parse_many
from pydantic import AfterValidator, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from config.choices import Metric, Runtime, Scope
from config.validation import OneOf, complaint

PREFIX = "LOOKALIKE_"
DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
# The offline ImageNet weights of the demo backbone (mobilenet_v2), committed with their provenance.
DEMO_WEIGHTS = DEMO_DIR / "weights" / "mobilenet_v2_imagenet_1.0_224_notop.weights.h5"


# The weak-match threshold (%) of a model whose card has none (trained before thresholds were calibrated): the one
# measured on the 6,000-photo fashion model (docs/quality.md).
FALLBACK_MIN_SIMILARITY = 40.0


def variable(name: str) -> str:
    """The environment variable of a setting."""
    return PREFIX + name.upper()


def setting(default: Any, description: str, shown: str | None = None) -> Any:
    """A setting's default and its description; ``shown``: the default in words where the value would not say it."""
    return Field(default, description=description, json_schema_extra={"shown": shown} if shown else None)


def _rate(value: str) -> str:
    try:
        parse_many(value)
    except ValueError:
        raise PydanticCustomError("rate", "must be a rate like '60 per minute' or '5/second;100/hour'") from None
    return value


@dataclass(frozen=True)
class Settings:
    """Runtime configuration: one field per ``LOOKALIKE_*`` variable (the descriptions are the README's table)."""

    database_url: str = setting(
        "", "SQLAlchemy URL, e.g. `mysql+mysqlconnector://user:$PASSWORD@host/lookalike?charset=utf8mb4`",
        "embedded SQLite `$LOOKALIKE_DATA_DIR/lookalike.db`")
    data_dir: Path = setting(Path("var"), "where the embedded database and the model live")
    model_path: Path | None = setting(
        None, "the trained `.keras` file (its card sits beside it): what `train` writes and `models add` registers, "
              "served until a model is registered", "`$LOOKALIKE_DATA_DIR/model.keras`")
    models_dir: Path | None = setting(
        None, "registered models' files, one folder per version (`model.versions`); every serving process must see it",
        "`$LOOKALIKE_DATA_DIR/models`")
    backbone: str = setting("resnet50", "backbone for `train`: `resnet50`, `mobilenet_v2`, `vgg16`, `small_cnn`")
    weights: str = setting("imagenet", "`imagenet` (Keras's loader: cache first, download where there is internet), "
                                       "`none`, or a weights file")
    input_size: Annotated[int, Field(ge=0)] = setting(
        0, "side of the square network input", "backbone's (224; 128 for `small_cnn`)")
    runtime: Annotated[Runtime, OneOf()] = setting(
        Runtime.ONNX, "what runs the network for search, ingest and evaluation: `onnx` (ONNX Runtime; the process "
                      "never loads TensorFlow) or `keras` (TensorFlow, the training runtime)")
    threads: Annotated[int, Field(ge=0)] = setting(0, "ONNX Runtime's intra-op threads", "cores the process may use")
    top_k: Annotated[int, Field(ge=1)] = setting(30, "results per search unless the caller asks otherwise")
    batch_size: Annotated[int, Field(ge=1)] = setting(32, "images per forward pass and per committed batch of rows")
    metric: Annotated[Metric, OneOf()] = setting(Metric.EUCLIDEAN, "how a search compares embeddings by default")
    scope: Annotated[Scope, OneOf()] = setting(
        Scope.CATEGORY, "what a search covers by default: the most probable categories, or every one")
    max_upload_bytes: Annotated[int, Field(ge=1)] = setting(
        10 * 1024 * 1024, "largest image accepted for a search or an ingest", "10 MiB")
    max_image_pixels: Annotated[int, Field(ge=1)] = setting(
        40_000_000, "decoded images larger than this are refused (decompression bombs); JPEG, PNG, WebP or GIF, no "
                    "side over 20,000 px, no JPEG over 100 scans", "40 M")
    vote_weight: Annotated[float, Field(ge=0, le=1)] = setting(
        0.5, "the category step: probabilities are (1 − λ) · the classifier's + λ · the vote of the nearest stored "
             "products (0: the classifier's alone; measured in docs/quality.md)")
    vote_neighbours: Annotated[int, Field(ge=1)] = setting(
        30, "how many of the nearest stored products vote for their categories")
    vote_temperature: Annotated[float, Field(gt=0)] = setting(
        0.2, "each voter counts exp(−d²/T): the smaller T, the more the very nearest products count")
    narrow_tau: Annotated[float, Field(ge=0, le=1)] = setting(
        0.8, "confidence-aware narrowing: a search covers the fewest most probable categories whose probabilities "
             "sum to at least τ (chosen from the measured curve in docs/quality.md)")
    narrow_max_categories: Annotated[int, Field(ge=1)] = setting(
        4, "at most this many categories are searched by narrowing")
    merge_weight: Annotated[float, Field(ge=0, allow_inf_nan=False)] = setting(
        0.2, "results of several searched categories are merged by d² − β · ln p(category): a less probable "
             "category must fit clearly better (0: by distance alone)")
    exact_distance: Annotated[float, Field(ge=0, le=2)] = setting(
        0.8, "exact-product safety net: the category of the catalogue's nearest product is always searched, and "
             "that product goes first when it is this close (Euclidean, unit vectors); 0 turns it off")
    localise_max_share: Annotated[float, Field(ge=0, le=1)] = setting(
        0.0, "localisation: search the crop around the product instead of the whole photo when its box covers at "
             "most this share of the photo (0: never, the measured default; see docs/quality.md)")
    localise_threshold: Annotated[float, Field(gt=0, le=1)] = setting(
        0.5, "the box is drawn around the largest region of the activation map reaching this share of its peak")
    ann_min_vectors: Annotated[int, Field(ge=0)] = setting(
        50_000, "a category with at least this many vectors is searched through an approximate FAISS IVF index "
                "(0 turns it off; see docs/benchmarks.md)")
    ann_nprobe: Annotated[int, Field(ge=1)] = setting(32, "clusters the approximate index scans per search")
    min_similarity: Annotated[float | None, Field(ge=0, allow_inf_nan=False)] = setting(
        None, "below this best-match similarity (%) a search says nothing looks much alike; set, it overrides every "
              "model's own threshold (see docs/quality.md)",
        f"the served model's, calibrated when it was trained (its card); {FALLBACK_MIN_SIMILARITY:g} for a model "
        "trained before that")
    trace_ttl_seconds: Annotated[int, Field(ge=1)] = setting(
        900, "how long a search's reviewer page stays available (memory only)")
    trace_max_bytes: Annotated[int, Field(ge=0)] = setting(
        64 * 1024 * 1024, "memory the kept reviewer pages may take together; past it the oldest go first", "64 MiB")
    allow_private_urls: bool = setting(False, "let URL search reach private/loopback addresses (tests only)")
    url_timeout_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = setting(
        5.0, "time limit of a URL search's whole download (DNS, connection, redirects, body)")
    demo_backbone: str = setting(
        "mobilenet_v2", "backbone of `lookalike demo`: `mobilenet_v2` uses the offline weights in `demo/weights`, "
                        "any other Keras's ImageNet loader")
    rate_limit: Annotated[str, AfterValidator(_rate)] = setting(
        "60 per minute", "searches per client address, page and API together, in the `limits` notation (e.g. "
                         "`5/second;100/hour`); over it, 429 with `Retry-After`")
    trusted_proxies: Annotated[int, Field(ge=0)] = setting(
        0, "reverse proxies in front of the app that set `X-Forwarded-For` (0: the client is the socket's peer, "
           "so a client cannot pretend to be another by sending the header)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``environ`` (default: the process's); an unset or empty variable keeps the default.

        Raises:
            ValueError: naming the variable, what it must be and what it was.
        """
        environ = os.environ if environ is None else environ
        given: dict[str, Any] = {field.name: environ[variable(field.name)] for field in fields(cls)
                                 if environ.get(variable(field.name))}
        try:
            return cls(**given)
        except ValidationError as e:
            error = e.errors()[0]
            raise ValueError(complaint(variable(str(error["loc"][0])), error)) from e

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


DEFAULTS = Settings()


def settings_table() -> str:
    """The README's table of environment variables, from the declaration above."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in TypeAdapter(Settings).json_schema()["properties"].items():
        shown = field.get("shown") or f"`{field['default']}`"
        rows.append(f"| `{variable(name)}` | {shown} | {field['description']} |")
    return "\n".join(rows) + "\n"

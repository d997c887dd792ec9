"""The model registry: which trained models the store keeps vectors for, and which one is served.

A new model is registered, embedded while the active one keeps serving, then activated with one UPDATE:
every serving process reads the active version before each search and moves to it at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from db.schema import Feature, ModelVersion
from db.store import NotFound, Store, count_without_vector, current_names, lock_models

# How versions are listed: the active one first, then the newest.
LISTED = (ModelVersion.active.desc(), ModelVersion.created_at.desc(), ModelVersion.version)


@dataclass(frozen=True)
class RegisteredModel:
    version: str
    backbone: str
    categories: list[str]
    created_at: datetime
    active: bool
    vectors: int  # products that have a vector of this version


@dataclass(frozen=True)
class ActiveModel:
    version: str
    categories: list[str]


class ModelRegistry:
    """The ``models`` table, over a store's database.

    Args:
        store: an upgraded store.
    """

    def __init__(self, store: Store):
        self.store = store

    def register(self, version: str, backbone: str, categories: list[str]) -> list[str]:
        """Add a model version (not active) under its categories' names now (``current_names``); returns them.
        Registering a version twice is an error."""
        try:
            with self.store.engine.begin() as conn:
                categories = current_names(conn, categories)
                conn.execute(insert(ModelVersion).values(
                    version=version, backbone=backbone, categories=categories, active=False))
        except IntegrityError as e:
            raise ValueError(f"model {version} is already registered: 'lookalike models list' shows it") from e
        return categories

    def active(self) -> ActiveModel | None:
        """The served version and its categories, read before every search: a plain connection, one row."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(ModelVersion.version, ModelVersion.categories)
                               .where(ModelVersion.active.is_(True))).first()
        return ActiveModel(row.version, list(row.categories)) if row else None

    def versions(self) -> list[str]:
        """Every registered version, active first, then newest first."""
        with self.store.engine.connect() as conn:
            return list(conn.scalars(select(ModelVersion.version).order_by(*LISTED)))

    def models(self) -> list[RegisteredModel]:
        """Every registered model with how many products have its vectors, active first, then newest first."""
        counts = select(Feature.model_version, func.count(Feature.id).label("n")).group_by(
            Feature.model_version).subquery()
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(ModelVersion, func.coalesce(counts.c.n, 0).label("vectors"))
                .outerjoin(counts, counts.c.model_version == ModelVersion.version)
                .order_by(*LISTED)).all()
        return [RegisteredModel(row.version, row.backbone, list(row.categories), row.created_at, bool(row.active),
                                row.vectors) for row in rows]

    def get(self, version: str) -> RegisteredModel:
        for model in self.models():
            if model.version == version:
                return model
        raise _not_registered(version)

    def categories(self, version: str) -> list[str]:
        with self.store.engine.connect() as conn:
            found = conn.execute(select(ModelVersion.categories).where(ModelVersion.version == version)).first()
        if found is None:
            raise _not_registered(version)
        return list(found.categories)

    def missing_vectors(self, version: str) -> int:
        """How many products have no vector of ``version``."""
        return self.store.products_without_vector_count(version)

    def activate(self, version: str) -> None:
        """Serve ``version`` from now on, in every process; refused while some product lacks its vector.

        Ingest writes vectors for every registered version, so products added after the check have them too.
        """
        with self.store.engine.begin() as conn:
            if version not in lock_models(conn):
                raise _not_registered(version)
            missing = conn.execute(count_without_vector(version)).scalar_one()
            if missing:
                raise RuntimeError(f"model {version} has no vector for {missing} products: run "
                                   f"'lookalike reembed' to finish them, then activate again")
            conn.execute(update(ModelVersion).values(active=ModelVersion.version == version))

    def prune(self, versions: list[str] | None = None) -> dict[str, int]:
        """Delete the vectors of versions other than the active one, and unregister them.

        Args:
            versions: which versions; None means every version but the active one, registered or not
                (vectors left by models from before the registry).

        Returns:
            vectors deleted per version.

        No category revision moves: the active version's vectors, the only ones served, are untouched.
        """
        with self.store.engine.begin() as conn:
            registered = lock_models(conn)
            active = next((version for version, is_active in registered.items() if is_active), None)
            if not registered:
                raise RuntimeError("no model is registered yet: 'lookalike models add PATH' registers one; once one is "
                                   "active, the others' vectors can be pruned")
            if active is None:
                raise RuntimeError("no model is active yet: activate one with 'lookalike models activate VERSION' "
                                   "before pruning the others")
            known = set(registered) | set(conn.scalars(select(Feature.model_version).distinct()))
            if versions is None:
                versions = sorted(known - {active})
            for version in versions:
                if version == active:
                    raise ValueError(f"model {version} is the active one: activate another before pruning it")
                if version not in known:
                    raise NotFound(f"no model {version!r} in the store: 'lookalike models list' shows the versions")
            pruned = {}
            for version in versions:
                pruned[version] = conn.execute(delete(Feature).where(Feature.model_version == version)).rowcount
                conn.execute(delete(ModelVersion).where(ModelVersion.version == version))
        return pruned


def _not_registered(version: str) -> NotFound:
    return NotFound(f"no registered model {version!r}: 'lookalike models list' shows the versions, 'lookalike models "
                    "add PATH' registers a trained one")

"""Run the Alembic migrations from code (the CLI's ``db upgrade``, the demo and the tests)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats % as interpolation: URL-encoded passwords must be escaped.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    _run(command.upgrade, url, revision)


def downgrade(url: str, revision: str) -> None:
    _run(command.downgrade, url, revision)


def _run(step, url: str, revision: str) -> None:
    """Alembic's own error for a revision it cannot reach (unknown, or below the first) as a ValueError: one line."""
    try:
        step(alembic_config(url), revision)
    except CommandError as e:
        scripts = ScriptDirectory.from_config(alembic_config(url)).walk_revisions()  # head first
        revisions = ", ".join(reversed([script.revision for script in scripts]))
        raise ValueError(f"{e} (the revisions: {revisions}, head, base, or relative as -1)") from e


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "the migrations folder has no revision"
    return head


def require_current(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not the one this code was written for."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise RuntimeError(f"the database schema is at revision {current or 'none'}, this code needs {head}: "
                           "run 'lookalike db upgrade'")

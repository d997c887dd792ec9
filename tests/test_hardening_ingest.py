"""``lookalike ingest`` killed with SIGKILL at random points, again and again, on real photos in MySQL.

After every kill, and at the end, the store must be whole: each image stored once with exactly one vector of
the current model, no orphans; at the end the counts equal the folder's. Bad files must not stop the run.
Set ``LOOKALIKE_KILL_SEED`` to replay a run's kill points (the seed is printed).
"""
from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from catalogue.folder import list_catalogue
from db.migrate import upgrade
from tests.conftest import FASHION, ROOT, copy_slice
from tests.images import encode, gradient

KILLS = 20
CATEGORIES = 10
PER_CATEGORY = 100  # 1,000 photos in batches of 4: a run adds a few dozen before its kill, so 20 kills leave work
BATCH_SIZE = 4
RUN_TIMEOUT = 180  # seconds for one run: start-up (the model) and the whole catalogue, on a slow machine

# Whole-store checks: every product has exactly one vector, of the current model; nothing points nowhere.
INTEGRITY_QUERIES = {
    "products without exactly one vector": "SELECT COUNT(*) FROM products p WHERE "
                                           "(SELECT COUNT(*) FROM features f WHERE f.product_id = p.id) != 1",
    "vectors of another model": "SELECT COUNT(*) FROM features WHERE model_version != :version",
    "vectors without a product": "SELECT COUNT(*) FROM features f LEFT JOIN products p ON p.id = f.product_id "
                                 "WHERE p.id IS NULL",
    "products without a category": "SELECT COUNT(*) FROM products p LEFT JOIN categories c ON c.id = p.category_id "
                                   "WHERE c.id IS NULL",
    "categories without products": "SELECT COUNT(*) FROM categories c WHERE NOT EXISTS "
                                   "(SELECT 1 FROM products p WHERE p.category_id = c.id)",
    "images stored twice": "SELECT COUNT(*) - COUNT(DISTINCT image_sha256) FROM products",
}


def broken_store(engine, version: str) -> dict[str, int]:
    with engine.connect() as conn:
        counts = {name: conn.execute(text(sql), {"version": version}).scalar_one()
                  for name, sql in INTEGRITY_QUERIES.items()}
    return {name: count for name, count in counts.items() if count}


def stored_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM products")).scalar_one()


def run_until_killed(command, env, log: Path, engine, rng: random.Random) -> bool:
    """Start an ingest; kill it at a random point after this run's first commit. True if it was killed."""
    target = stored_count(engine) + 1
    with open(log, "ab") as out:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + RUN_TIMEOUT
    while process.poll() is None and stored_count(engine) < target:
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"an ingest run stored nothing for {RUN_TIMEOUT} s; see {log}")
        time.sleep(0.02)
    time.sleep(rng.uniform(0, 0.1))  # somewhere in the next batches: decoding, the network, or a transaction
    if process.poll() is not None:
        assert process.returncode in (0, 1), f"the ingest failed on its own; see {log}"  # 1: bad files rejected
        return False
    process.kill()
    process.wait()
    return True


@pytest.mark.slow
@pytest.mark.mysql
def test_killed_ingest_loses_nothing_and_stores_nothing_twice(mysql_url, trained_model_path, trained_model,
                                                            tmp_path, capsys):
    categories = sorted(p.name for p in (FASHION / "catalogue").iterdir())[:CATEGORIES]
    catalogue = copy_slice(tmp_path / "catalogue", categories=categories, per_category=PER_CATEGORY)
    # The catalogue holds a few byte-identical photos: the first in the folder's order is the one stored.
    expected: dict[str, tuple[str, str]] = {}
    for entry in list_catalogue(catalogue):
        expected.setdefault(hashlib.sha256(entry.path.read_bytes()).hexdigest(), (entry.category, entry.external_id))
    (catalogue / categories[0] / "notes.txt").write_text("not a picture")
    (catalogue / categories[1] / "broken.jpg").write_bytes(encode(gradient(300, 300))[:200])
    (catalogue / categories[2] / "empty.jpg").write_bytes(b"")
    upgrade(mysql_url)
    engine = create_engine(mysql_url)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOOKALIKE_DATABASE_URL": mysql_url,
           "LOOKALIKE_MODEL_PATH": str(trained_model_path), "LOOKALIKE_BATCH_SIZE": str(BATCH_SIZE),
           "LOOKALIKE_DATA_DIR": str(tmp_path / "var")}  # the first run registers the model in var/models
    command = [sys.executable, "-m", "cli.main", "ingest", str(catalogue)]
    seed = int(os.environ.get("LOOKALIKE_KILL_SEED") or time.time())
    rng = random.Random(seed)
    log = tmp_path / "ingest.log"

    kills, progress = 0, []
    while kills < KILLS:
        if not run_until_killed(command, env, log, engine, rng):
            pytest.fail(f"the catalogue was complete after {kills} kills: give the test more photos (seed {seed})")
        kills += 1
        progress.append(stored_count(engine))
        assert broken_store(engine, trained_model.version) == {}, f"after kill {kills} (seed {seed})"

    final = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert final.returncode == 1, final.stderr[-2000:]  # 1: some files were rejected, the rest stored
    assert "rejected 3" in final.stdout and all(name in final.stdout for name in ("notes.txt", "broken.jpg",
                                                                                  "empty.jpg"))
    assert broken_store(engine, trained_model.version) == {}
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT p.image_sha256, c.name, p.external_id FROM products p "
                                 "JOIN categories c ON c.id = p.category_id")).all()
    assert len(rows) == len(expected)
    assert {row.image_sha256: (row.name, row.external_id) for row in rows} == expected
    assert Counter(row.name for row in rows) == Counter(category for category, _ in expected.values())
    engine.dispose()
    with capsys.disabled():
        print(f"\nkilled ingest: {kills} SIGKILLs survived (seed {seed}); stored after each kill: {progress}; "
              f"the last run completed {len(expected)} distinct photos and rejected the 3 bad files")

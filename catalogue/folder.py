"""Reading a catalogue folder: one sub-folder per category, and an optional CSV of product metadata."""
from __future__ import annotations

import csv
from collections import Counter, deque
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

Item = TypeVar("Item")
Done = TypeVar("Done")


@dataclass(frozen=True)
class CatalogueFile:
    path: Path
    category: str
    external_id: str  # the file name without its extension

    @property
    def key(self) -> str:
        return product_key(self.category, self.external_id)


def product_key(category: str, external_id: str) -> str:
    """A product's name across the code: external ids are unique within a category only."""
    return f"{category}/{external_id}"


def list_catalogue(root: Path, category: str | None = None) -> list[CatalogueFile]:
    """Every file of a catalogue, in a stable order.

    Files in a sub-folder (at any depth) belong to the category named after the top sub-folder, exactly
    as spelled. Files directly in ``root`` belong to ``category`` if given, else to the folder's own
    name, so a flat folder is one category.
    Hidden files are ignored; everything else is listed, and the loader reports what is not an image.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder: give the catalogue folder that holds the photos"
                                 if root.exists() else f"catalogue folder not found: {root}")
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        name = relative.parts[0] if len(relative.parts) > 1 else (category or root.resolve().name)
        files.append(CatalogueFile(path=path, category=name, external_id=path.stem))
    return files


def per_category(files: Iterable[CatalogueFile], count: int,
                 categories: Container[str] | None = None) -> list[CatalogueFile]:
    """The first ``count`` files of each category (0: every file), in their order, of ``categories`` only if given."""
    taken: Counter[str] = Counter()
    chosen = []
    for entry in files:
        if (categories is None or entry.category in categories) and (not count or taken[entry.category] < count):
            taken[entry.category] += 1
            chosen.append(entry)
    return chosen


def relabel(files: list[CatalogueFile], mapping: Mapping[str, str | None]) -> list[CatalogueFile]:
    """Files whose folder label the mapping names get its category; a label mapped to null is dropped.

    Lets photos labelled differently (e.g. a clothing data set's ``t-shirt``) train a catalogue category.
    """
    return [CatalogueFile(f.path, category, f.external_id) for f in files
            if (category := mapping.get(f.category, f.category)) is not None]


def load_metadata(csv_path: Path, files: list[CatalogueFile], key_column: str | None = None,
                  also_named: Mapping[str, str] | None = None) -> dict[Path, dict]:
    """Metadata rows joined to catalogue files by file name or id.

    A key names a file by its name, its name without extension, or either after its category and a slash
    ("Bags/123.jpg", or "bags/123"). If a column names the category of the file a row's key fits, for most files
    ("Casual Shoes" or "casual shoes" names Casual_Shoes where no other folder has that form), a row joins only a
    file of the category it names (ids need be unique within a category only); without such a column, a row
    fitting files of several categories is an error, never a guess.

    Args:
        csv_path: a CSV with a header row; any columns.
        files: the catalogue's files.
        key_column: the column holding the file name or id; by default, the column whose values
            match the most files.
        also_named: another name of a category, which keys and the category column may use too (the name of its
            folder, still as the category was called before a rename).

    Returns:
        The row (without the key column and cells it lacks) of every file that has one: strings.

    Raises:
        ValueError: ``key_column`` is not a column, keys fit several files, or a file has rows that differ.
    """
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        columns = list(reader.fieldnames or [])  # a row's cells beyond the header are under the key None
    if key_column is not None and key_column not in columns:
        raise ValueError(f"column {key_column!r} is not in {csv_path}; it has: {', '.join(columns)}")
    if not rows:
        return {}
    spellings = {entry.category: entry.category for entry in files} | {
        old: new for new, old in (also_named or {}).items()}  # each accepted name → its category
    fits = _key_reader(files, spellings)
    if key_column is None:
        key_column = max(columns, key=lambda c: sum(bool(fits(_cell(row, c))) for row in rows))
    fitting = [(row, found) for row in rows if (found := fits(_cell(row, key_column)))]
    category_of = _category_reader(fitting, [c for c in columns if c != key_column], spellings)
    joined: dict[Path, dict] = {}
    ambiguous, contradicting = [], []
    for row, found in fitting:
        if category_of is not None:
            found = [entry for entry in found if entry.category in category_of(row)]
        if len(found) > 1:
            ambiguous.append(f"{_cell(row, key_column)} ({', '.join(str(entry.path) for entry in found)})")
        elif found:
            # A row shorter than the header has no value for its last columns (None): they are left out.
            values = {k: v for k, v in row.items() if k != key_column and k is not None and v is not None}
            first = joined.setdefault(found[0].path, values)
            if any(_cell(first, k) != _cell(values, k) for k in first | values):  # the same cells twice are harmless
                contradicting.append(str(found[0].path))
    if ambiguous:
        examples = list(dict.fromkeys(ambiguous))[:3]  # a key on several rows is one example
        raise ValueError(f"{csv_path}: rows that fit several files ({len(ambiguous)}), e.g. {'; '.join(examples)}: "
                         f"key them as Category/name, or give each row its category in a column, spelt exactly as "
                         f"its folder is named")
    if contradicting:
        examples = list(dict.fromkeys(contradicting))
        raise ValueError(f"{csv_path}: files with several rows that differ ({len(examples)}), e.g. "
                         f"{'; '.join(examples[:3])}: keep one row for each")
    return joined


def _key_reader(files: list[CatalogueFile], spellings: Mapping[str, str]) -> Callable[[str], list[CatalogueFile]]:
    """The files a key names: by name, by name without extension, or either after its category and a slash, the
    category spelt as one of its ``spellings`` is or in another case or spacing (then the files of that name in every
    category of that form: more than one is an ambiguous key, as a bare id of several categories is)."""
    named: dict[str, list[CatalogueFile]] = {}
    folders: dict[str, set[str]] = {}  # the spellings of each form
    for spelling in spellings:
        folders.setdefault(category_form(spelling), set()).add(spelling)
    for entry in files:
        for name in {entry.path.name, entry.external_id}:
            named.setdefault(name, []).append(entry)
            for spelling in {spelling for spelling, category in spellings.items() if category == entry.category}:
                named.setdefault(f"{spelling}/{name}", []).append(entry)

    def fits(key: str) -> list[CatalogueFile]:
        if key in named:
            return named[key]
        category, slash, name = key.rpartition("/")
        same = sorted(folders.get(category_form(category), ())) if slash else []
        return list({entry.path: entry for folder in same for entry in named.get(f"{folder}/{name}", [])}.values())
    return fits


def _cell(row: dict, column: str) -> str:
    """A cell's text, stripped; a cell the row lacks (a short row, the rows joined) is empty."""
    return (row.get(column) or "").strip()


def _category_reader(fitting: list[tuple[dict, list[CatalogueFile]]], columns: list[str],
                     spellings: Mapping[str, str]) -> Callable[[dict], list[str]] | None:
    """The categories each row may name, read from the column that names one for most of the files the rows fit:
    by one of its spellings exactly, else every category with a spelling of the same form (a row that then fits
    files of two is ambiguous, never a guess); None when no column does."""
    forms: dict[str, list[str]] = {}
    for spelling, category in sorted(spellings.items()):
        if category not in forms.setdefault(category_form(spelling), []):
            forms[category_form(spelling)].append(category)

    def reader(column: str) -> Callable[[dict], list[str]]:
        def categories(row: dict) -> list[str]:
            cell = _cell(row, column)
            return [spellings[cell]] if cell in spellings else forms.get(category_form(cell), [])
        return categories

    readers = {column: reader(column) for column in columns}
    agreeing = {column: sum(any(entry.category in read(row) for entry in found) for row, found in fitting)
                for column, read in readers.items()}
    best = max(agreeing, key=agreeing.__getitem__, default=None)
    fitted = len({entry.path for _, found in fitting for entry in found})
    # Most files: a column that names a category now and then by chance (a note saying "bags") is not one.
    return readers[best] if best is not None and 2 * agreeing[best] >= fitted > 0 else None


def category_form(name: str) -> str:
    """What a category name is taken to mean whatever its case, spaces or underscores ("Casual Shoes",
    "casual_shoes ", "CasualShoes"): a CSV's spelling of a folder's name, or a new folder that may be a typo of
    another."""
    return "".join(name.replace("_", " ").split()).casefold()


def ahead(work: Callable[[Item], Done], items: Iterable[Item], workers: int = 2) -> Iterator[Done]:
    """``work`` over ``items`` in worker threads, a bounded number ahead of the consumer, yielded in order.

    Reading and decoding a catalogue's files this way keeps the network busy without holding the whole
    catalogue in memory.
    """
    with ThreadPoolExecutor(workers, thread_name_prefix="ahead") as pool:
        pending: deque[Future] = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) > workers + 1:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

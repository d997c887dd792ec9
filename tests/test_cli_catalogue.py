"""The admin's commands for the catalogue's life after the first load, end to end on the embedded database."""
import json
import shutil

import pytest

from cli.main import main
from tests.conftest import FASHION, copy_slice, model_copy


@pytest.fixture
def env(monkeypatch, tmp_path, trained_model_path, fashion_slice, capsys):
    """An upgraded embedded database holding the slice (which registers and activates the trained model)."""
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("LOOKALIKE_MODEL_PATH", str(trained_model_path))
    monkeypatch.delenv("LOOKALIKE_DATABASE_URL", raising=False)
    monkeypatch.delenv("LOOKALIKE_MODELS_DIR", raising=False)
    catalogue = shutil.copytree(fashion_slice, tmp_path / "catalogue")
    assert main(["db", "upgrade"]) == 0
    assert main(["ingest", str(catalogue)]) == 0
    capsys.readouterr()
    return catalogue


def run(capsys, *argv, status=0) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == status, err
    if status >= 2:  # an error or Ctrl-C: one line saying what to do (1 is a half success, told in the summary)
        assert len(err.strip().splitlines()) == 1, err
        return err
    return out


def test_products_are_listed_shown_and_deleted(env, capsys, trained_model_path):
    listed = run(capsys, "products", "list", "--category", "Watches").splitlines()
    assert len(listed) == 1 + 12 and all(" Watches " in line for line in listed[1:])
    first = int(listed[1].split()[0])
    paged = run(capsys, "products", "list", "--category", "Watches", "--limit", "5").splitlines()
    assert paged[1:6] == listed[1:6] and paged[6] == f"… more with --category Watches --after {paged[5].split()[0]}"
    last = run(capsys, "products", "list", "--category", "Watches", "--after", listed[8].split()[0], "--limit", "4")
    assert last.splitlines()[1:] == listed[9:] and "more" not in last  # exactly the last four: no more to list
    assert "more" not in run(capsys, "products", "list", "--limit", str(2**63 - 1))  # the largest limit binds
    shown = run(capsys, "products", "show", str(first))
    version = json.loads(trained_model_path.with_suffix(".meta.json").read_text())["version"]
    assert "category:    Watches" in shown and f"vectors:     {version} (active)" in shown
    assert run(capsys, "products", "delete", str(first)) == "deleted 1 products (Watches 1)\n"
    assert "no product with id" in run(capsys, "products", "show", str(first), status=2)
    assert "nothing was deleted" in run(capsys, "products", "delete", "999999", status=2)
    ids = env / "gone.txt"
    ids.write_text("# shop ids\n" + "\n".join(p.stem for p in sorted((env / "Heels").glob("*.jpg"))[:3]) + "\n")
    assert run(capsys, "products", "delete", "--file", str(ids), "--external") == "deleted 3 products (Heels 3)\n"
    assert "no product with id" in run(capsys, "products", "delete", "--file", str(ids), status=2)  # gone now
    assert "add --external" in run(capsys, "products", "delete", "shoe-12", status=2)
    assert "add --external" in run(capsys, "products", "delete", "12", "--category", "Heels", status=2)
    watch = sorted((env / "Watches").glob("*.jpg"))[-1].stem
    assert "in Heels" in run(capsys, "products", "delete", watch, "--external", "--category", "Heels", status=2)
    assert run(capsys, "products", "delete", watch, "--external", "--category", "Watches").startswith("deleted 1")


def test_categories_are_shown_deleted_and_renamed(env, capsys, fashion_slice):
    assert "category Heels: 12 products" in run(capsys, "categories", "show", "Heels")
    assert "add --yes to confirm" in run(capsys, "categories", "delete", "Heels", status=2)
    assert run(capsys, "categories", "delete", "Heels", "--yes") == "deleted the 12 products of category 'Heels'\n"
    assert run(capsys, "categories").split() == ["12", "Backpacks", "12", "Sunglasses", "12", "Watches"]
    assert "no category named 'Shoes'" in run(capsys, "categories", "rename", "Shoes", "Boots", status=2)
    assert run(capsys, "categories", "rename", "Watches", "Watches ") == "category 'Watches' already has that name\n"
    run(capsys, "categories", "rename", "Sunglasses", "Shades")
    query = sorted((fashion_slice / "Sunglasses").glob("*.jpg"))[0]
    assert "predicted category: Shades" in run(capsys, "search", str(query), "-k", "3")


def test_reingest_updates_metadata_and_sync_finds_files_that_left(env, capsys):
    out = run(capsys, "ingest", str(env), "--csv", str(FASHION / "products.csv"))
    assert f"metadata: 48 of 48 files have a row in {FASHION / 'products.csv'}" in out
    assert "added 0, already present 48, moved 0, rejected 0, metadata updated 48" in out
    gone = sorted((env / "Backpacks").glob("*.jpg"))[:2]
    for path in gone:
        path.unlink()
    out = run(capsys, "ingest", str(env), "--sync")
    assert "sync: 2 stored products of Backpacks, Heels, Sunglasses, Watches are no longer in the folder" in out
    assert all(f" {path.stem}\n" in out for path in gone) and "run the same command with --yes" in out
    out = run(capsys, "ingest", str(env), "--sync", "--yes")
    assert "deleted 2 products (Backpacks 2)" in out
    assert "every stored product of" in run(capsys, "ingest", str(env), "--sync")


def test_a_category_named_for_a_folder_of_sub_folders_is_refused_before_anything_is_synced(env, capsys):
    (env / "Watches").rename(env / "watches")  # Watches' files now lie in a sub-folder of another name
    out = run(capsys, "ingest", str(env), "--category", "Watches", "--sync", "--yes", status=2)
    assert "--category names the category of files lying directly in" in out and "run it without --category" in out
    assert run(capsys, "categories", "show", "Watches").startswith("category Watches: 12 products")


@pytest.mark.parametrize("damage, reason", [
    ("unreadable", "cannot be read (Input/output error)"),
    ("truncated", "the image data is truncated or corrupt"),  # a photo half copied over its old file
])
def test_sync_deletes_nothing_while_a_file_is_rejected(env, capsys, unreadable, damage, reason):
    failing = sorted((env / "Heels").glob("*.jpg"))[0]
    if damage == "unreadable":
        unreadable(failing)
    else:
        failing.write_bytes(failing.read_bytes()[:300])
    out = run(capsys, "ingest", str(env), "--sync", "--yes", status=1)
    assert f"rejected {failing}: {reason}" in out
    assert "sync: not run, 1 rejected files may hold a product's photo" in out and "deleted" not in out
    assert run(capsys, "categories", "show", "Heels").startswith("category Heels: 12 products")


def test_a_file_that_is_no_picture_at_all_does_not_hold_the_sync_back(env, capsys):
    (env / "Heels" / "notes.txt").write_text("reorder the red ones")  # in no image format: no product's photo
    gone = sorted((env / "Heels").glob("*.jpg"))[0]
    gone.unlink()
    out = run(capsys, "ingest", str(env), "--sync", "--yes", status=1)  # 1: a file was rejected
    assert "notes.txt: the file is no JPEG, PNG, WebP or GIF picture" in out and "deleted 1 products (Heels 1)" in out
    assert run(capsys, "categories", "show", "Heels").startswith("category Heels: 11 products")


def test_a_new_model_is_embedded_beside_the_served_one_then_activated(env, capsys, trained_model_path, tmp_path):
    old = json.loads(trained_model_path.with_suffix(".meta.json").read_text())["version"]
    new = model_copy(trained_model_path, tmp_path / "trained", "candidate-2")
    assert "registered model candidate-2" in run(capsys, "models", "add", str(new))
    err = run(capsys, "models", "activate", "candidate-2", status=2)
    assert "has no vector for 48 products: run 'lookalike reembed'" in err
    more = copy_slice(tmp_path / "more", categories=("Watches",), per_category=14)
    out = run(capsys, "ingest", str(more))  # while the swap is pending: vectors of both
    assert "added 2, already present 12" in out and f"vectors of {old}, candidate-2" in out
    out = run(capsys, "reembed")
    assert f"model {old}: embedded 0" in out and "model candidate-2: embedded 48" in out
    assert "every serving process switches" in run(capsys, "models", "activate", "candidate-2")
    listed = run(capsys, "models", "list")
    assert "* candidate-2" in listed and "50/50" in listed
    assert run(capsys, "models", "prune") == f"pruned model {old}: 50 vectors deleted\n"
    assert "no registered model 'nope'" in run(capsys, "models", "activate", "nope", status=2)
    assert "every product has one" in run(capsys, "models", "show", "candidate-2")


def test_a_model_added_after_a_rename_predicts_the_category_under_its_new_name(env, capsys, trained_model_path,
                                                                              tmp_path):
    """Trained before the rename (or pruned, then added back): its 'Heels' output must point at the renamed
    products, or a search it serves would narrow to a category with none."""
    assert "differs from category" not in run(capsys, "categories", "rename", "Heels", "High_Heels")
    assert ("'sunglasses' differs from category 'Sunglasses' only in case, spaces or underscores"
            in run(capsys, "categories", "rename", "Watches", " sunglasses "))
    run(capsys, "categories", "rename", "sunglasses", "Watches")
    new = model_copy(trained_model_path, tmp_path / "trained", "candidate-2")
    out = run(capsys, "models", "add", str(new))
    assert "categories renamed since it was trained: it predicts 'Heels' as 'High_Heels'" in out
    assert run(capsys, "models", "show", "candidate-2").endswith(
        "categories: Backpacks, High_Heels, Sunglasses, Watches\n")
    # Two categories swap names: the names alone cannot tell which one a model trained before means, so it is said.
    for old, new_name in (("Backpacks", "Tmp"), ("Watches", "Backpacks"), ("Tmp", "Watches")):
        run(capsys, "categories", "rename", old, new_name)
    out = run(capsys, "models", "add", str(model_copy(trained_model_path, tmp_path / "third", "candidate-3")))
    assert "note: 'Backpacks' was also the name of 'Watches' before a rename; if this model was trained" in out
    assert "note: 'Watches' was also the name of 'Backpacks' before a rename" in out
    assert "it predicts 'Heels' as 'High_Heels'" in out


def test_a_folder_under_its_categorys_former_name_feeds_the_renamed_category(env, capsys, tmp_path):
    """Not a new category of the old name beside it: new photos, metadata and a sync reach the renamed one."""
    run(capsys, "categories", "rename", "Heels", "High_Heels")
    new_photo = sorted((FASHION / "catalogue" / "Heels").glob("*.jpg"))[12]
    shutil.copy(new_photo, env / "Heels" / new_photo.name)
    gone = sorted((env / "Heels").glob("*.jpg"))[0]
    gone.unlink()
    stored = [path.stem for path in sorted((env / "Heels").glob("*.jpg"))[:3]]
    # Keyed as the folder is named, and as the category is now.
    (tmp_path / "meta.csv").write_text(f"id,colour\n{new_photo.stem},Teal\nHeels/{stored[0]},Red\n"
                                       f"high heels/{stored[1]},Blue\n{stored[2]},Green\n")
    out = run(capsys, "ingest", str(env), "--csv", str(tmp_path / "meta.csv"), "--sync", "--yes")
    assert "folder 'Heels' is category 'High_Heels', renamed from it: its files go there" in out
    assert "metadata: 4 of 48 files have a row" in out
    assert "added 1, already present 47" in out and "metadata updated 3" in out
    assert "deleted 1 products (High_Heels 1)" in out
    counts = run(capsys, "categories").split()
    assert "Heels" not in counts and counts[counts.index("High_Heels") - 1] == "12"
    assert '"colour": "Teal"' in run(capsys, "products", "list", "--category", "High_Heels", "--limit", "20")
    # A flat folder given the former name as its category, the same.
    out = run(capsys, "ingest", str(env / "Heels"), "--category", "Heels")
    assert "the category 'Heels' of the files here is category 'High_Heels', renamed from it" in out
    assert "already present 12" in out
    # A folder of that old name with none of the category's pictures is a new category, as its admin may mean:
    # its sync must not take High_Heels' products for gone.
    (tmp_path / "other" / "Heels").mkdir(parents=True)
    for path in sorted((FASHION / "catalogue" / "Sunglasses").glob("*.jpg"))[13:15]:
        shutil.copy(path, tmp_path / "other" / "Heels" / path.name)
    out = run(capsys, "ingest", str(tmp_path / "other"), "--sync", "--yes")
    assert "folder 'Heels' has the name category 'High_Heels' had before a rename, but none of its pictures" in out
    assert "added 2" in out and "deleted" not in out
    assert run(capsys, "categories", "show", "High_Heels").startswith("category High_Heels: 12 products")


def test_the_model_commands_say_what_to_do_next(env, capsys, trained_model_path, tmp_path, monkeypatch):
    old = json.loads(trained_model_path.with_suffix(".meta.json").read_text())["version"]
    belts = copy_slice(tmp_path / "belts", categories=("Belts",), per_category=2)
    assert "not predicted by the served model: 'Belts'; until a model" in run(capsys, "ingest", str(belts))
    new = model_copy(trained_model_path, tmp_path / "trained", "candidate-2")
    run(capsys, "models", "add", str(new))
    assert ("every product has a vector of candidate-2: 'lookalike models activate candidate-2' serves it"
            in run(capsys, "reembed"))
    assert "it does not predict 'Belts': a search reaches" in run(capsys, "models", "activate", "candidate-2")
    # Its files lost: 'models add', which the other commands advise, puts them back.
    shutil.rmtree(tmp_path / "var" / "models" / "candidate-2")
    photo = sorted((env / "Watches").glob("*.jpg"))[0]
    assert "is registered but its files are not in" in run(capsys, "search", str(photo), status=2)
    assert "was registered already; its files are back" in run(capsys, "models", "add", str(new))
    assert run(capsys, "models", "prune", old, old) == f"pruned model {old}: 50 vectors deleted\n"  # named twice
    shown = run(capsys, "categories", "show", "Belts")
    assert shown.endswith("predicted by: no registered model (retrain to learn it)\n")
    run(capsys, "categories", "delete", "Belts", "--yes")
    shown = run(capsys, "categories", "show", "Belts")
    assert shown.endswith("predicted by: no registered model\n")  # emptied: nothing to learn
    monkeypatch.setattr("ingest.loader.Loader.reembed", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    assert "interrupted; what was stored is kept" in run(capsys, "reembed", status=130)


def test_a_registered_model_not_yet_active_is_named(monkeypatch, tmp_path, trained_model_path, capsys, fashion_slice):
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(tmp_path / "var"))  # no model at LOOKALIKE_MODEL_PATH
    for name in ("LOOKALIKE_MODEL_PATH", "LOOKALIKE_DATABASE_URL", "LOOKALIKE_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)
    run(capsys, "db", "upgrade")
    assert "no model is registered yet: 'lookalike models add PATH'" in run(capsys, "models", "prune", status=2)
    run(capsys, "models", "add", str(model_copy(trained_model_path, tmp_path / "trained", "candidate-2")))
    err = run(capsys, "ingest", str(fashion_slice), status=2)
    assert ("no model is active: 'lookalike reembed --version VERSION' gives every product its vector, then "
            "'lookalike models activate VERSION' serves it (registered: candidate-2)") in err

"""The accuracy check of the default recipe: real offline ImageNet MobileNetV2, 10 fashion categories, 50
catalogue photos each; the category of held-out queries, and altered catalogue photos finding their original."""
import pytest

from catalogue.folder import list_catalogue
from db.migrate import upgrade
from db.store import Store
from evaluation import report
from evaluation.instances import evaluate_instances
from ingest.loader import Loader
from model.inference import load_network
from model.training import TrainConfig, train
from search.service import SearchService
from tests.conftest import DEMO_WEIGHTS, FASHION, copy_slice


@pytest.mark.slow
def test_default_recipe_finds_categories_and_products(tmp_path):
    categories = sorted(p.name for p in (FASHION / "catalogue").iterdir())[:10]
    catalogue = list_catalogue(copy_slice(tmp_path / "catalogue", categories, per_category=50))
    queries = list_catalogue(copy_slice(tmp_path / "queries", categories, per_category=25, split="queries"))
    # The default recipe (views, three objectives, head then top), with fewer head epochs for CI's time.
    config = TrainConfig(backbone="mobilenet_v2", weights=str(DEMO_WEIGHTS), epochs=10)
    trained = train(catalogue, config, progress=False).model
    trained.save(tmp_path / "model.keras")
    network = load_network(tmp_path / "model.keras")
    database = f"sqlite:///{tmp_path / 'lookalike.db'}"
    upgrade(database)
    store = Store.from_url(database)
    Loader(network, store, progress=False).ingest(catalogue)
    service = SearchService(network, store)

    summary = report.summarise(report.run(service, queries, progress=False), store.category_counts(), categories)
    instances = evaluate_instances(service, catalogue, count=150, progress=False)
    print(f"\n{len(queries)} queries of {len(categories)} categories: top-1 category accuracy "
          f"{summary['top1_category_accuracy']:.1%}, P@10 {summary['retrieval']['@10']['precision']:.3f}\n"
          f"{instances.markdown()}")
    assert summary["queries"] == 250
    assert summary["top1_category_accuracy"] >= 0.80
    assert instances.found(5) >= 0.85 and instances.found(5, whole=True) >= 0.85
    assert instances.found(5, held_out=True) >= 0.75  # products the instance objective never saw

"""The one accuracy check: real offline ImageNet MobileNetV2, head trained on 10 fashion categories."""
import numpy as np
import pytest

from ingest.catalogue import list_catalogue
from model.training import TrainConfig, load_images, train
from tests.conftest import DEMO_WEIGHTS, FASHION, copy_slice

CATEGORIES = sorted(p.name for p in (FASHION / "catalogue").iterdir())[:10]


@pytest.mark.slow
def test_top1_category_accuracy_on_held_out_queries(tmp_path):
    catalogue = copy_slice(tmp_path / "catalogue", CATEGORIES, per_category=50)
    queries = copy_slice(tmp_path / "queries", CATEGORIES, per_category=25, split="queries")
    config = TrainConfig(backbone="mobilenet_v2", weights=str(DEMO_WEIGHTS), epochs=40, validation_split=0.2)
    model = train(list_catalogue(catalogue), config, progress=False).model
    images, kept, _ = load_images(list_catalogue(queries), model.input_size)
    predicted = model.predict(images).probabilities.argmax(axis=1)
    truth = np.array([model.categories.index(f.category) for f in kept])
    accuracy = float((predicted == truth).mean())
    print(f"top-1 category accuracy on {len(kept)} queries of {len(CATEGORIES)} categories: {accuracy:.1%}")
    assert len(kept) == 250
    assert accuracy >= 0.80

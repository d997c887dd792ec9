"""Two processes: an admin's command changes the catalogue or activates a model, and a running gunicorn worker
serves the change at its next request, without a restart (on the real MySQL-compatible server)."""
import json

import requests

from cli.main import main
from tests.conftest import FASHION, model_copy
from tests.served import gunicorn


def search(base: str, image) -> list[dict]:
    with open(image, "rb") as f:
        answer = requests.post(f"{base}/api/search", files={"image": f}, data={"k": 5}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


def test_a_delete_and_an_activation_reach_a_running_server(monkeypatch, tmp_path, mysql_url, trained_model_path,
                                                           fashion_slice, capsys):
    settings = {"LOOKALIKE_DATABASE_URL": mysql_url, "LOOKALIKE_DATA_DIR": str(tmp_path / "var")}
    for name, value in {**settings, "LOOKALIKE_MODEL_PATH": str(trained_model_path)}.items():
        monkeypatch.setenv(name, value)
    assert main(["db", "upgrade"]) == 0
    assert main(["ingest", str(fashion_slice), "--csv", str(FASHION / "products.csv")]) == 0
    old = json.loads(trained_model_path.with_suffix(".meta.json").read_text())["version"]
    query = sorted((fashion_slice / "Watches").glob("*.jpg"))[0]
    with gunicorn(tmp_path, mysql_url, trained_model_path, **settings) as (base, _worker):
        [best, *_] = search(base, query)
        assert best["external_id"] == query.stem
        assert main(["products", "delete", str(best["product_id"])]) == 0
        assert query.stem not in [r["external_id"] for r in search(base, query)]

        assert requests.get(f"{base}/healthz", timeout=30).json()["model"] == old
        assert main(["models", "add", str(model_copy(trained_model_path, tmp_path / "new", "candidate-2"))]) == 0
        assert main(["reembed"]) == 0
        assert search(base, query) and requests.get(f"{base}/healthz", timeout=30).json()["model"] == old
        assert main(["models", "activate", "candidate-2"]) == 0
        assert requests.get(f"{base}/healthz", timeout=30).json()["model"] == "candidate-2"
        assert main(["models", "prune"]) == 0  # the old vectors may go now: the server no longer reads them
        assert main(["products", "delete", str(search(base, query)[0]["product_id"])]) == 0
        assert len(search(base, query)) == 5
    capsys.readouterr()

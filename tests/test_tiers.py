"""The test tiers: every test has exactly one, and a unit test cannot reach ../shared or start a database server."""
import subprocess

import pytest

from tests.conftest import FASHION

TIERS = {"unit", "integration", "slow"}


def test_every_test_has_exactly_one_tier(request):
    for item in request.session.items:
        assert len({marker.name for marker in item.iter_markers()} & TIERS) == 1, item.nodeid


def test_a_unit_test_reaching_for_shared_data_or_a_database_server_fails(request):
    assert request.node.get_closest_marker("unit")
    with pytest.raises(pytest.fail.Exception, match="reached for ../shared"):
        (FASHION / "products.csv").open()
    with pytest.raises(pytest.fail.Exception, match="reached for ../shared"):
        list(FASHION.iterdir())
    with pytest.raises(pytest.fail.Exception, match="reached for a database server"):
        subprocess.run(["mariadbd", "--version"])
    with pytest.raises(pytest.fail.Exception, match="reached for the MySQL server"):
        request.getfixturevalue("mysql_url")

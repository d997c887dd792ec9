"""What the pages say in words: the helpers their templates use (no model, no database)."""
import pytest

from webapp.shop import label
from webapp.traces import kept_for


@pytest.mark.parametrize("seconds, words", [(45, "45 seconds"), (1, "1 second"), (60, "1 minute"),
                                            (1800, "30 minutes"), (90, "90 seconds")])
def test_how_long_a_search_is_kept_in_words(seconds, words):
    assert kept_for(seconds) == words  # never "0 minutes"


def test_a_shopper_reads_a_categorys_name_as_words():
    assert label("Perfume_and_Body_Mist") == "Perfume and Body Mist" and label("Heels") == "Heels"
    assert label("Tote__Bags_") == "Tote Bags"

"""The one Markdown table writer every report and benchmark uses."""
from evaluation.tables import markdown_table


def test_header_separator_and_rows_with_chosen_columns_aligned_right():
    table = markdown_table(["name", "n", "note", "share"], [("a", 3, "", "50%"), ["b", 12, "x", "7%"]],
                           right_aligned={1, 3})
    assert table == ("| name | n | note | share |\n"
                     "|---|---:|---|---:|\n"
                     "| a | 3 |  | 50% |\n"
                     "| b | 12 | x | 7% |")


def test_a_table_without_rows_keeps_its_header():
    assert markdown_table(["k", "precision@k"], []) == "| k | precision@k |\n|---|---|"

"""Search: classify the query, narrow to its category, rank that category's vectors.

The CLI, the web app and the evaluation all call ``SearchService.search``.
"""

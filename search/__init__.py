"""Search: classify the query, narrow to its likely categories, rank their vectors.

The CLI, the web app and the evaluation all call ``SearchService``; its rules (``narrowing``, ``merging``,
``safety_net``, ``weak_match``) are functions of their inputs, under a ``SearchPolicy`` passed per search.
"""

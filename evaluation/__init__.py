"""Evaluation: how good the answers are, measured on labelled queries against the ingested catalogue."""

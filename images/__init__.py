"""Untrusted image bytes to upright RGB pictures within a decoding budget, for ingest, training and search alike."""

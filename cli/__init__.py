"""The ``lookalike`` command: database, training, ingest, re-embed, search, serve and the demo."""

"""The admin's loader: catalogue folders (and optional metadata CSV) into the store, batched and re-runnable."""

"""A catalogue folder on disk: its files, their categories and ids, and an optional CSV of product metadata."""

"""Storage: the MySQL (or embedded SQLite) schema and the store that reads and writes it."""

"""Throwaway servers for the tests and the benchmarks (development only: no shipped package imports this)."""

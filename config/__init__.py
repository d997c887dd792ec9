"""Settings: every knob of Lookalike, read once from environment variables."""
from config.settings import Settings

__all__ = ["Settings"]

"""Settings: every knob of Lookalike, read once from environment variables."""
from config.settings import DEFAULTS, Settings

__all__ = ["DEFAULTS", "Settings"]

"""What every request handler needs, built once by ``create_app`` and kept on the app."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from config import Settings
from search.live import LiveService
from search.service import SearchService
from webapp.traces import TraceStore


@dataclass
class Lookalike:
    settings: Settings
    live: LiveService
    traces: TraceStore

    @property
    def service(self) -> SearchService:
        """The active model's search service: read it once per request, so one request uses one model."""
        return self.live.current()


def lookalike() -> Lookalike:
    """The current app's ``Lookalike``."""
    return current_app.extensions["lookalike"]

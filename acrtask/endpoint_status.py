"""What is known of one build endpoint right now: a value shared by the pool that finds it out
(builders/pool.py), `builder check` and watch's view, so watch needs nothing of the builders."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EndpointStatus:
    """One line of `builder check` and of watch's view."""

    name: str
    engine: str
    url: str
    platforms: tuple[str, ...]
    slots: int
    busy: int
    state: str  # up | down | unknown
    detail: str
    retry_in: float | None = None

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"name": self.name, "engine": self.engine, "url": self.url,
                                   "platforms": list(self.platforms), "maxConcurrent": self.slots,
                                   "busy": self.busy, "state": self.state, "detail": self.detail}
        if self.retry_in is not None:
            data["retryInSeconds"] = round(self.retry_in, 1)
        return data

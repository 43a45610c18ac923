"""How `task watch` was asked to behave: its flags, as one value the scheduler and the driver read (and the
`--listen` address parsed)."""

from __future__ import annotations

from dataclasses import dataclass

from acrtask.errors import ValidationError


@dataclass(frozen=True)
class WatchOptions:
    poll_min: float = 600.0
    poll_max: float = 3600.0
    max_concurrent_runs: int = 2
    once: bool = False
    commit_poll_interval: float = 60.0
    grace_period: float = 30.0
    foreign_scan_interval: float = 0.2  # how often runs of other processes are looked for
    fast_registries: frozenset[str] = frozenset()  # polled every fast_interval (cadence.py has the rules)
    fast_interval: float = 30.0
    retry_first: float = 5.0  # a failed check or queuing is tried again after this, doubling per failure...
    retry_cap: float = 300.0  # ...up to this, and never more than half the shortest poll interval

    @property
    def retry_max(self) -> float:
        """The longest wait before a failed step is tried again, whatever the registry (and the registries'
        circuit cap): under both poll intervals, so a recovered registry is noticed before its next poll."""
        return min(self.retry_cap, self.poll_min / 2, self.fast_interval / 2)


def parse_listen(text: str, flag: str = "--listen") -> tuple[str, int]:
    """`--listen [HOST:]PORT`; the host defaults to 127.0.0.1."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValidationError(f"Invalid {flag} '{text}': expected [HOST:]PORT.",
                              f"For example {flag} 127.0.0.1:8080.")
    return (host.strip("[]") or "127.0.0.1"), int(port)

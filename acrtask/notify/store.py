"""The global notification targets, in $ACRTASK_HOME/notify.json (mode 0600: chat webhook URLs are secrets).

Writers lock a sibling lock file and re-read under it, as the state file's writers do; readers never lock
(the file is replaced whole). Watch re-reads it when it changes, so targets added while it runs take effect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from acrtask import files
from acrtask.errors import NotFoundError, StateError, ValidationError
from acrtask.files import atomic_write, exclusive_lock
from acrtask.notify.targets import NotifyTarget

SCHEMA_VERSION = 1


class NotifyStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def all(self) -> list[NotifyTarget]:
        return sorted(self._load().values(), key=lambda t: t.name)

    def stamp(self) -> tuple[int, int, int]:
        return files.stamp(self.path)

    def add(self, target: NotifyTarget) -> NotifyTarget:
        with self._targets() as targets:
            if target.name in targets:
                raise ValidationError(f"The notification target '{target.name}' already exists.",
                                      f"Remove it first: acrtask notify remove {target.name}.")
            targets[target.name] = target
        return target

    def remove(self, name: str) -> None:
        with self._targets() as targets:
            if targets.pop(name, None) is None:
                raise NotFoundError(f"The notification target '{name}' could not be found.",
                                    "Run 'acrtask notify list' to see the targets there are.")

    def _load(self) -> dict[str, NotifyTarget]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StateError(f"Cannot read {self.path}: {exc.strerror}.", "Check the file's permissions.") from exc
        try:
            document = json.loads(raw)
            if document.get("schemaVersion", SCHEMA_VERSION) > SCHEMA_VERSION:
                raise StateError(f"{self.path} was written by a newer acrtask.", "Upgrade acrtask.")
            return {name: NotifyTarget.from_dict({**data, "name": name})
                    for name, data in document.get("targets", {}).items()}
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StateError(f"{self.path} is malformed: {exc}.",
                             "Fix it by hand or move it aside; acrtask will not overwrite it.") from None

    @contextmanager
    def _targets(self) -> Iterator[dict[str, NotifyTarget]]:
        with exclusive_lock(self.path.with_name(self.path.name + ".lock")):
            targets = self._load()
            yield targets
            document = {"schemaVersion": SCHEMA_VERSION, "targets": {
                name: {k: v for k, v in t.to_dict(reveal_url=True).items() if k != "name"}
                for name, t in sorted(targets.items())}}
            atomic_write(self.path, (json.dumps(document, indent=2) + "\n").encode(), mode=0o600)

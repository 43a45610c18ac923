"""The build endpoints file, `builders.toml` beside the state file: what `acrtask builder add` stores.

Its own small file (not a section of the state file), so that adding an endpoint never rewrites
every task, and so it moves into the state database as one table. Same discipline as the state
file: readers never lock (writes are atomic renames), writers serialise on a sibling lock file and
re-read under it, and a file that does not parse is reported and never overwritten.

    schemaVersion = 1
    [builders.build1]
    url = "tcp://10.0.0.5:8888"
    engine = "podman"
    maxConcurrent = 2
    platforms = ["linux/amd64"]
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import tomli_w

from acrtask import files
from acrtask.builders.endpoint import Endpoint
from acrtask.errors import AcrTaskError, NotFoundError, StateError, ValidationError
from acrtask.files import atomic_write, exclusive_lock

SCHEMA_VERSION = 1


class EndpointStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def stamp(self) -> tuple[int, int, int]:
        return files.stamp(self.path)

    def load(self) -> list[Endpoint]:
        """Every endpoint, in the order they were added."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StateError(f"Cannot read {self.path}: {exc.strerror}.", "Check the file's permissions.") from exc
        try:
            document = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise StateError(f"The build endpoints file {self.path} is corrupt: {exc}.",
                             "Fix it by hand or move it aside; acrtask will not overwrite it.") from exc
        version = document.get("schemaVersion", SCHEMA_VERSION)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise StateError(f"The build endpoints file {self.path} has schema version {version!r}, which this "
                             f"acrtask does not understand ({SCHEMA_VERSION}).", "Upgrade acrtask.")
        found = []
        for name, data in (document.get("builders") or {}).items():
            try:
                found.append(Endpoint.from_dict({**data, "name": name}))
            except (AcrTaskError, KeyError, TypeError, ValueError) as exc:
                raise StateError(f"The build endpoints file {self.path} has a malformed endpoint {name!r}: {exc}",
                                 "Fix the entry by hand, or remove it with 'acrtask builder remove'.") from exc
        return found

    def add(self, endpoint: Endpoint) -> Endpoint:
        with self._locked() as endpoints:
            if any(e.name == endpoint.name for e in endpoints):
                raise ValidationError(f"The build endpoint '{endpoint.name}' already exists.",
                                      "Remove it first, or choose another name.")
            self._write([*endpoints, endpoint])
        return endpoint

    def remove(self, name: str) -> Endpoint:
        with self._locked() as endpoints:
            gone = next((e for e in endpoints if e.name == name), None)
            if gone is None:
                raise NotFoundError(f"The build endpoint '{name}' could not be found.",
                                    "Run 'acrtask builder list' to see the endpoints there are.")
            self._write([e for e in endpoints if e.name != name])
        return gone

    @contextmanager
    def _locked(self) -> Iterator[list[Endpoint]]:
        """The endpoints as they are under the writers' lock (re-read, so no writer loses another's change)."""
        with exclusive_lock(self.path.with_name(self.path.name + ".lock")):
            yield self.load()

    def _write(self, endpoints: list[Endpoint]) -> None:
        builders = {}
        for endpoint in endpoints:
            data = endpoint.to_dict()
            del data["name"]
            builders[endpoint.name] = data
        document = {"schemaVersion": SCHEMA_VERSION, "builders": builders}
        atomic_write(self.path, tomli_w.dumps(document).encode("utf-8"))

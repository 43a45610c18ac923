"""Run ids, the one place they are made and read: `ca1`, `ca2`, ... (az's form), numbered by the state
database's counter; and the tag a run's build processes carry in ACRTASK_RUN_ID, `<runs folder>:<run id>`
(ids repeat across homes, the folder does not)."""

from __future__ import annotations

PREFIX = "ca"


def run_id(number: int) -> str:
    return f"{PREFIX}{number}"


def run_number(text: str) -> int | None:
    """The number of run id `text`; None when it is not one (ASCII digits only: `ca²` is no id)."""
    digits = text[len(PREFIX):] if text.startswith(PREFIX) else ""
    return int(digits) if digits.isascii() and digits.isdigit() else None


def process_tag(runs_folder: str, run_id_text: str) -> str:
    """What the build processes of run `run_id_text` of the home whose runs live in `runs_folder` carry."""
    return f"{runs_folder}:{run_id_text}"


def run_id_of_tag(tag: str) -> str | None:
    """The run id in a process tag; None when `tag` is not one."""
    folder, colon, found = tag.rpartition(":")
    return found if colon and folder and run_number(found) is not None else None

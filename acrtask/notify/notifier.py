"""What watch tells the outside: the update-trigger POST of a task whose base image update queued a run,
and run events (triggered, succeeded, failed) for the global `acrtask notify` targets.

It is a watch observer: the loop calls it on its own thread, and it only builds bodies and hands them to
the Dispatcher, which sends them on threads of its own. So a slow, failing or absent receiver never delays
or fails a build.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from acrtask.errors import AcrTaskError
from acrtask.model import Task, UpdateTriggerPayloadType
from acrtask.notify import payloads
from acrtask.notify.delivery import Delivery, Dispatcher
from acrtask.notify.endpoints import redact
from acrtask.notify.store import NotifyStore
from acrtask.notify.targets import NotifyTarget, RunEvent
from acrtask.run_record import Run, TriggerKind
from acrtask.times import format_time
from acrtask.watch.observer import Observer

TOKEN_ENV = "ACRTASK_UPDATE_TRIGGER_TOKEN"  # the Token payload's bearer when a task stores none


class Notifier(Observer):
    def __init__(self, dispatcher: Dispatcher, store: NotifyStore | None, environ: Mapping[str, str],
                 log_line: Callable[[str], None], *, new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
                 now: Callable[[], str] = lambda: format_time(datetime.now(UTC))) -> None:
        self.dispatcher, self.store, self.environ, self.log_line = dispatcher, store, environ, log_line
        self.new_id, self.now = new_id, now
        self._targets: list[NotifyTarget] = []
        self._stamp: tuple[int, int, int] | None = None
        self._told: str | None = None

    def queued(self, task: Task, run: Run) -> None:
        base = task.trigger.base_image
        if run.trigger.kind is TriggerKind.BASE_IMAGE_UPDATE and base.update_trigger_endpoint:
            self._update_trigger(task, run, base.update_trigger_endpoint)
        self._run_event(run, RunEvent.TRIGGERED)

    def finished(self, run: Run) -> None:
        event = payloads.run_event(run, queued=False)
        if event is not None:
            self._run_event(run, event)

    def _update_trigger(self, task: Task, run: Run, url: str) -> None:
        base = task.trigger.base_image
        what = f"update trigger of {task.name} for run {run.run_id}"
        token = None
        if base.update_trigger_payload_type is UpdateTriggerPayloadType.TOKEN:
            token = base.update_trigger_token or self.environ.get(TOKEN_ENV) or None
            if token is None:
                self.dispatcher.sink.settled("update-trigger", "refused")
                self.log_line(f"ERROR: Not sending the {what} to {redact(url)}: its payload type is Token but it has "
                              f"no token. Set one with 'acrtask task update -n {task.name} --update-trigger-token "
                              f"...', or {TOKEN_ENV} in watch's environment.")
                return
        body = payloads.update_trigger(run, self.new_id(), self.now())
        self.dispatcher.submit(Delivery("update-trigger", what, url, body, token))

    def _run_event(self, run: Run, event: RunEvent) -> None:
        for target in self.targets():
            if event in target.events:
                body = payloads.run_notification(run, event, target.format, self.now())
                self.dispatcher.submit(Delivery("notify", f"{event} notice of run {run.run_id} for target "
                                                f"{target.name}", target.url, body))

    def targets(self) -> list[NotifyTarget]:
        """The global targets, read again when their file changed; a broken file keeps the last good list."""
        if self.store is None:
            return []
        stamp = self.store.stamp()
        if stamp != self._stamp:
            try:
                self._targets = self.store.all()
                self._stamp, self._told = stamp, None
            except AcrTaskError as exc:
                if str(exc) != self._told:
                    self.log_line(f"ERROR: {exc}")
                    self._told = str(exc)
        return self._targets

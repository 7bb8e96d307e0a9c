# SPDX-License-Identifier: GPL-2.0-or-later
"""A QgsTask that runs one CLI job in the background, with progress and cancel."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from qgis.core import QgsTask

from .backend import BackendError, Event, JobResult, run_job


class CliJobTask(QgsTask):
    """Runs ``rs-seg2any`` in the task manager's thread; ``finished`` reports on the GUI side.

    Cancel (the task manager's button, or ``cancel()``) sends SIGINT: the CLI saves its
    finished tiles and exits, and the same job run again resumes.
    """

    def __init__(
        self,
        description: str,
        cli: str | Path,
        args: Sequence[str],
        on_finished: Callable[[CliJobTask], None] | None = None,
    ) -> None:
        super().__init__(description, QgsTask.CanCancel)
        self.cli = str(cli)
        self.args = list(args)
        self.on_finished = on_finished
        self.result: JobResult | None = None
        self.stage = ""
        self.pid: int | None = None
        self.events: list[Event] = []
        self.percent = 0.0  # also readable after QGIS has deleted the finished C++ task

    def _started(self, proc: subprocess.Popen[str]) -> None:
        self.pid = proc.pid

    def _event(self, event: Event) -> None:
        self.events.append(event)
        kind = event.get("event")
        if kind == "stage":
            self.stage = str(event.get("stage", ""))
            self.percent = 0.0
            self.setProgress(0.0)
        elif kind == "progress":
            total = event.get("total") or 0
            done = event.get("done") or 0
            if total:
                self.percent = min(100.0, 100.0 * float(done) / float(total))
                self.setProgress(self.percent)

    def run(self) -> bool:
        """Worker thread: no GUI, no layers here (that happens in ``finished``)."""
        try:
            self.result = run_job(
                self.cli,
                self.args,
                on_event=self._event,
                is_canceled=self.isCanceled,
                on_start=self._started,
            )
        except BackendError as exc:
            self.result = JobResult(error_type="BackendError", error_message=str(exc))
            return False
        return self.result.ok

    def finished(self, result: bool) -> None:
        """GUI thread: hand the outcome to whoever started the job."""
        if self.result is None:  # cancelled before it started
            self.result = JobResult(cancelled=True, error_type="Cancelled",
                                    error_message="cancelled before it started")  # fmt: skip
        if self.on_finished is not None:
            self.on_finished(self)

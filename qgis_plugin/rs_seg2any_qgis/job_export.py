# SPDX-License-Identifier: GPL-2.0-or-later
"""*Export job file…*: a dialog's settings saved as a job file a server runs headless."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.PyQt.QtWidgets import QDialogButtonBox, QFileDialog

from .jobs import write_job_file


class JobExport:
    """Mixin for the Generate and scenario dialogs: ``add_export_button`` and ``export_job``.

    The dialog provides ``bar``, ``schema``, ``problems()``, ``spec()`` and
    ``export_inputs(spec, folder)`` (file-less layers written where the CLI can read them).
    """

    bar: Any
    schema: Any

    def add_export_button(self, buttons: QDialogButtonBox) -> None:
        export = buttons.addButton("Export job file…", QDialogButtonBox.ActionRole)
        export.setToolTip("Save these settings as a job file to run elsewhere: rs-seg2any run FILE")
        export.clicked.connect(lambda: self.export_job())

    def export_job(self, path: Path | None = None) -> Path | None:
        """Save the form as a job file (asking where, unless ``path`` is given), for a
        server or a Dask cluster; file-less layers are exported next to it. The dialog stays
        open. Returns the file, or None when there was a problem (shown in the bar)."""
        self.bar.clearWidgets()
        problems = self.problems()
        if problems:
            self.bar.pushWarning("Cannot export yet", "; ".join(problems))
            return None
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(
                self,
                "Job file",
                "job.yaml",
                "YAML (*.yaml)",
            )
            if not chosen:
                return None
            path = Path(chosen)
        spec = self.spec()
        try:
            self.export_inputs(spec, path.parent / "input")
            if self.schema is None:
                raise ValueError("no rs-seg2any backend schema")
            written = write_job_file(path, spec.to_job(self.schema))
        except (OSError, ValueError) as exc:
            self.bar.pushCritical("Cannot export the job file", str(exc))
            return None
        self.bar.pushSuccess("Job file saved", f"{written}: run it with rs-seg2any run")
        return written

# SPDX-License-Identifier: GPL-2.0-or-later
"""Generic form rows for the options a dialog does not lay out by hand, from the schema.

Every option the backend's command has and the dialog's own sections do not set gets a
widget chosen by its schema type (switch, choice, number, path, text), in a collapsed
"More options" group: a newer backend's options appear without a plugin release.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qgis.gui import QgsCollapsibleGroupBox, QgsFileWidget
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLineEdit, QWidget

from .cli_schema import Argument, CliSchema, number_text

#: options the plugin always sets itself (the folder it watches, JSON progress for the bar)
PLUGIN_SET = ("out", "progress")
LIST_SEPARATOR = ";"


class SchemaOptionsBox(QgsCollapsibleGroupBox):
    """One row per option of ``command`` not in ``shown``, in the schema's order."""

    def __init__(
        self,
        schema: CliSchema,
        command: str,
        shown: Iterable[str],
        remembered: Any,
        title: str = "More options",
    ) -> None:
        super().__init__(title)
        self.remembered = remembered
        self.setCollapsed(True)
        self.setToolTip("Every other option of 'rs-seg2any " + command + "', as the backend "
                        "describes it; empty fields leave the backend's default")  # fmt: skip
        form = QFormLayout(self)
        skip = {*shown, *PLUGIN_SET}
        self.rows: dict[str, tuple[Argument, QWidget]] = {}
        for arg in schema.arguments(command):
            if arg.positional or arg.dest in skip:
                continue
            widget = _widget(arg)
            widget.setObjectName(f"more_{arg.dest}")
            widget.setToolTip(_tip(arg))
            form.addRow(arg.label, widget)
            self.rows[arg.dest] = (arg, widget)

    def widget(self, dest: str) -> QWidget:
        return self.rows[dest][1]

    def values(self) -> dict[str, Any]:
        """The options set in the form, by dest (ValueError for a bad number)."""
        found: dict[str, Any] = {}
        for dest, (arg, widget) in self.rows.items():
            value = _value(arg, widget)
            if not (value is None or value is False or value in ("", [])):  # 0 is a value
                found[dest] = value
        return found

    def problems(self) -> list[str]:
        found = []
        for arg, widget in self.rows.values():
            try:
                _value(arg, widget)
            except ValueError as exc:
                found.append(f"{arg.label}: {exc}")
        return found

    def restore(self) -> None:
        for dest, (arg, widget) in self.rows.items():
            _set_text(arg, widget, self.remembered.str(f"more/{dest}"))

    def remember(self) -> None:
        self.remembered.put(
            {f"more/{dest}": _text(arg, widget) for dest, (arg, widget) in self.rows.items()}
        )


def _tip(arg: Argument) -> str:
    default = arg.default
    if arg.type == "bool" or default in (None, "", []):
        return f"{arg.flag}: {arg.help}"
    shown = ",".join(map(str, default)) if isinstance(default, list) else number_text(default)
    return f"{arg.flag}: {arg.help} (default: {shown})"


def _widget(arg: Argument) -> QWidget:
    if arg.type == "bool":
        return QCheckBox()
    if arg.type == "choice":
        combo = QComboBox()
        default = "" if arg.default is None else f" ({arg.default})"
        combo.addItem(f"default{default}", None)
        for choice in arg.choices or ():
            combo.addItem(choice, choice)
        return combo
    if arg.type == "path" and not arg.repeatable:
        picker = QgsFileWidget()
        picker.setStorageMode(QgsFileWidget.GetFile)
        return picker
    edit = QLineEdit()
    hint = f"{LIST_SEPARATOR}-separated, " if arg.repeatable else ""
    if arg.default not in (None, "", []):
        edit.setPlaceholderText(f"{hint}default: {number_text(arg.default)}")
    elif hint:
        edit.setPlaceholderText(f"optional, {hint.rstrip(', ')}")
    else:
        edit.setPlaceholderText("optional")
    return edit


def _text(arg: Argument, widget: QWidget) -> str:
    if isinstance(widget, QCheckBox):
        return "1" if widget.isChecked() else ""
    if isinstance(widget, QComboBox):
        return widget.currentData() or ""
    if isinstance(widget, QgsFileWidget):
        return widget.filePath().strip()
    assert isinstance(widget, QLineEdit)
    return widget.text().strip()


def _set_text(arg: Argument, widget: QWidget, text: str) -> None:
    if isinstance(widget, QCheckBox):
        widget.setChecked(text == "1")
    elif isinstance(widget, QComboBox):
        widget.setCurrentIndex(max(0, widget.findData(text or None)))
    elif isinstance(widget, QgsFileWidget):
        widget.setFilePath(text)
    elif isinstance(widget, QLineEdit):
        widget.setText(text)


def _value(arg: Argument, widget: QWidget) -> Any:
    """The widget's value as the spec takes it: bool, str, int, float or a list of str."""
    text = _text(arg, widget)
    if arg.type == "bool":
        return text == "1"
    if not text:
        return None
    if arg.repeatable:
        return [part.strip() for part in text.split(LIST_SEPARATOR) if part.strip()]
    if arg.type == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"'{text}' is not a whole number") from None
    if arg.type == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"'{text}' is not a number") from None
    return text

# SPDX-License-Identifier: GPL-2.0-or-later
"""The scenario dialogs: Flood, Planning zones, Seasons, Change pair, Cloud fill, Damage
pair and Detection dataset.

One base class (``base``) holds what they share (base image or layout, target grid,
generator, output; validation, remembered values, exporting file-less layers); each
scenario adds one group of its own and fills its part of the ``ScenarioSpec``. Like the
Generate dialog they are modeless and hand the job to the plugin, which runs it as a
background task.
"""

from __future__ import annotations

from .base import ScenarioDialog
from .change import ChangeDialog
from .cloudfill import CloudfillDialog
from .damage import DamageDialog
from .detection import DetectionDialog
from .flood import FloodDialog
from .planning import PlanDialog
from .seasons import SeasonsDialog

DIALOGS: dict[str, type[ScenarioDialog]] = {
    "flood": FloodDialog,
    "planning": PlanDialog,
    "seasons": SeasonsDialog,
    "change": ChangeDialog,
    "cloudfill": CloudfillDialog,
    "damage": DamageDialog,
    "detection": DetectionDialog,
}

__all__ = [
    "DIALOGS",
    "ChangeDialog",
    "CloudfillDialog",
    "DamageDialog",
    "DetectionDialog",
    "FloodDialog",
    "PlanDialog",
    "ScenarioDialog",
    "SeasonsDialog",
]

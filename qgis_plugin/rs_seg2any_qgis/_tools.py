# SPDX-License-Identifier: GPL-2.0-or-later
"""qgis-plugin-tools (1.x) for logging, settings and resource paths.

`make plugin` bundles it inside the plugin package (QGIS users have no pip); in a
development or test environment it is the pip-installed package.
"""

from __future__ import annotations

try:  # bundled in the installable zip
    from .qgis_plugin_tools.tools import custom_logging, messages, resources, settings
except ImportError:  # pip-installed (development, tests)
    from qgis_plugin_tools.tools import (  # type: ignore[no-redef]
        custom_logging,
        messages,
        resources,
        settings,
    )

__all__ = ["custom_logging", "messages", "resources", "settings"]

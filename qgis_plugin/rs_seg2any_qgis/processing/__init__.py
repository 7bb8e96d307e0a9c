# SPDX-License-Identifier: GPL-2.0-or-later
"""The rs_seg2any Processing provider."""

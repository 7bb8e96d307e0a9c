"""The embedded CPU generator: a compact Seg2Any-style flow-matching transformer.

Needs the ``model`` extra; importing any part of it without torch is a typed error that
names the extra, raised here because every submodule goes through this package first.
"""

from ...deps import require

require("torch", "model", user="the tiny backend")
require("safetensors", "model", user="the tiny backend")

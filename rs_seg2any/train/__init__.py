"""Training: datasets from (image, mask) pairs and the base-model training loop.

Needs the ``model`` extra; checked here, before any submodule imports torch.
"""

from ..deps import require

require("torch", "model", user="training")
require("safetensors", "model", user="training")

"""LoRA adaptation of the generators to a user's own imagery and polygons.

``params`` (the typed options, light), ``data`` (training pairs on each image's own grid,
masked), ``adapter`` (peft safetensors layout, card, untrusted-file checks, combining),
``tiny`` (CPU trainer of the embedded model), ``flux`` (GPU trainer), ``bands`` (band
adapters for non-RGB imagery), ``evaluate`` (validation grid and scores), ``runtime``
(``--lora`` at generation time) and ``train`` (the ``train-lora`` entry point).
"""

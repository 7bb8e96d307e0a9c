"""Generator backends (one sub-package per backend)."""

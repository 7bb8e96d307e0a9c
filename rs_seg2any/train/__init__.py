"""Training: datasets from (image, mask) pairs and the base-model training loop."""

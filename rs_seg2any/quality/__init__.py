"""Image-quality measures of generated imagery (seams, realism), shared by tests and benches."""

"""The job core: tile plans, resumable job folders (lock, tiles, manifest), tiled rendering
and streaming assembly of the outputs. Data flows one way: a plan cuts the grid into tiles,
a renderer fills each tile, the job folder keeps finished tiles and the assembly streams them
into GeoTIFFs (``tiling`` -> ``jobdir`` -> ``runner`` / ``generate_job``)."""

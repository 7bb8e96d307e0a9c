"""The embedded CPU generator: a compact Seg2Any-style flow-matching transformer."""

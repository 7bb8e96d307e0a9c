"""Shipped YAML configuration for rs_seg2any: taxonomies, scenario presets and job files.

This is a data package: it exists so that the YAML files install with the library and can be
located with ``importlib.resources`` whether rs_seg2any is installed from a wheel or in
editable mode.
"""

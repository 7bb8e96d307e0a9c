"""Detection training sets: object instances on a scene grid, cut into chips, exported in the
formats detector trainers read (COCO, YOLO, DOTA, GeoJSON/GeoPackage), with spatial splits,
rare-object insertion, a filter report and a STAC catalog.

The modules, in the order data flows: :mod:`.instances` (objects -> instance map),
:mod:`.geometry` (boxes, oriented boxes, outlines, RLE), :mod:`.chips` (windows, visibility,
splits), :mod:`.formats` and :mod:`.vector` (writers), :mod:`.export` (one pass over the
chips), :mod:`.insert` (rare objects), :mod:`.report`, :mod:`.stac`, :mod:`.build` (the verb).
"""

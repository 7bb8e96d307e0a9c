"""Scenarios on the layout -> condition -> generator -> outputs flow: floods, planning zones,
seasons, bi-temporal change pairs and cloud-gap filling. Each edits only inside a mask."""

"""Which bank class paints a layout class the bank does not have, read from its words.

The shipped bank holds Dubai's six classes; a user's taxonomy names its own ("forest",
"cropland", "built-up"). Painting every unknown class as the bank's dominant surface (sand)
loses what the layout says, so each one borrows the texture of the bank class its name and
description read as, by word stems: "tree cover: dense tree canopy" reads as vegetation,
"built-up" as building, "bare / sparse vegetation: bare soil, sand or rock" as land (the name
counts twice, then the description breaks ties). Its descriptions then steer the colour
relative to the *borrowed* class's default description (:mod:`.steer`): "brown muddy flood
water covering the ground" reads as land and is painted as brown, muddy sand, not as the
bank's (near-black) Dubai water. Stems are plain data here: extend them freely.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

STEMS: dict[str, tuple[str, ...]] = {
    "building": ("build", "house", "roof", "residen", "industr", "urban", "artificial",
                 "settlement", "commercial", "construct"),
    "road": ("road", "street", "highway", "motorway", "track", "rail", "parking", "paved",
             "asphalt", "runway", "pavement"),
    "vegetation": ("vegetat", "tree", "forest", "wood", "grass", "meadow", "crop", "cultiv",
                   "agricult", "field", "orchard", "vineyard", "shrub", "bush", "park", "lawn",
                   "pasture", "wetland", "marsh", "mangrove", "moss", "lichen", "plant",
                   "canopy", "garden", "farm", "herbaceous", "palm"),
    "water": ("water", "river", "lake", "sea", "ocean", "pond", "reservoir", "canal", "lagoon",
              "stream", "coast", "bay"),
    "land": ("land", "bare", "sand", "soil", "desert", "rock", "barren", "dune", "gravel",
             "dirt", "snow", "ice", "tundra", "quarry", "mine", "mud", "flood", "turbid",
             "ground"),
}  # fmt: skip
"""Bank class name -> word stems that read as it."""


def _score(text: str, stems: tuple[str, ...]) -> int:
    words = re.findall(r"[a-z]+", text.lower())
    return sum(1 for w in words if w.startswith(stems))


def stand_in(name: str, description: str, bank_names: Mapping[int, str]) -> int | None:
    """The bank class id whose stems the layout class's name (x2) and description hit most,
    or None when no word is known (the caller falls back to the bank's dominant class)."""
    best: tuple[int, int] | None = None
    for cid, bank_name in sorted(bank_names.items()):
        stems = STEMS.get(bank_name.lower())
        if not stems:
            continue
        score = 2 * _score(name, stems) + _score(description, stems)
        if score and (best is None or score > best[0]):
            best = (score, cid)
    return None if best is None else best[1]

"""Hand-written paraphrases of the Dubai classes and caption templates.

Training on many wordings of each class (instead of one fixed string) is what lets a user's
free-text description land near a class the model has learned, through the sentence encoder.
"""

from __future__ import annotations

import random

CLASS_NAMES: dict[int, str] = {
    1: "building",
    2: "land",
    3: "road",
    4: "vegetation",
    5: "water",
    6: "unlabeled",
}

PARAPHRASES: dict[int, tuple[str, ...]] = {
    1: (
        "building",
        "rooftops of buildings seen from above",
        "flat concrete roofs with rooftop equipment and shadows",
        "a house roof",
        "built-up area, roofs of houses and offices",
        "a large warehouse roof",
        "residential buildings from an aerial view",
        "white and grey rooftops casting shadows",
    ),
    2: (
        "land",
        "unpaved bare sandy land",
        "beige desert ground",
        "bare soil without vegetation",
        "sand and dirt, an empty plot",
        "unpaved area, dusty open ground",
        "desert sand seen from above",
        "vacant land with tyre tracks",
    ),
    3: (
        "road",
        "asphalt roads with lane markings",
        "a paved street",
        "a highway seen from above",
        "grey asphalt with white road markings",
        "a road with cars",
        "streets and intersections",
        "a parking lot and access road",
    ),
    4: (
        "vegetation",
        "green vegetation, trees, palms and irrigated lawns",
        "trees seen from above",
        "a park with grass",
        "palm trees and shrubs",
        "irrigated green lawn",
        "dense green tree canopy",
        "gardens and hedges",
    ),
    5: (
        "water",
        "water surface, sea or canal, blue to turquoise",
        "the sea",
        "a canal with calm water",
        "turquoise shallow sea water",
        "a lake",
        "deep blue water",
        "a marina basin",
    ),
    6: (
        "unlabeled",
        "unlabeled area",
        "unknown surface",
        "unclassified ground",
        "an area without a label",
        "mixed surface",
        "miscellaneous ground",
        "other",
    ),
}

CAPTION_TEMPLATES: tuple[str, ...] = (
    "aerial image of an arid city with {classes}",
    "top-down aerial photograph showing {classes}",
    "high resolution aerial view: {classes}",
    "an orthophoto of a desert city, {classes}",
)


def describe(class_id: int, rng: random.Random | None = None) -> str:
    """A description of a class: random paraphrase, or the first (canonical) one."""
    options = PARAPHRASES[class_id]
    return options[0] if rng is None else rng.choice(options)


def caption(class_ids: list[int], rng: random.Random | None = None) -> str:
    """Global caption listing the classes present, most common first."""
    names = [CLASS_NAMES[c] for c in class_ids] or ["open ground"]
    template = CAPTION_TEMPLATES[0] if rng is None else rng.choice(CAPTION_TEMPLATES)
    return template.format(classes=", ".join(names))

"""Taxonomies: shipped files load, values resolve like users write them, bad YAML fails clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from rs_seg2any.errors import TaxonomyError
from rs_seg2any.taxonomy import (
    BACKGROUND_ID,
    BACKGROUND_NAME,
    load_taxonomy,
    parse_colour,
    shipped_taxonomies,
    taxonomy_from_mapping,
    unknown_values,
)

GOOD_YAML = """\
name: my_classes
title: My own classes
classes:
  - id: 3
    name: Orchard
    colour: "#00FF00"
    priority: 7
    description: rows of fruit trees
    aliases: [fruit trees, Vineyard]
  - id: 9
    name: parking
    color: [10, 20, 30]
"""


@pytest.mark.parametrize("name", shipped_taxonomies())
def test_every_shipped_taxonomy_loads_with_unique_ids_and_names(name: str) -> None:
    tax = load_taxonomy(name)
    assert tax.name == name
    assert len(set(tax.ids)) == len(tax.ids)
    assert all(1 <= i <= 255 for i in tax.ids)
    for c in tax.classes:
        # every class resolves from its own name and aliases, whatever the case
        assert tax.resolve(c.name.upper()) == c.id
        for alias in c.aliases:
            assert tax.resolve(alias.title()) == c.id
        assert c.description.strip()
        assert all(0 <= v <= 255 for v in c.colour)
    names = tax.names_by_id()
    assert names[BACKGROUND_ID] == BACKGROUND_NAME
    assert set(names) == {BACKGROUND_ID, *tax.ids}


def test_the_three_documented_taxonomies_ship() -> None:
    assert {"worldcover", "eolearn_slovenia", "dubai_aerial"} <= set(shipped_taxonomies())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Schrubland", 4),  # the data set's own spelling, via an alias
        ("shrubland", 4),
        ("FOREST", 2),
        ("  Snow_And   Ice ", 10),  # case, underscores and runs of spaces are normalised
        ("artificial surface", 8),
        (4, 4),
        (4.0, 4),
        ("5", 5),
        ("marsland", None),
        (11, None),  # a number that is not a class id
        (0, None),  # 0 is 'no polygon', never a class
        (2.5, None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_resolve_by_name_alias_or_id(value: object, expected: int | None) -> None:
    assert load_taxonomy("eolearn_slovenia").resolve(value) == expected


def test_unknown_values_lists_distinct_unresolvable_values_sorted() -> None:
    tax = load_taxonomy("eolearn_slovenia")
    values = ["forest", "marsland", "Marsland", "marsland", None, 3, 42]
    assert unknown_values(tax, values) == ["42", "Marsland", "None", "marsland"]


def test_user_yaml_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD_YAML, encoding="utf-8")
    tax = load_taxonomy(path)
    assert tax.name == "my_classes"
    assert tax.ids == (3, 9)
    orchard = tax.by_id(3)
    assert orchard.colour == (0, 255, 0)
    assert orchard.priority == 7
    assert orchard.description == "rows of fruit trees"
    assert tax.resolve("vineyard") == 3
    # 'color' spelling accepted; description defaults to the name
    parking = tax.by_id(9)
    assert parking.colour == (10, 20, 30)
    assert parking.description == "parking"
    # a str path works too, and the dict form round-trips
    again = load_taxonomy(str(path))
    assert taxonomy_from_mapping(again.to_dict()).classes == tax.classes


def test_taxonomy_name_defaults_to_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "farm_types.yml"
    path.write_text("classes:\n  - {id: 1, name: wheat}\n", encoding="utf-8")
    assert load_taxonomy(path).name == "farm_types"


def test_unknown_shipped_name_lists_the_shipped_ones() -> None:
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy("corine")
    assert "unknown taxonomy 'corine'" in str(err.value)
    for name in shipped_taxonomies():
        assert name in str(err.value)


def test_missing_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match=r"taxonomy file '.*absent\.yaml' not found"):
        load_taxonomy(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("classes: [\n  - id: 1\n", "is not valid YAML"),
        ("- id: 1\n  name: a\n", "expected a mapping with a 'classes' list"),
        ("name: x\n", "expected a mapping with a 'classes' list"),
        ("classes: {id: 1, name: a}\n", "'classes' must be a list"),
        ("classes: []\n", "defines no classes"),
        ("classes:\n  - {id: 1, name: a}\n  - {id: 1, name: b}\n", "class id 1 is used twice"),
        ("classes:\n  - {id: 0, name: nothing}\n", "0 is reserved"),
        ("classes:\n  - {id: 256, name: big}\n", "ids must be 1..255"),
        ("classes:\n  - {id: one, name: a}\n", "class id 'one' is not an integer"),
        ("classes:\n  - {name: a}\n", "lacks id"),
        ("classes:\n  - {id: 1, name: a, colour: '#GG0000'}\n", "colour '#GG0000'"),
        ("classes:\n  - {id: 1, name: a, colour: [1, 2, 300]}\n", "colour [1, 2, 300]"),
        ("classes:\n  - {id: 1, name: a, colour: [1, 2, x]}\n", "colour [1, 2, 'x']"),
        ("classes:\n  - {id: 1, name: a, aliases: b}\n", "aliases of class 'a' must be a list"),
        ("classes:\n  - {id: 1, name: a, priority: high}\n", "priority 'high' of class 'a'"),
        ("classes:\n  - forest\n  - water\n", "class entry 'forest' is not a mapping"),
        (
            "classes:\n  - {id: 1, name: Water}\n  - {id: 2, name: lake, aliases: [water]}\n",
            "'water' is used by two classes",
        ),
    ],
)
def test_malformed_yaml_raises_taxonomy_error_naming_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy(path)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("value", "rgb"),
    [("#1a2B3c", (0x1A, 0x2B, 0x3C)), ("FF0000", (255, 0, 0)), ([0, 128, 255], (0, 128, 255))],
)
def test_parse_colour_accepts_hex_and_triplets(value: object, rgb: tuple[int, int, int]) -> None:
    assert parse_colour(value) == rgb


@pytest.mark.parametrize("value", ["red", "#FFF", [1, 2], (1, 2, -1), None, 0xFF0000])
def test_parse_colour_rejects_everything_else(value: object) -> None:
    with pytest.raises(TaxonomyError, match="neither '#RRGGBB' nor"):
        parse_colour(value)

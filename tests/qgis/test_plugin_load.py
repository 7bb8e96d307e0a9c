"""The plugin loads in real QGIS: toolbar, menu actions, Processing provider, settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import QgsApplication

ENABLED = ("generate", "flood", "planning", "seasons", "change", "cloudfill", "damage",
           "detection", "settings")  # fmt: skip
COMING: tuple[str, ...] = ()
ALGORITHMS = ("rasterise_layout", "generate_imagery", "flood", "planning_zones", "seasons",
              "change_pair", "cloud_fill", "damage_pair", "detection_set")  # fmt: skip


def test_class_factory_and_init_gui_create_every_action(plugin: Any) -> None:
    assert set(plugin.actions) == {*ENABLED, *COMING}
    toolbar_actions = plugin.toolbar.actions()
    for key, action in plugin.actions.items():
        assert action in toolbar_actions, key
        assert not action.icon().isNull(), key


def test_actions_without_a_backend_yet_are_visibly_disabled(plugin: Any) -> None:
    for key in ENABLED:
        assert plugin.actions[key].isEnabled(), key
    for key in COMING:
        action = plugin.actions[key]
        assert not action.isEnabled(), key
        assert action.isVisible(), key
        assert "Coming with" in action.toolTip(), key


def test_processing_provider_registers_every_algorithm(plugin: Any) -> None:
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("rs_seg2any")
    assert provider is not None
    assert {alg.name() for alg in provider.algorithms()} == set(ALGORITHMS)
    for alg_id in ("rs_seg2any:rasterise_layout", "rs_seg2any:generate_imagery"):
        alg = registry.algorithmById(alg_id)
        assert alg is not None, alg_id
        names = {p.name() for p in alg.parameterDefinitions()}
        assert {"INPUT", "CLASS_FIELD", "TAXONOMY", "RESOLUTION", "CRS", "EXTENT", "LIKE",
                "OUTPUT"} <= names  # fmt: skip
    generate = registry.algorithmById("rs_seg2any:generate_imagery")
    assert {"SEED", "STEPS", "MODEL"} <= {p.name() for p in generate.parameterDefinitions()}


def test_processing_registers_the_scenarios(plugin: Any) -> None:
    registry = QgsApplication.processingRegistry()
    own = {
        "flood": {"IMAGE", "FLOOD_POLYGONS", "DEM", "LEVEL", "SEED_XY", "DEM_RESAMPLE"},
        "planning_zones": {"IMAGE", "ZONES", "ZONE_DESCRIPTION_FIELD", "ZONE_CLASS_FIELD"},
        "seasons": {"SEASONS"},
        "change_pair": {"RECIPE", "PARAMS", "PAIRS", "ROLES", "AFTER"},
        "cloud_fill": {"IMAGE", "CLOUDS"},
        "damage_pair": {
            "IMAGE",
            "DISASTER",
            "DAMAGE_LAYER",
            "LEVEL_FIELD",
            "TYPE_FIELD",
            "ORIGIN",
            "PARAMS",
        },
        "detection_set": {
            "IMAGE",
            "OBJECTS",
            "OBJECT_CLASS_FIELD",
            "OBJECT_DESCRIPTION_FIELD",
            "CHIP_SIZE",
            "CHIP_STRIDE",
            "MIN_VISIBLE",
            "FORMATS",
            "SEGMENTATION",
            "SPLIT_BLOCK",
            "INSERT_COUNT",
        },
    }
    outputs = {"flood": {"BEFORE", "IMAGE", "LABEL", "FLOOD_MASK", "FLOOD_DEPTH"},
               "planning_zones": {"BEFORE", "IMAGE", "LABEL"},
               "seasons": {"SPRING_IMAGE", "WINTER_LABEL"},
               "change_pair": {"T1_IMAGE", "T2_IMAGE", "CHANGE_MASK", "CHANGE_FROMTO"},
               "cloud_fill": {"IMAGE", "LABEL"},
               "damage_pair": {"BEFORE", "IMAGE", "LABEL", "DAMAGE_LEVEL"},
               "detection_set": {"BOXES", "ORIENTED_BOXES", "INSTANCES", "COCO_TRAIN",
                                 "REPORT"}}  # fmt: skip
    for name, params in own.items():
        alg = registry.algorithmById(f"rs_seg2any:{name}")
        assert alg is not None, name
        assert alg.group() == "Scenarios"
        names = {p.name() for p in alg.parameterDefinitions()}
        shared = {"INPUT", "CLASS_FIELD", "TAXONOMY", "SEED", "STEPS", "MODEL", "OUTPUT"}
        grid = {"RESOLUTION", "EXTENT"} if name != "cloud_fill" else set()  # the image's grid
        assert params | shared | grid <= names, name
        assert ("RESOLUTION" in names) == (name != "cloud_fill"), name
        assert outputs[name] <= {o.name() for o in alg.outputDefinitions()}, name
        assert alg.shortHelpString()


def test_unload_removes_actions_and_provider(qgis_iface: Any, cli: Path) -> None:
    import rs_seg2any_qgis

    instance = rs_seg2any_qgis.classFactory(qgis_iface)
    instance.initGui()
    instance.unload()
    assert instance.actions == {}
    assert QgsApplication.processingRegistry().providerById("rs_seg2any") is None


def test_settings_check_reports_backend_versions(plugin: Any, cli: Path) -> None:
    dialog = plugin.show_settings()
    dialog.cli.setFilePath(str(cli))
    text = dialog.check()
    assert "rs-seg2any 0." in text
    assert "torch" in text and "python 3." in text
    dialog.cli.setFilePath("/bin/false")  # exists, but is no backend
    assert dialog.check().startswith("Not working")
    dialog.close()


def fake_backend_wheel(folder: Path) -> Path:
    """A minimal wheel whose only content is an `rs-seg2any` command printing a version."""
    import zipfile

    wheel = folder / "rs_seg2any-0.0.1-py3-none-any.whl"
    info = "rs_seg2any-0.0.1.dist-info"
    files = {
        "fake_rs_seg2any.py": "def main():\n    print('rs-seg2any 0.0.1')\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: rs-seg2any\nVersion: 0.0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{info}/entry_points.txt": "[console_scripts]\nrs-seg2any = fake_rs_seg2any:main\n",
    }
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr(
            f"{info}/RECORD", "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n"
        )
    return wheel


def test_settings_create_environment_installs_a_backend(
    plugin: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """The helper makes a venv and pip-installs a package that provides `rs-seg2any`.

    A stand-in wheel (offline: no index) keeps this fast; the real backend installs the
    same way from the rs_seg2any source folder or its wheel.
    """
    from conftest import wait_for

    monkeypatch.setenv("PIP_NO_INDEX", "1")
    dialog = plugin.show_settings()
    dialog.create_environment(str(tmp_path / "env"), str(fake_backend_wheel(tmp_path)))
    assert not dialog.create_button.isEnabled()  # one at a time
    wait_for(lambda: dialog.create_button.isEnabled(), timeout=300)
    assert dialog.cli.filePath() == str(tmp_path / "env" / "bin" / "rs-seg2any"), (
        dialog.check_result.text()
    )
    assert "rs-seg2any 0.0.1" in dialog.check_result.text()
    dialog.close()

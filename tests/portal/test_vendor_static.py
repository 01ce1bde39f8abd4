"""ECharts, WeUI and htmx come from npm (package.json) and are served as vendor/… static files: those three only."""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.staticfiles import finders
from django.core.checks import run_checks
from django.core.management import call_command

from portal.staticfiles import VENDOR_FILES

BASE = Path(__file__).resolve().parents[2]
SERVED = ["vendor/echarts.min.js", "vendor/htmx.min.js", "vendor/weui.min.css"]


def _check_ids(tags=("staticfiles",)) -> dict[str, object]:
    return {message.id: message for message in run_checks(tags=list(tags)) if message.id.startswith("xiaoer.")}


def test_each_front_end_file_is_served_from_node_modules_under_vendor():
    for path in SERVED:
        found = finders.find(path)
        assert found and Path(found).is_relative_to(BASE / "node_modules"), path


def test_nothing_else_of_node_modules_is_served():
    for path in ["vendor/echarts.js", "vendor/package.json", "vendor/../echarts/package.json",
                 "echarts/dist/echarts.min.js", "vendor/echarts/dist/echarts.min.js", "vendor/"]:
        assert not finders.find(path), path


def test_the_served_versions_are_the_ones_package_json_pins():
    wanted = json.loads((BASE / "package.json").read_text())["dependencies"]
    for package, version in wanted.items():
        installed = json.loads((BASE / "node_modules" / package / "package.json").read_text())["version"]
        assert installed == version, package
    assert {source.split("/")[0] for source in VENDOR_FILES.values()} == set(wanted)


def test_collectstatic_gathers_the_three_vendor_files_for_production(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", "--no-input", verbosity=0)

    assert sorted(p.name for p in (tmp_path / "vendor").iterdir()) == sorted(Path(p).name for p in SERVED)
    assert (tmp_path / "vendor" / "echarts.min.js").stat().st_size > 500_000
    assert (tmp_path / "xiaoer" / "chart.js").is_file()


def test_the_system_check_passes_with_node_modules_installed():
    assert not {"xiaoer.E020", "xiaoer.E021"} & _check_ids().keys()


def test_startup_stops_without_node_modules_and_says_to_run_make_install(settings, tmp_path):
    settings.XIAOER_NODE_MODULES = tmp_path / "node_modules"

    problem = _check_ids()["xiaoer.E020"]

    assert problem.is_serious() and str(tmp_path / "node_modules") in problem.msg
    assert "make install" in problem.hint
    assert not finders.find("vendor/echarts.min.js")


def test_an_incomplete_node_modules_names_the_missing_file(settings, tmp_path):
    for source in VENDOR_FILES.values():
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_text("/* */")
    (tmp_path / VENDOR_FILES["weui.min.css"]).unlink()
    settings.XIAOER_NODE_MODULES = tmp_path

    problem = _check_ids()["xiaoer.E021"]

    assert "weui/dist/style/weui.min.css" in problem.msg and "make install" in problem.hint
    assert "xiaoer.E020" not in _check_ids()

"""One rule for where livefuse finds its shipped data and keeps the user's: override variables and defaults."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from livefuse import paths
from livefuse.engine.registry import Registry
from livefuse.presets import available_presets, preset_dirs

ROOT = Path(__file__).resolve().parents[1]
LINUX_ONLY = pytest.mark.skipif(sys.platform != "linux", reason="the XDG folders are Linux's")
VARIABLES = (
    "LIVEFUSE_CONFIG_DIR",
    "LIVEFUSE_DATA_DIR",
    "LIVEFUSE_CACHE_DIR",
    "LIVEFUSE_MODELS_DIR",
    "LIVEFUSE_RECORDINGS_DIR",
    "LIVEFUSE_PRESETS",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
)


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_a_checkout_reads_its_own_presets_and_models_folders() -> None:
    assert not paths.PACKAGE_DATA.exists()  # only a built wheel has livefuse/_data
    assert paths.shipped_presets_dir() == ROOT / "presets"
    assert paths.shipped_models_dir() == ROOT / "models"


def test_package_data_wins_over_the_folder_beside_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "_data" / "presets").mkdir(parents=True)
    monkeypatch.setattr(paths, "PACKAGE_DATA", tmp_path / "_data")
    assert paths.shipped_presets_dir() == tmp_path / "_data" / "presets"
    assert paths.shipped_models_dir() == paths.PACKAGE.parent / "models"  # no packaged models: the checkout's


@LINUX_ONLY
def test_the_platform_folders_by_default(home: Path) -> None:
    assert paths.user_presets_dir() == home / ".config" / "livefuse" / "presets"
    assert paths.models_dir() == home / ".local" / "share" / "livefuse" / "models"
    assert paths.engine_cache_dir() == home / ".cache" / "livefuse" / "engine"
    assert paths.recordings_dir() == home / ".local" / "share" / "livefuse" / "recordings"
    assert Registry().models_dir == paths.models_dir()
    assert preset_dirs() == [paths.user_presets_dir(), ROOT / "presets"]


def test_each_folder_has_its_override(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEFUSE_CONFIG_DIR", str(home / "c"))
    monkeypatch.setenv("LIVEFUSE_CACHE_DIR", str(home / "k"))
    monkeypatch.setenv("LIVEFUSE_DATA_DIR", str(home / "d"))
    assert paths.user_presets_dir() == home / "c" / "presets"
    assert paths.engine_cache_dir() == home / "k" / "engine"
    assert paths.models_dir() == home / "d" / "models"
    assert paths.recordings_dir() == home / "d" / "recordings"
    monkeypatch.setenv("LIVEFUSE_MODELS_DIR", str(home / "m"))
    monkeypatch.setenv("LIVEFUSE_RECORDINGS_DIR", "~/rec")
    assert paths.models_dir() == home / "m"
    assert paths.recordings_dir() == home / "rec"


def test_user_presets_shadow_shipped_ones_and_extra_folders_shadow_both(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = paths.user_presets_dir()
    mine.mkdir(parents=True)
    (mine / "passthrough.toml").write_text('name = "passthrough"\ndescription = "mine"\n')
    (mine / "own.toml").write_text('name = "own"\ndescription = "mine"\n')
    found = available_presets()
    assert found["passthrough"] == mine / "passthrough.toml" and found["own"] == mine / "own.toml"
    assert found["anonymise"] == ROOT / "presets" / "anonymise.toml"
    extra = home / "extra"
    extra.mkdir()
    (extra / "own.toml").write_text('name = "own"\ndescription = "extra"\n')
    monkeypatch.setenv("LIVEFUSE_PRESETS", str(extra))
    assert available_presets()["own"] == extra / "own.toml"


@LINUX_ONLY
def test_models_pulled_into_the_old_cache_folder_stay_in_use(home: Path) -> None:
    legacy = home / ".cache" / "livefuse" / "models"
    legacy.mkdir(parents=True)
    assert paths.models_dir() == legacy
    (home / ".local" / "share" / "livefuse" / "models").mkdir(parents=True)
    assert paths.models_dir() == home / ".local" / "share" / "livefuse" / "models"

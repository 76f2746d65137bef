"""Presets: lookup, validation with messages naming the file, key and what is allowed, and chain building."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from livefuse.errors import PresetError
from livefuse.frame import Frame
from livefuse.presets import (
    available_presets,
    load_preset,
    parse_preset,
    resolve_preset,
    validate_params,
)
from livefuse.stage import Param, Stage, StageContext, StageSpec
from livefuse.stages.registry import STAGES, register, stage_types
from livefuse.wiring import build_chain


class Tint(Stage):
    """A test stage: adds `amount` to one colour channel."""

    closed: ClassVar[list[str]] = []

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        if params["channel"] == "explode":
            raise RuntimeError("cannot build")
        self.name = "test-tint"
        self.params = dict(params)

    def process(self, frame: Frame) -> None:
        frame.meta.setdefault("tints", []).append(self.params["amount"])

    def update(self, params: dict[str, Any]) -> None:
        self.params.update(params)

    def close(self) -> None:
        Tint.closed.append(self.params["channel"])


SPEC = StageSpec(
    "test-tint",
    "tint (tests only)",
    (
        Param("amount", int, 10, min=0, max=255),
        Param("strength", float, 0.5, min=0.0, max=1.0),
        Param("channel", str, "blue", choices=("blue", "green", "red", "explode")),
        Param("enabled", bool, True),
        Param("points", list, [], live=False),
        Param("picture", str, "", kind="file", max_length=200),
    ),
    Tint,
)


@pytest.fixture(autouse=True)
def tint_stage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    stage_types()  # import the shipped stage modules first, so registering ours cannot clash later
    register(SPEC)
    Tint.closed = []
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIVEFUSE_PRESETS", raising=False)
    try:
        yield
    finally:
        STAGES.pop(SPEC.type, None)


def parse(text: str) -> Any:
    return parse_preset(text, Path("my.toml"))


def test_a_valid_preset_gets_defaults_and_unique_labels() -> None:
    preset = parse(
        'name = "n"\ndescription = "d"\n[[stages]]\ntype = "test-tint"\namount = 3\n'
        '[[stages]]\ntype = "test-tint"\nstrength = 1\n'
    )
    assert (preset.name, preset.description) == ("n", "d")
    assert [c.label for c in preset.stages] == ["test-tint", "test-tint#2"]
    assert preset.stages[0].params == {
        "amount": 3,
        "strength": 0.5,
        "channel": "blue",
        "enabled": True,
        "points": [],
        "picture": "",
    }
    strength = preset.stages[1].params["strength"]
    assert strength == 1.0 and isinstance(strength, float)  # an integer in TOML where a number is expected


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        ('name = "x"\n[[stages]\n', ("my.toml", "malformed TOML")),
        ('colour = "red"\n', ("unknown top-level key 'colour'",)),
        ('stages = "background"\n', ("array of tables",)),
        ("[[stages]]\namount = 3\n", ("stages[1]", "missing key 'type'", "test-tint")),
        ('[[stages]]\ntype = "teleport"\n', ("stages[1]", "unknown stage type 'teleport'", "test-tint")),
        ('[[stages]]\ntype = "test-tint"\namount = 300\n', ("amount = 300", "out of range", "from 0 to 255")),
        ('[[stages]]\ntype = "test-tint"\nstrength = -0.1\n', ("strength = -0.1", "out of range")),
        ('[[stages]]\ntype = "test-tint"\namount = 2.5\n', ("amount = 2.5", "an integer")),
        ('[[stages]]\ntype = "test-tint"\namount = true\n', ("amount = True", "not allowed")),
        ('[[stages]]\ntype = "test-tint"\nchannel = "pink"\n', ("channel = 'pink'", "one of 'blue'")),
        ('[[stages]]\ntype = "test-tint"\nenabled = "yes"\n', ("enabled = 'yes'", "true or false")),
        ('[[stages]]\ntype = "test-tint"\npoints = 3\n', ("points = 3", "a list")),
        ('[[stages]]\ntype = "test-tint"\ncolor = 3\n', ("unknown key 'color'", "allowed: amount, strength")),
        ('[[stages]]\ntype = "test-tint"\n[[stages]]\ntype = "test-tint"\namount = -1\n', ("stages[2]",)),
        # non-finite and out-of-reach numbers, over-long strings, odd list items: every one names stage and key
        (
            '[[stages]]\ntype = "test-tint"\nstrength = nan\n',
            ("stages[1] (test-tint)", "strength = nan", "a finite number from 0 to 1"),
        ),
        ('[[stages]]\ntype = "test-tint"\nstrength = -inf\n', ("strength = -inf", "not allowed")),
        ('[[stages]]\ntype = "test-tint"\namount = inf\n', ("amount = inf", "an integer")),
        (
            '[[stages]]\ntype = "test-tint"\npicture = "' + "x" * 201 + '"\n',
            ("picture = 'xxx", "at most 200 characters"),
        ),
        ('[[stages]]\ntype = "test-tint"\npoints = [{ x = 1 }]\n', ("points = [{'x': 1}]", "a list of at most")),
        ('[[stages]]\ntype = "test-tint"\npoints = [nan]\n', ("points = [nan]",)),
        ("name = 3\n", ("name = 3", "a string")),
    ],
)
def test_mistakes_name_the_file_key_and_what_is_allowed(text: str, phrases: tuple[str, ...]) -> None:
    with pytest.raises(PresetError) as caught:
        parse(text)
    for phrase in phrases:
        assert phrase in str(caught.value), str(caught.value)


def test_live_updates_are_checked_too() -> None:
    assert validate_params(SPEC, {"amount": 7}, "stage x", partial=True, live_only=True) == {"amount": 7}
    with pytest.raises(PresetError, match="cannot change while streaming"):
        validate_params(SPEC, {"points": [1]}, "stage x", partial=True, live_only=True)
    with pytest.raises(PresetError, match="out of range"):
        validate_params(SPEC, {"amount": 256}, "stage x", partial=True, live_only=True)


def test_out_of_range_numbers_never_reach_a_stage() -> None:
    for value in (float("nan"), float("inf"), -float("inf"), 10**400, 1e308, True, None, "0.5", [0.5]):
        with pytest.raises(PresetError) as caught:
            validate_params(SPEC, {"strength": value}, "stage test-tint", partial=True, live_only=True)
        assert "stage test-tint: strength = " in str(caught.value) and "from 0 to 1" in str(caught.value)
        assert len(str(caught.value)) < 200
    assert validate_params(SPEC, {"amount": 2.0}, "s", partial=True) == {"amount": 2}


def test_over_the_api_a_file_must_lie_inside_the_preset_folder(tmp_path: Path) -> None:
    root = tmp_path / "presets"
    (root / "pictures").mkdir(parents=True)
    (root / "pictures" / "beach.jpg").write_bytes(b"x")
    (root / "out").symlink_to(tmp_path)  # a link inside the folder that leads out of it
    (tmp_path / "secret.txt").write_text("s")

    def api(value: str) -> dict[str, Any]:
        return validate_params(SPEC, {"picture": value}, "stage test-tint", partial=True, files_under=root)

    assert api("pictures/beach.jpg") == {"picture": "pictures/beach.jpg"}
    assert api("pictures/missing.jpg") == {"picture": "pictures/missing.jpg"}  # inside: the stage says "no such file"
    assert api("") == {"picture": ""}
    messages = set()
    for value in (
        "../secret.txt",
        "../missing.txt",
        "../../../../etc/shadow",
        "../../../../etc/no-such",
        str(tmp_path / "secret.txt"),
        str(tmp_path / "missing"),
        "~/secret.txt",
        "out/secret.txt",
        "out/missing.txt",
        "pictures/../../secret.txt",
        "..\\secret.txt",
        "C:\\Windows\\win.ini",
    ):
        with pytest.raises(PresetError) as caught:
            api(value)
        messages.add(str(caught.value).replace(repr(value), "VALUE"))
    # one answer for all of them, whether the file exists or not: nothing outside can be probed
    assert len(messages) == 1, messages
    assert "inside the preset's folder" in messages.pop()
    # a preset file on disk is the user's own: it may name a file anywhere (the check is the API's)
    preset = parse('[[stages]]\ntype = "test-tint"\npicture = "/etc/hostname"\n')
    assert preset.stages[0].params["picture"] == "/etc/hostname"


def test_names_resolve_through_the_preset_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = available_presets()
    assert "passthrough" in shipped
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "passthrough.toml").write_text('name = "my passthrough"\nstages = []\n')
    (mine / "tinted.toml").write_text('[[stages]]\ntype = "test-tint"\n')
    monkeypatch.setenv("LIVEFUSE_PRESETS", str(mine))
    assert resolve_preset("passthrough") == mine / "passthrough.toml"  # the user's folder shadows the shipped
    assert load_preset("tinted").name == "tinted"  # named after its file when it has no name
    assert load_preset(str(mine / "tinted.toml")).stages[0].type == "test-tint"
    with pytest.raises(PresetError, match=r"unknown preset 'tinte'.*passthrough.*tinted"):
        resolve_preset("tinte")


def test_every_shipped_preset_is_valid() -> None:
    presets = available_presets()
    assert presets
    for name, path in presets.items():
        preset = load_preset(str(path))
        assert preset.name, name
        for config in preset.stages:
            assert config.type in stage_types()


def test_build_chain_runs_the_stages_and_closes_them_if_one_fails() -> None:
    context = StageContext(engine=None, size=(64, 48), fps=30.0)  # type: ignore[arg-type]  # test stages need none
    preset = parse(
        'name = "two"\n[[stages]]\ntype = "test-tint"\namount = 1\n'
        '[[stages]]\ntype = "test-tint"\namount = 2\nchannel = "red"\n'
    )
    chain = build_chain(preset, context)
    assert chain.name == "two" and [label for label, _ in chain.stages] == ["test-tint", "test-tint#2"]
    assert chain.stages[1][1].params["channel"] == "red"  # type: ignore[attr-defined]
    frame = Frame(seq=0, capture_ns=0, image=np.zeros((48, 64, 3), np.uint8))
    chain.run(frame, chain.admit())
    assert frame.meta["tints"] == [1, 2]
    chain.update("test-tint", {"amount": 9})
    assert chain.stages[0][1].params["amount"] == 9  # type: ignore
    with pytest.raises(KeyError):
        chain.update("test-tint#3", {"amount": 9})
    chain.close()
    assert Tint.closed == ["blue", "red"]

    Tint.closed = []
    broken = parse('[[stages]]\ntype = "test-tint"\n[[stages]]\ntype = "test-tint"\nchannel = "explode"\n')
    with pytest.raises(RuntimeError, match="cannot build"):
        build_chain(broken, context)
    assert Tint.closed == ["blue"]  # the stage already built was released

"""tools/commit_msg.py, the commit-msg hook: good messages pass, each kind of bad one is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from commit_msg import MAX_SUBJECT, main, problems  # noqa: E402 - tools/, as test_loop_priority takes it


@pytest.mark.parametrize(
    "message",
    [
        "web: close idle sessions\n",
        "privacy scan: a mirrored border of 10 % beside the frame\n\nThe figures: 0 of 1980 frames.\n",
        "stages/face: one tracker a face\n\nWhy, in the body.\nMore body.\n",
        "engine: " + "x" * (MAX_SUBJECT - len("engine: ")) + "\n",
        "tests: a subject\n# Please enter the commit message for your changes.\n#\n",
        "docs: scissors\n\nbody\n# ------------------------ >8 ------------------------\nanything at all here\n",
        "Merge branch 'wt-c'\n",
        'Revert "web: close idle sessions"\n\nThis reverts commit 46e0ebf.\n',
    ],
)
def test_good_messages_pass(message: str) -> None:
    assert problems(message) == []


@pytest.mark.parametrize(
    ("message", "word"),
    [
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("web: " + "y" * MAX_SUBJECT + "\n", "characters"),
        ("close idle sessions\n", "form"),
        ("web:close idle sessions\n", "form"),
        (": no area\n", "form"),
        ("this area has far too many words: change\n", "form"),
        ("web: close idle sessions\nbody right under the subject\n", "blank"),
    ],
)
def test_bad_messages_are_named(message: str, word: str) -> None:
    found = problems(message)
    assert len(found) == 1
    assert word in found[0]


def test_a_long_subject_off_form_reports_both() -> None:
    assert len(problems("z" * 100 + "\nbody\n")) == 3


def test_the_hook_exits_1_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad, good = tmp_path / "bad", tmp_path / "good"
    bad.write_text("no form here\n", encoding="utf-8")
    good.write_text("tools: a commit-msg hook\n", encoding="utf-8")
    assert main([str(good)]) == 0
    assert main([str(bad)]) == 1
    assert "area: change" in capsys.readouterr().err


def test_it_runs_as_a_script(tmp_path: Path) -> None:
    message = tmp_path / "COMMIT_EDITMSG"
    message.write_text("Fixed stuff\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "commit_msg.py"), str(message)], capture_output=True, text=True
    )
    assert run.returncode == 1
    assert "commit-msg:" in run.stderr

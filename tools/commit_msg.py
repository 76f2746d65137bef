#!/usr/bin/env python3
"""Check a commit message: an "area: change" subject of at most 72 characters, then a blank line, then the body.

As git's commit-msg hook (`make hooks` installs it): `tools/commit_msg.py MESSAGE_FILE`, exits 1 and says why.
`tools/commit_msg.py --log [REV_RANGE]` reports the subjects of existing commits against the same rules.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from pathlib import Path

MAX_SUBJECT = 72
# One to four words naming the area ("web", "privacy scan", "stages/face"), a colon, then the change.
SUBJECT_FORM = re.compile(r"^[\w./*{},-]+(?: [\w./*{},-]+){0,3}: \S")
# Messages git writes itself, which keep git's own form.
GIT_FORMS = ("Merge ", "Revert ", "fixup! ", "squash! ", "amend! ")
SCISSORS = "# ------------------------ >8 ------------------------"


def message_lines(text: str) -> list[str]:
    """The message as git will store it: comments and everything below the scissors line dropped."""
    lines: list[str] = []
    for line in text.splitlines():
        if line == SCISSORS:
            break
        if not line.startswith("#"):
            lines.append(line.rstrip())
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def problems(text: str) -> list[str]:
    """What is wrong with a commit message; empty when it passes."""
    lines = message_lines(text)
    if not lines:
        return ["the message is empty"]
    subject = lines[0]
    found = []
    if len(subject) > MAX_SUBJECT:
        found.append(f"the subject is {len(subject)} characters; keep it to {MAX_SUBJECT} and put the rest in the body")
    if not subject.startswith(GIT_FORMS) and not SUBJECT_FORM.match(subject):
        found.append('the subject is not in the "area: change" form, e.g. "web: close idle sessions"')
    if len(lines) > 1 and lines[1]:
        found.append("the second line must be blank: it separates the subject from the body")
    return found


def log_report(rev_range: str = "HEAD") -> str:
    """Subject lengths and forms of the commits in rev_range."""
    out = subprocess.run(["git", "log", "--format=%s", rev_range], check=True, capture_output=True, text=True)
    subjects = out.stdout.splitlines()
    if not subjects:
        return "no commits"
    lengths = [len(s) for s in subjects]
    too_long = sum(n > MAX_SUBJECT for n in lengths)
    off_form = sum(not s.startswith(GIT_FORMS) and not SUBJECT_FORM.match(s) for s in subjects)
    return (
        f"{len(subjects)} commits: subject median {statistics.median(lengths):g} characters, longest "
        f'{max(lengths)}; {too_long} over {MAX_SUBJECT}; {off_form} not in the "area: change" form'
    )


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--log":
        print(log_report(argv[1] if len(argv) > 1 else "HEAD"))
        return 0
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    found = problems(Path(argv[0]).read_text(encoding="utf-8"))
    for problem in found:
        print(f"commit-msg: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

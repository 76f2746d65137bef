"""Which model version each session uses: the release state a repository keeps per model.

The state lives in the model's `config.pbtxt` as the parameter `livefuse_release` (JSON), so every
daemon reads it from Triton itself (`get_model_config`), wherever the repository is stored, and a
rollback reaches all of them within one poll. A session's share bucket is a hash of its id, so the
same sessions stay on the candidate for the whole release.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from livefuse.errors import UserError

PARAMETER = "livefuse_release"


def share_bucket(session_id: str) -> float:
    """A stable number in [0, 100) for a session id: the session gets the candidate when it is < share."""
    digest = hashlib.sha256(session_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10000 / 100


def parse_share(text: str) -> float:
    """'10%', '10' or '0.5%' -> percent; a UserError for anything outside 0..100."""
    raw = text.strip().removesuffix("%")
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"--share {text!r}: give a percentage such as 10%") from None
    if not 0 <= value <= 100:
        raise UserError(f"--share {text!r}: it must be from 0% to 100%")
    return value


@dataclass
class ReleaseState:
    """The served versions of one model, and who gets which."""

    current: int
    candidate: int | None = None
    share: float = 0.0  # percent of sessions on the candidate
    history: list[int] = field(default_factory=list)  # earlier current versions, newest last
    retired: int | None = None  # rolled back or replaced: still served, so lagging daemons finish on it
    labels: dict[int, str] = field(default_factory=dict)  # Triton version -> manifest name@version (or file)
    sha256: dict[int, str] = field(default_factory=dict)  # Triton version -> SHA-256 of its model.onnx

    def version_for(self, session_id: str) -> int:
        if self.candidate is not None and share_bucket(session_id) < self.share:
            return self.candidate
        return self.current

    def served(self) -> list[int]:
        """The versions Triton must keep loaded (its `version_policy`)."""
        return sorted({v for v in (self.current, self.candidate, self.retired) if v is not None})

    def release(self, version: int, label: str, sha256: str, share: float) -> None:
        """Add `version`: to `share` percent of the sessions, or to everyone at 100 %."""
        self.labels[version] = label
        self.sha256[version] = sha256
        if self.candidate is not None:
            self.retired = self.candidate
        if share >= 100:
            self.history.append(self.current)
            self.retired = self.current
            self.current, self.candidate, self.share = version, None, 0.0
        else:
            self.candidate, self.share = version, share

    def rollback(self, name: str) -> int:
        """Everyone back on the version before: drop the candidate, or return to the previous current."""
        if self.candidate is not None:
            self.retired, self.candidate, self.share = self.candidate, None, 0.0
            return self.current
        if not self.history:
            raise UserError(f"{name}: nothing to roll back to (version {self.current} is the only one released)")
        self.retired, self.current = self.current, self.history.pop()
        return self.current

    def to_json(self) -> str:
        return json.dumps(
            {
                "current": self.current,
                "candidate": self.candidate,
                "share": self.share,
                "history": self.history,
                "retired": self.retired,
                "labels": {str(k): v for k, v in self.labels.items()},
                "sha256": {str(k): v for k, v in self.sha256.items()},
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> ReleaseState:
        data = json.loads(text)
        return cls(
            current=int(data["current"]),
            candidate=None if data.get("candidate") is None else int(data["candidate"]),
            share=float(data.get("share", 0.0)),
            history=[int(v) for v in data.get("history", [])],
            retired=None if data.get("retired") is None else int(data["retired"]),
            labels={int(k): str(v) for k, v in data.get("labels", {}).items()},
            sha256={int(k): str(v) for k, v in data.get("sha256", {}).items()},
        )

"""Which execution provider to try next: the order, what failed and why, remembered for an engine's life.

One `ProviderChoice` is shared by every session of an engine: a provider that failed once (to load,
or at run time) is skipped by the sessions made after it, silently, and the reason is kept for the
one log line and for status. The CPU provider is never given up.
"""

from __future__ import annotations

import re

from livefuse.engine import providers as prov

# What onnxruntime prints on stdout when it put a session on another provider than asked.
_EP_ERROR = re.compile(r"^EP Error:? ([^*].*?)(?: when using \[|$)", re.M)


class ProviderChoice:
    """The providers to try, in order, and the memory of which failed and why."""

    def __init__(self, requested: str = "auto", listed: list[str] | None = None) -> None:
        self.requested = requested
        self.listed = prov.available() if listed is None else list(listed)
        self.order = prov.order_from(requested, self.listed)  # a UserError for an unknown/unlisted provider
        self.current = self.order[0]  # what sessions really got last
        self._failed: dict[str, str] = {}
        self._printed: dict[str, str] = {}  # what onnxruntime printed when a provider fell back

    def candidates(self) -> list[str]:
        """The order without the providers that failed (the CPU is always kept)."""
        return [p for p in self.order if p not in self._failed or p == prov.CPU]

    def after(self, provider: str) -> list[str]:
        """What to try once `provider` failed at run time: the candidates after it, else the CPU."""
        rest = self.candidates()
        rest = rest[rest.index(provider) + 1 :] if provider in rest else []
        return rest or [prov.CPU]

    def fail(self, provider: str, why: str) -> None:
        """Remember that `provider` failed, and why; sessions made from now on skip it."""
        if provider != prov.CPU:
            self._failed[provider] = why

    def succeeded(self, provider: str) -> None:
        self.current = provider

    def note_printed(self, provider: str, printed: str) -> None:
        """Keep the reason in onnxruntime's own fallback notice (its stdout) for the log line."""
        match = _EP_ERROR.search(printed)
        if match:
            self._printed[provider] = match.group(1).split(" void ")[-1].split(") ", 1)[-1].strip()

    def fell_back_reason(self, provider: str) -> str:
        """Why onnxruntime put a session for `provider` on the CPU: its notice, else why the library fails."""
        return self._printed.pop(provider, "") or prov.load_failure(provider)

    def failures(self) -> dict[str, str]:
        """Provider -> why it failed, for status and tests."""
        return dict(self._failed)

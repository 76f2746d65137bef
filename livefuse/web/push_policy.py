"""What a push added over the API may be: only to destinations the operator allowed (`--allow-push`
patterns, none by default), and with no protocol option that binds, listens or floods (`localport`,
`listen`, `mode=listener`...): a caller must not turn the daemon into a port scanner or a relay."""

from __future__ import annotations

import fnmatch
from urllib.parse import parse_qsl

from livefuse.sinks.options import OPTION_NAMES

# protocol keys an API push may carry (SRT's caller settings, UDP's datagram size); anything else is refused
SAFE_PROTOCOL_KEYS = frozenset({"pkt_size", "streamid", "passphrase", "pbkeylen", "latency"})


def push_refusal(url: str, allowed: tuple[str, ...]) -> str | None:
    """Why the API may not push to `url` (None: it may)."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        return "a push URL may not contain spaces or control characters"
    base, _, query = url.partition("?")
    if not allowed:
        return (
            "pushes over the API are off: the operator allows destinations with --allow-push PATTERN "
            "(e.g. --allow-push 'rtmp://live.example.com/app/*')"
        )
    if not any(fnmatch.fnmatchcase(base, pattern) for pattern in allowed):
        return "this destination is not allowed: the operator's --allow-push patterns list the allowed ones"
    for key, _ in parse_qsl(query, keep_blank_values=True):
        if key not in OPTION_NAMES and key not in SAFE_PROTOCOL_KEYS:
            return (
                f"push option {key!r} is not allowed over the API: give quality options ("
                f"{', '.join(OPTION_NAMES)}) or {', '.join(sorted(SAFE_PROTOCOL_KEYS))}"
            )
    return None

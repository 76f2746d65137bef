"""ICE servers the operator configures (`--ice-server stun:stun.example.net:3478`, or
`turn:USER:PASS@turn.example.net:3478?transport=udp`): used by the daemon's own peer connections and
given to WHIP/WHEP clients in `Link` headers (RFC 9725 §4.6)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiortc import RTCIceServer

from livefuse.errors import UserError

_SERVER = re.compile(r"^(stuns?|turns?):(?:([^:@\s]+):([^@\s]+)@)?([^\s@\"<>]+)$")


@dataclass(frozen=True)
class IceServer:
    url: str
    username: str | None = None
    credential: str | None = None

    def link(self) -> str:
        text = f'<{self.url}>; rel="ice-server"'
        if self.username is not None:
            text += f'; username="{self.username}"; credential="{self.credential}"; credential-type="password"'
        return text

    def rtc(self) -> RTCIceServer:
        return RTCIceServer(urls=self.url, username=self.username, credential=self.credential)


def parse_ice_server(text: str) -> IceServer:
    match = _SERVER.match(text)
    if match is None or (match[2] and not match[1].startswith("turn")) or '"' in text:
        raise UserError(
            f"--ice-server {text!r}: expected stun:HOST[:PORT] or turn:[USER:PASS@]HOST[:PORT][?transport=udp|tcp]"
        )
    scheme, user, password, rest = match.groups()
    return IceServer(f"{scheme}:{rest}", user, password)

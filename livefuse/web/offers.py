"""A caller's SDP offer, bounded and parsed off the event loop before aiortc sees it.

The offer is checked line by line for its size (media sections, candidates), then parsed in a worker thread
by aiortc's own parser. The text handed on to aiortc carries that parse, and aiortc's `setRemoteDescription`
takes it instead of parsing again on the loop: no decode of caller data runs there.
"""

from __future__ import annotations

from typing import Any

from aiortc import sdp

MAX_M_SECTIONS = 8  # a browser's offer has 2 or 3 (video, audio, data): aiortc builds a transceiver for each
MAX_CANDIDATES = 50  # per peer, in its offer and trickled: each one is a target aiortc sends STUN checks to


class BadOffer(ValueError):
    """The offer cannot be answered (malformed SDP, or no video where one is needed)."""


class ParsedOffer(str):
    """An offer's SDP text, with aiortc's parse of it and its candidates counted (made by `parse_offer`)."""

    parsed: sdp.SessionDescription
    candidates: int


def check_offer(text: str) -> int:
    """The offer's candidates, counted; BadOffer when it has more media sections or candidates than a client
    needs (600 m-sections in one offer took aiortc seconds of the loop, and 1.2 GB for 15 such offers)."""
    sections = candidates = 0
    for line in text.splitlines():
        if line.startswith("m="):
            sections += 1
        elif line.startswith("a=candidate:"):
            candidates += 1
    if sections > MAX_M_SECTIONS:
        raise BadOffer(f"the offer has {sections} media sections (m=): at most {MAX_M_SECTIONS} are accepted")
    if candidates > MAX_CANDIDATES:
        raise BadOffer(f"the offer has {candidates} candidates: at most {MAX_CANDIDATES} per session are accepted")
    return candidates


def parse_offer(text: str) -> ParsedOffer:
    """`text` checked and parsed (in a worker thread: it is the caller's); BadOffer naming what is wrong."""
    candidates = check_offer(text)
    try:
        parsed = _aiortc_parse(text)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise BadOffer(f"malformed offer: {exc}") from exc
    offer = ParsedOffer(text)
    offer.parsed, offer.candidates = parsed, candidates
    return offer


_aiortc_parse = sdp.SessionDescription.parse


def _parse_once(cls: type[sdp.SessionDescription], text: str) -> Any:
    """aiortc's parse, skipped for an offer `parse_offer` parsed already (each parse is used once)."""
    return text.parsed if isinstance(text, ParsedOffer) else _aiortc_parse(text)


sdp.SessionDescription.parse = classmethod(_parse_once)  # type: ignore[method-assign, assignment]

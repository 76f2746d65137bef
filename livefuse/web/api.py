"""The JSON control API: status, preset switching, live parameters, the face-swap source image.

A change applies to the daemon's own pipeline; each session (camera peer) has a preset of its own,
changed through /api/sessions/<id> with the same checks (`preset_name`, `params_request`,
`apply_preset`, `apply_params`). Bad input is answered 4xx with a message that says what is wrong;
it never reaches a stage. `livefuse serve` has no stream of its own: there, the daemon's preset
cannot be read or changed, and the status describes the server and its sessions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import cv2
import numpy as np
from aiohttp import BodyPartReader, web

from livefuse.audio.denoise import AUDIO_FILTERS, offered
from livefuse.errors import UserError
from livefuse.presets import Preset, available_presets, shown
from livefuse.runtime import Runtime
from livefuse.stage import Param
from livefuse.web.connections import BODY_TIMEOUT_S
from livefuse.web.image_header import MAX_PIXELS, image_size
from livefuse.web.offers import BadOffer
from livefuse.web.sessions import SessionRunner, Sessions
from livefuse.web.signalling import NoSuchSession, PeerLimit, Peers

log = logging.getLogger("livefuse.web")

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_SDP_CHARS = 64 * 1024  # a browser's offer is a few kB
TOO_LARGE = f"image too large: at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB"
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/bmp"})


def param_spec(param: Param) -> dict[str, Any]:
    """A parameter as the page needs it to draw a control."""
    return {
        "name": param.name,
        "type": param.type.__name__,
        "default": param.default,
        "help": param.help,
        "min": param.min,
        "max": param.max,
        "choices": list(param.choices) if param.choices else None,
        "live": param.live,
        "kind": param.kind,
        "max_length": param.max_length,
        "items": list(param.items) if param.items is not None else None,
        "length": param.length,
    }


def describe_preset(preset: Preset) -> dict[str, Any]:
    return {
        "name": preset.name,
        "description": preset.description,
        "stages": [
            {"type": c.type, "label": c.label, "params": c.params, "specs": [param_spec(p) for p in c.spec.params]}
            for c in preset.stages
        ],
    }


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or Infinity); send a finite number")


def error_text(exc: BaseException, limit: int = 300) -> str:
    """An exception's message for a client: its first line, cut short (an offer or body may be huge)."""
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def strict_json(text: str) -> Any:
    """`json.loads` without Python's extensions: the NaN and Infinity literals are refused.

    A number too large for a float (1e999) still parses, as infinity: the parameter checks refuse it
    and name the key.
    """
    return json.loads(text, parse_constant=_no_constant)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or a 400 saying why not."""
    try:
        body = await request.json(loads=strict_json)
    except (ValueError, UnicodeDecodeError, LookupError, RecursionError) as exc:  # LookupError: bad charset
        raise json_error(f"malformed JSON: {error_text(exc)}") from exc
    if not isinstance(body, dict):
        raise json_error("expected a JSON object")
    if has_lone_surrogate(body):
        raise json_error(
            "malformed JSON: a string holds a lone surrogate (\\ud800-\\udfff alone), which is not Unicode text"
        )
    return body


def has_lone_surrogate(value: Any) -> bool:
    """True when a string in `value` (JSON-like, however nested) has a UTF-16 surrogate that pairs with nothing."""
    if isinstance(value, str):
        return not value.isascii() and any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    return False


def json_error(message: str, error: type[web.HTTPException] = web.HTTPBadRequest, **kwargs: Any) -> web.HTTPException:
    """An HTTP error to raise, with the same JSON body as `bad_request`'s."""
    return error(text=json.dumps({"error": message}), content_type="application/json", **kwargs)


def bad_request(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def preset_name(body: dict[str, Any]) -> str:
    """The preset a `{"name": ...}` body asks for, or a 400/404 to raise."""
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise json_error('expected {"name": "<preset name>"}')
    if name not in available_presets():
        raise json_error(f"unknown preset {shown(name)}; available: {', '.join(available_presets())}", web.HTTPNotFound)
    return name


def params_request(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The stage and parameters a `{"stage": ..., "params": {...}}` body names, or a 400 to raise."""
    stage, params = body.get("stage"), body.get("params")
    if not isinstance(stage, str) or not isinstance(params, dict):
        raise json_error('expected {"stage": "<label>", "params": {"<name>": <value>, ...}}')
    return stage, params


async def apply_preset(runtime: Runtime, name: str) -> None:
    """Switch one runtime's preset (its swap stages get the source face given earlier); a preset that cannot
    be built is a 400 to raise."""
    try:
        await runtime.switch_preset(name)
    except UserError as exc:
        raise json_error(str(exc)) from exc


async def apply_params(runtime: Runtime, stage: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validate and apply live parameters to one runtime's stage; its new values, or a 400 to raise."""
    try:
        return await runtime.update_params(stage, params)
    except UserError as exc:
        raise json_error(str(exc)) from exc
    except KeyError as exc:
        raise json_error(str(exc.args[0])) from exc


class Api:
    """Handlers bound to one server: the daemon's runtime (None: `livefuse serve`), its peers and sessions."""

    def __init__(self, main: Runtime | None, peers: Peers, sessions: Sessions, runner: SessionRunner) -> None:
        self.main = main
        self.peers = peers
        self.sessions = sessions
        self.runner = runner
        self._decoding = asyncio.Semaphore(1)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/status", self.status),
            web.get("/api/preset", self.get_preset),
            web.put("/api/preset", self.put_preset),
            web.patch("/api/preset/params", self.patch_params),
            web.put("/api/audio-filter", self.put_audio_filter),
            web.post("/api/source-face", self.post_source_face),
            web.post("/api/offer", self.post_offer),
            web.delete("/api/peers/{peer}", self.delete_peer),
            web.get("/healthz", self.healthz),
        ]

    def runtimes(self) -> list[Runtime]:
        return [*([self.main] if self.main is not None else []), *self.sessions.runtimes()]

    def _main(self) -> Runtime:
        if self.main is None:
            raise json_error(
                "this server runs sessions only (livefuse serve): a session's preset is at /api/sessions/<id>/preset",
                web.HTTPNotFound,
            )
        return self.main

    async def status(self, request: web.Request) -> web.Response:
        if self.main is not None:
            body = self.main.status()
            body["preset_info"] = describe_preset(self.main.preset)
        else:
            served = self.runner.served
            body = {
                "session_id": served.engine.session_id,
                "provider": served.engine.provider,
                "preset": served.preset().name,
                "size": list(served.size),
                "fps": served.fps,
                "sessions": len(list(self.sessions)),
            }
        body["presets"] = list(available_presets())
        body["audio_filters"] = offered()  # those whose package is installed
        body["peers"] = [peer.describe() for peer in self.peers.peers.values()]
        body["max_peers"] = self.peers.max_peers
        return web.json_response(body)

    async def get_preset(self, request: web.Request) -> web.Response:
        return web.json_response(describe_preset(self._main().preset))

    async def put_preset(self, request: web.Request) -> web.Response:
        main = self._main()
        name = preset_name(await read_json(request))
        await apply_preset(main, name)
        log.info("preset switched to %s", name)
        return web.json_response(describe_preset(main.preset))

    async def patch_params(self, request: web.Request) -> web.Response:
        main = self._main()
        stage, params = params_request(await read_json(request))
        updated = await apply_params(main, stage, params)
        return web.json_response({"stage": stage, "params": updated})

    async def put_audio_filter(self, request: web.Request) -> web.Response:
        """`{"filter": "denoise"}`: the filter on the daemon's sound, switched live (the page's sound menu); a
        suppressor whose package is missing is a 400 saying what to install."""
        main = self._main()
        name = (await read_json(request)).get("filter")
        if not isinstance(name, str):
            raise json_error(f'expected {{"filter": "<{"|".join(AUDIO_FILTERS)}>"}}')
        try:
            await main.switch_audio_filter(name)
        except UserError as exc:
            raise json_error(str(exc)) from exc
        log.info("audio filter switched to %s", name)
        return web.json_response({"audio_filter": name})

    async def post_source_face(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
            return bad_request(TOO_LARGE, 413)
        data, content_type = await self._read_upload(request)
        if content_type not in IMAGE_TYPES:
            return bad_request(f"unsupported type {content_type!r}; send one of {', '.join(sorted(IMAGE_TYPES))}", 415)
        header = image_size(data)
        if header is None:
            return bad_request("the upload does not decode as an image: its header is not a PNG, JPEG, WebP or BMP one")
        _, width, height = header
        if width * height > MAX_PIXELS:
            return bad_request(
                f"image of {width}x{height} pixels is too large: at most "
                f"{MAX_PIXELS // 2**20} megapixels (e.g. 4096x4096)",
                413,
            )
        async with self._decoding:  # one at a time, off the loop: a 16 MP decode takes a while and 48 MB
            image = await asyncio.get_running_loop().run_in_executor(
                None, lambda: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            )
        if image is None:
            return bad_request("the upload does not decode as an image")
        self.runner.source_face = image  # for sessions still to come
        applied: list[str] = []
        for runtime in self.runtimes():
            try:
                applied += await runtime.set_source_face(image)
            except UserError as exc:
                raise json_error(str(exc)) from exc
        return web.json_response({"width": image.shape[1], "height": image.shape[0], "applied_to": applied})

    async def _read_upload(self, request: web.Request) -> tuple[bytes, str]:
        """The image bytes and their declared type: a multipart `image` field or a raw body, size-capped."""
        if not request.content_type.startswith("multipart/"):
            return await request.read(), request.content_type  # capped by the app's client_max_size (413)
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                return await self._read_form(request)
        except TimeoutError as exc:
            raise json_error(f"the upload took more than {BODY_TIMEOUT_S:g} s", web.HTTPRequestTimeout) from exc
        except (ValueError, AssertionError, LookupError, UnicodeDecodeError) as exc:  # aiohttp's parser refusing it
            raise json_error(f"malformed multipart form: {error_text(exc)}") from exc

    async def _read_form(self, request: web.Request) -> tuple[bytes, str]:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name != "image":
                continue
            data = bytearray()
            while chunk := await part.read_chunk(64 * 1024):
                data += chunk
                if len(data) > MAX_UPLOAD_BYTES:
                    raise json_error(
                        TOO_LARGE, web.HTTPRequestEntityTooLarge, max_size=MAX_UPLOAD_BYTES, actual_size=len(data)
                    )
            return bytes(data), part.headers.get("Content-Type", "")
        raise json_error("no 'image' field in the form")

    async def post_offer(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        sdp, kind, mode = body.get("sdp"), body.get("type", "offer"), body.get("mode", "preview")
        if not isinstance(sdp, str) or not isinstance(kind, str) or not isinstance(mode, str):
            return bad_request('expected {"sdp": "...", "type": "offer", "mode": "preview" | "camera"}')
        if len(sdp) > MAX_SDP_CHARS:
            return bad_request(f"offer too large: at most {MAX_SDP_CHARS} characters of SDP", 413)
        try:
            peer, answer = await self.peers.answer(sdp, kind, mode)
        except BadOffer as exc:
            return bad_request(error_text(exc))
        except PeerLimit as exc:
            return bad_request(str(exc), 503)
        except NoSuchSession:  # `livefuse serve`: no stream of its own to view
            return bad_request("this server runs sessions only (livefuse serve): it has no stream to view", 404)
        except UserError as exc:  # the preset could not be built for this peer
            return bad_request(str(exc), 500)
        return web.json_response({"sdp": answer.sdp, "type": answer.type, "peer": peer.id})

    async def delete_peer(self, request: web.Request) -> web.Response:
        if not await self.peers.close(request.match_info["peer"]):
            return bad_request("no such peer", 404)
        return web.json_response({"closed": request.match_info["peer"]})

    async def healthz(self, request: web.Request) -> web.Response:
        if self.main is None:
            return web.json_response({"ok": True, "sessions": len(list(self.sessions))})
        stats = self.main.pipeline.stats
        return web.json_response({"ok": True, "frames_in": stats.frames_in, "frames_out": stats.frames_out})

"""The control API of sessions: `GET /api/sessions`, one session's preset and parameters, its outputs.

The checks are the daemon's own (`/api/preset`, `/api/preset/params`: the same functions of api.py),
applied to one session's runtime only, so changing one stream leaves every other alone.

`POST /api/sessions/<id>/outputs` records or pushes a session with the output specs of `--output`
(`file:NAME.mp4?crf=18`, `rtmp://...`, `udp://...`, `srt://...`). A recording's name comes from an
API client, so it may only name a file in the recordings folder (`recordings/` where the daemon runs).
"""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePosixPath
from typing import Any

from aiohttp import web

from livefuse.errors import UserError
from livefuse.runtime import Runtime
from livefuse.sinks import open_sink, parse_output
from livefuse.web.api import Api, apply_params, describe_preset, json_error, params_request, preset_name, read_json
from livefuse.web.loop_lag import LoopLagProbe
from livefuse.web.sessions import Sessions


class SessionApi:
    """Handlers for /api/sessions/..."""

    def __init__(self, api: Api, sessions: Sessions, loop_lag: LoopLagProbe) -> None:
        self.api = api
        self.sessions = sessions
        self.loop_lag = loop_lag
        self.recordings = Path("recordings")  # where session recordings go

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/sessions", self.list_sessions),
            web.get("/api/sessions/{id}", self.get_session),
            web.get("/api/sessions/{id}/preset", self.get_preset),
            web.put("/api/sessions/{id}/preset", self.put_preset),
            web.patch("/api/sessions/{id}/params", self.patch_params),
            web.post("/api/sessions/{id}/outputs", self.post_output),
        ]

    def _runtime(self, request: web.Request) -> Runtime:
        peer = self.sessions.get(request.match_info["id"])
        if peer is None or peer.runtime is None:
            raise json_error("no such session; GET /api/sessions lists them", web.HTTPNotFound)
        return peer.runtime

    async def list_sessions(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {"sessions": [self.sessions.describe(p) for p in self.sessions],
                                "default_budget_ms": self.sessions.budget_ms,
                                "capacity": self.sessions.refusal() or "room for another session",
                                "cpu_share": round(self.sessions.cpu.share, 3),
                                "loop_lag_ms": self.loop_lag.summary()}
        return web.json_response(body)

    async def get_session(self, request: web.Request) -> web.Response:
        runtime = self._runtime(request)
        peer = self.sessions.get(request.match_info["id"])
        assert peer is not None
        body = {**runtime.status(), **self.sessions.describe(peer), "preset_info": describe_preset(runtime.preset)}
        return web.json_response(body)

    async def get_preset(self, request: web.Request) -> web.Response:
        return web.json_response(describe_preset(self._runtime(request).preset))

    async def put_preset(self, request: web.Request) -> web.Response:
        runtime = self._runtime(request)
        name = preset_name(await read_json(request))
        await self.api.switch(runtime, name)
        return web.json_response(describe_preset(runtime.preset))

    async def patch_params(self, request: web.Request) -> web.Response:
        runtime = self._runtime(request)
        stage, params = params_request(await read_json(request))
        updated = await apply_params(runtime, stage, params)
        return web.json_response({"stage": stage, "params": updated})

    async def post_output(self, request: web.Request) -> web.Response:
        runtime = self._runtime(request)
        spec = (await read_json(request)).get("output")
        if not isinstance(spec, str) or not spec:
            raise json_error('expected {"output": "file:NAME.mp4" | "rtmp://..." | "udp://..." | "srt://..."}')
        try:
            kind, target = parse_output(spec)
        except UserError as exc:
            raise json_error(str(exc)) from exc
        if kind == "file":
            spec = f"file:{self._recording(target)}"
        elif kind != "stream":
            raise json_error(f"a session can be recorded (file:NAME.mp4) or pushed (rtmp://, udp://, srt://), "
                             f"not sent to {kind}")
        if (spec.partition("?")[0] if kind == "file" else spec) in runtime.pipeline.stats.outputs:  # by its name
            raise json_error(f"the session already has the output {spec!r}", web.HTTPConflict)
        size, fps = runtime.context.size, runtime.context.fps
        try:  # opening may connect to a server or create a file: off the loop
            sink = await asyncio.get_running_loop().run_in_executor(None, lambda: open_sink(spec, size, fps))
        except UserError as exc:
            raise json_error(str(exc)) from exc
        try:
            runtime.pipeline.add_output(sink)
        except RuntimeError as exc:
            sink.close()
            raise json_error("the session is ending", web.HTTPConflict) from exc
        return web.json_response({"output": spec, "name": sink.name}, status=201)

    def _recording(self, target: str) -> str:
        """The recording's path in the recordings folder (a file name, with its query of options)."""
        name, sep, query = target.partition("?")
        pure = PurePosixPath(name)
        if pure.is_absolute() or len(pure.parts) != 1 or pure.name in ("", ".", "..") or "\\" in name:
            raise json_error(f"a recording is named by a file name (e.g. file:talk.mp4), written in the recordings "
                             f"folder; {name[:80]!r} is a path")
        self.recordings.mkdir(parents=True, exist_ok=True)
        return f"{self.recordings / pure.name}{sep}{query}"

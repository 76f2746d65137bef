"""The control API of sessions: `GET /api/sessions`, one session's preset and parameters, its outputs.

The checks are the daemon's own (`/api/preset`, `/api/preset/params`: the same functions of api.py),
applied to one session's runtime only, so changing one stream leaves every other alone.

`POST /api/sessions/<id>/outputs` records or pushes a session with the output specs of `--output`
(`file:NAME.mp4?crf=18`, `rtmp://...`, `udp://...`, `srt://...`), at most MAX_SESSION_OUTPUTS at a time;
`DELETE /api/sessions/<id>/outputs/<n>` stops one. A recording's name comes from an API client, so it is a
plain new file name in the recordings folder (`recordings/` where the daemon runs): never an existing file,
never through a symlink. Pushes go only where the operator's --allow-push patterns allow (push_policy.py).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path, PurePosixPath
from typing import Any

from aiohttp import web

from livefuse.errors import UserError
from livefuse.redact import redact
from livefuse.runtime import Runtime
from livefuse.sinks import Sink, parse_output
from livefuse.sinks.encoder import open_file_sink
from livefuse.sinks.push import PushSink
from livefuse.web.api import (
    apply_params,
    apply_preset,
    describe_preset,
    json_error,
    params_request,
    preset_name,
    read_json,
)
from livefuse.web.loop_lag import LoopLagProbe
from livefuse.web.push_policy import push_refusal
from livefuse.web.sessions import Sessions

MAX_SESSION_OUTPUTS = 4
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


class SessionApi:
    """Handlers for /api/sessions/..."""

    def __init__(self, sessions: Sessions, loop_lag: LoopLagProbe, allow_push: tuple[str, ...] = ()) -> None:
        self.sessions = sessions
        self.loop_lag = loop_lag
        self.allow_push = allow_push
        self.recordings = Path("recordings")  # where session recordings go
        self._added: dict[str, dict[int, Sink]] = {}  # session id -> output number -> sink, added over the API
        self._adding = asyncio.Lock()  # one at a time: two requests at once cannot both pass the cap

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/sessions", self.list_sessions),
            web.get("/api/sessions/{id}", self.get_session),
            web.get("/api/sessions/{id}/preset", self.get_preset),
            web.put("/api/sessions/{id}/preset", self.put_preset),
            web.patch("/api/sessions/{id}/params", self.patch_params),
            web.post("/api/sessions/{id}/outputs", self.post_output),
            web.delete("/api/sessions/{id}/outputs/{n}", self.delete_output),
        ]

    def _runtime(self, request: web.Request) -> Runtime:
        peer = self.sessions.get(request.match_info["id"])
        if peer is None or peer.runtime is None:
            raise json_error("no such session; GET /api/sessions lists them", web.HTTPNotFound)
        return peer.runtime

    async def list_sessions(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {
            "sessions": [self.sessions.describe(p) for p in self.sessions],
            "default_budget_ms": self.sessions.budget_ms,
            "capacity": self.sessions.refusal() or "room for another session",
            "cpu_share": round(self.sessions.cpu.share, 3),
            "loop_lag_ms": self.loop_lag.summary(),
        }
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
        await apply_preset(runtime, name)
        return web.json_response(describe_preset(runtime.preset))

    async def patch_params(self, request: web.Request) -> web.Response:
        runtime = self._runtime(request)
        stage, params = params_request(await read_json(request))
        updated = await apply_params(runtime, stage, params)
        return web.json_response({"stage": stage, "params": updated})

    async def post_output(self, request: web.Request) -> web.Response:
        runtime = self._runtime(request)
        session = request.match_info["id"]
        spec = (await read_json(request)).get("output")
        if not isinstance(spec, str) or not spec:
            raise json_error('expected {"output": "file:NAME.mp4" | "rtmp://..." | "udp://..." | "srt://..."}')
        try:
            kind, target = parse_output(spec)
        except UserError as exc:
            raise json_error(str(exc)) from exc
        if kind == "file":
            spec = f"file:{self._recording(target)}"
        elif kind == "stream":
            if (why := push_refusal(target, self.allow_push)) is not None:
                raise json_error(why, web.HTTPForbidden)
        else:
            raise json_error(
                f"a session can be recorded (file:NAME.mp4) or pushed (rtmp://, udp://, srt://), not sent to {kind}"
            )
        async with self._adding:
            sink, number = await self._add(runtime, session, kind, spec, target)
        return web.json_response(
            {
                "output": redact(spec),
                "name": sink.name,
                "index": number,
                "location": f"/api/sessions/{session}/outputs/{number}",
            },
            status=201,
        )

    async def _add(self, runtime: Runtime, session: str, kind: str, spec: str, target: str) -> tuple[Sink, int]:
        """Open the output and start it on the session's pipeline; (its sink, its number)."""
        added = self._outputs_of(session)
        if len(added) >= MAX_SESSION_OUTPUTS:
            raise json_error(
                f"the session has {MAX_SESSION_OUTPUTS} outputs already, the most it may have; "
                "DELETE /api/sessions/<id>/outputs/<n> stops one",
                web.HTTPConflict,
            )
        if (spec.partition("?")[0] if kind == "file" else redact(spec)) in runtime.pipeline.stats.outputs:  # by name
            raise json_error(f"the session already has the output {redact(spec)!r}", web.HTTPConflict)
        size, fps = runtime.context.size, runtime.context.fps
        try:  # a recording creates its file and starts its encoder: off the loop
            sink: Sink = (
                PushSink(target, size, fps)
                if kind == "stream"
                else await asyncio.get_running_loop().run_in_executor(
                    None, lambda: open_file_sink(spec.removeprefix("file:"), size, fps, new_file=True)
                )
            )
        except UserError as exc:
            raise json_error(str(exc)) from exc
        try:
            runtime.pipeline.add_output(sink)
        except RuntimeError as exc:
            await asyncio.get_running_loop().run_in_executor(None, sink.close)
            raise json_error("the session is ending", web.HTTPConflict) from exc
        number = max(added, default=0) + 1
        added[number] = sink
        return sink, number

    async def delete_output(self, request: web.Request) -> web.Response:
        """Stop an output added over the API: a recording is finalised, a push ends."""
        runtime = self._runtime(request)
        sink = self._outputs_of(request.match_info["id"]).pop(_number(request.match_info["n"]), None)
        if sink is None:
            raise json_error(
                "no such output; POST /api/sessions/<id>/outputs answers with its number", web.HTTPNotFound
            )
        await runtime.pipeline.remove_output(sink)
        return web.Response(status=204)

    def _outputs_of(self, session: str) -> dict[int, Sink]:
        """The outputs added to a live session; those of sessions that ended are forgotten."""
        for gone in [s for s in self._added if self.sessions.get(s) is None]:
            del self._added[gone]
        return self._added.setdefault(session, {})

    def _recording(self, target: str) -> str:
        """The recording's path in the recordings folder (a file name, with its query of options)."""
        name, sep, query = target.partition("?")
        if not PLAIN_NAME.match(name):
            raise json_error(
                f"a recording is named by a plain file name (letters, digits, '.', '_', '-'; e.g. "
                f"file:talk.mp4), written in the recordings folder; {name[:80]!r} is not one"
            )
        pure = PurePosixPath(name)
        self.recordings.mkdir(parents=True, exist_ok=True)
        return f"{self.recordings / pure.name}{sep}{query}"


def _number(text: str) -> int:
    return int(text) if text.isdigit() and len(text) < 6 else -1

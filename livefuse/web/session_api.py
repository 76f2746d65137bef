"""The control API of sessions: `GET /api/sessions`, and one session's preset and parameters.

The checks are the daemon's own (`/api/preset`, `/api/preset/params`: the same functions of api.py),
applied to one session's runtime only, so changing one stream leaves every other alone.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from livefuse.runtime import Runtime
from livefuse.web.api import Api, apply_params, describe_preset, json_error, params_request, preset_name, read_json
from livefuse.web.loop_lag import LoopLagProbe
from livefuse.web.sessions import Sessions


class SessionApi:
    """Handlers for /api/sessions/..."""

    def __init__(self, api: Api, sessions: Sessions, loop_lag: LoopLagProbe) -> None:
        self.api = api
        self.sessions = sessions
        self.loop_lag = loop_lag

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/sessions", self.list_sessions),
            web.get("/api/sessions/{id}", self.get_session),
            web.get("/api/sessions/{id}/preset", self.get_preset),
            web.put("/api/sessions/{id}/preset", self.put_preset),
            web.patch("/api/sessions/{id}/params", self.patch_params),
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

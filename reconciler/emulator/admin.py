"""The emulator's own controls under `/_emulator/`: faults, clock, counters, state.

Out-of-process users (the demo, a subprocess under test, an admin poking at it with curl) need the same
levers the Python API gives in-process tests; the Batch and ARM parts add their own under
`/_emulator/batch/` and `/_emulator/arm/`.

    GET    /_emulator                     accounts, clock, state parts
    GET    /_emulator/faults              rules in force (with what is left of each `count`)
    POST   /_emulator/faults              one rule or a list: {"operation": "batch.Pools_DeletePool",
                                          "match": {"pool": "p1"}, "kind": "status", "status": 409,
                                          "code": "PoolBeingResized", "count": 1}; kinds status|reset|latency
    DELETE /_emulator/faults[/{id}]       all rules, or one
    GET    /_emulator/clock               simulated now, elapsed, time_scale
    POST   /_emulator/clock/advance       {"seconds": N}
    POST   /_emulator/time-scale          {"time_scale": N}
    GET    /_emulator/counters            ?operation=&caller=&account=&status= (globs) -> total and rows
    DELETE /_emulator/counters
    GET    /_emulator/state               the dump of every state part, as --state-file holds it
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from reconciler.emulator.context import EmulatorContext
from reconciler.emulator.counters import RequestCounters
from reconciler.emulator.faults import FaultInjector, FaultRule

PREFIX = "/_emulator"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


def _bad_request(message: str) -> web.Response:
    return _json({"error": {"code": "InvalidRequest", "message": message}}, status=400)


async def _body(request: web.Request) -> Any:
    if not request.can_read_body:
        return {}
    try:
        return await request.json()
    except ValueError as error:
        raise web.HTTPBadRequest(text=f"invalid JSON: {error}") from None


def add_admin_routes(
    app: web.Application, ctx: EmulatorContext, faults: FaultInjector, counters: RequestCounters
) -> None:
    async def info(request: web.Request) -> web.Response:
        return _json(
            {"accounts": sorted(ctx.accounts), "clock": ctx.clock.state(), "parts": sorted(ctx.parts)}
        )

    async def list_faults(request: web.Request) -> web.Response:
        return _json([rule.to_json() for rule in faults.rules()])

    async def add_faults(request: web.Request) -> web.Response:
        body = await _body(request)
        items = body if isinstance(body, list) else [body]
        try:
            rules = [FaultRule.from_json(item) for item in items]
        except (ValueError, TypeError) as error:
            return _bad_request(str(error))
        added = [faults.add(rule).to_json() for rule in rules]
        return _json(added if isinstance(body, list) else added[0], status=201)

    async def clear_faults(request: web.Request) -> web.Response:
        faults.clear()
        return web.Response(status=204)

    async def delete_fault(request: web.Request) -> web.Response:
        try:
            rule_id = int(request.match_info["rule_id"])
        except ValueError:
            return _bad_request("rule id must be an integer")
        return web.Response(status=204 if faults.remove(rule_id) else 404)

    async def get_clock(request: web.Request) -> web.Response:
        return _json({**ctx.clock.state(), "now": ctx.clock.now().isoformat()})

    async def advance_clock(request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            ctx.clock.advance(float(body["seconds"]))
        except (KeyError, TypeError, ValueError) as error:
            return _bad_request(f'expected {{"seconds": N}} with N >= 0 ({error})')
        return await get_clock(request)

    async def set_time_scale(request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            ctx.clock.time_scale = float(body["time_scale"])
        except (KeyError, TypeError, ValueError) as error:
            return _bad_request(f'expected {{"time_scale": N}} with N > 0 ({error})')
        return await get_clock(request)

    async def get_counters(request: web.Request) -> web.Response:
        query = request.query
        try:
            status = int(query["status"]) if "status" in query else None
        except ValueError:
            return _bad_request("status must be an integer")
        rows = counters.snapshot(query.get("operation"), query.get("caller"), status, query.get("account"))
        return _json({"total": sum(row.count for row in rows), "counters": counters.to_json(rows)})

    async def reset_counters(request: web.Request) -> web.Response:
        counters.reset()
        return web.Response(status=204)

    async def get_state(request: web.Request) -> web.Response:
        parts = {name: part.dump() for name, part in ctx.parts.items()}
        return _json({"clock": ctx.clock.state(), "parts": parts})

    router = app.router
    router.add_get(f"{PREFIX}", info, name="emulator.Info")
    router.add_get(f"{PREFIX}/faults", list_faults, name="emulator.Faults_List")
    router.add_post(f"{PREFIX}/faults", add_faults, name="emulator.Faults_Add")
    router.add_delete(f"{PREFIX}/faults", clear_faults, name="emulator.Faults_Clear")
    router.add_delete(f"{PREFIX}/faults/{{rule_id}}", delete_fault, name="emulator.Faults_Delete")
    router.add_get(f"{PREFIX}/clock", get_clock, name="emulator.Clock_Get")
    router.add_post(f"{PREFIX}/clock/advance", advance_clock, name="emulator.Clock_Advance")
    router.add_post(f"{PREFIX}/time-scale", set_time_scale, name="emulator.TimeScale_Set")
    router.add_get(f"{PREFIX}/counters", get_counters, name="emulator.Counters_Get")
    router.add_delete(f"{PREFIX}/counters", reset_counters, name="emulator.Counters_Reset")
    router.add_get(f"{PREFIX}/state", get_state, name="emulator.State_Get")

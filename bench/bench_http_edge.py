"""HTTP edge benchmark: what answering one POST /v1/tickets costs before any ticket is decided.

    .venv/bin/python bench/bench_http_edge.py [--rates 1000,2000] [--duration 15] [--edges asgi,starlette,...]

Intake's bar (issue #12) is 0.33 ms of CPU per acknowledged creation, and 2,000 creations/s at p99 <= 25 ms from
one process. This measures the floor under it: the same request as `bench_intake` (the same body, a bearer key),
answered by uvicorn (httptools, uvloop, as every service runs) through edges of growing weight, none of which
decides, stores or appends anything:

- `asgi`: a bare ASGI callable that reads the body, parses it with `json` and answers 201 with it;
- `starlette`: a Starlette route that looks the key up (ApiKeys, as the services do) and validates the body with
  the contract's CreateTicketBody;
- `fastapi`: a FastAPI route taking the body model, no key;
- `service`: the edge every service has (runtime/http.create_service_app: the request metrics and correlation id,
  the refusal handlers, FastAPI's own middleware), a route declared as intake's (body, caller, Idempotency-Key).

vegeta offers each rate open loop, after a warm-up; the CPU of the serving process is read from /proc. Writes
bench/results/http_edge.json.

(No postponed annotations in this module: FastAPI must see the body model of routes declared inside functions.)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench  # noqa: E402,F401  (this tree's code first: see bench/__init__.py)
from bench.bench_intake import TICKET  # noqa: E402
from bench.procfs import cpu_seconds  # noqa: E402
from bench.vegeta import Attack, ensure_vegeta, json_target  # noqa: E402
from deploy.kafka.launcher import free_ports  # noqa: E402
from ticketstream_shared.runtime.auth import write_dev_keys  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "http_edge.json"
EDGES = ("asgi", "starlette", "fastapi", "service")
BAR_CPU_MS = 0.33
WARMUP_S = 5.0


# --- the edges, each served in a process of its own (`--serve EDGE`) ----------------------------------------------


def asgi_edge() -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status = 201 if body else 400  # 400: the readiness probe's GET
        answer = json.dumps({**json.loads(body), "id": str(uuid.uuid4())} if body else {}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


def starlette_edge(keys_file: Path) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from ticketstream_shared.contract.requests import CreateTicketBody
    from ticketstream_shared.runtime.auth import ApiKeys, identify

    keys = ApiKeys.load(keys_file)

    async def create(request: Request) -> JSONResponse:
        identify(keys, request)
        body = CreateTicketBody.model_validate_json(await request.body())
        return JSONResponse({**body.model_dump(mode="json"), "id": str(uuid.uuid4())}, status_code=201)

    return Starlette(routes=[Route("/v1/tickets", create, methods=["POST"])])


def fastapi_edge() -> Any:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from ticketstream_shared.contract.requests import CreateTicketBody

    app = FastAPI()

    @app.post("/v1/tickets", status_code=201)
    async def create(body: CreateTicketBody) -> JSONResponse:
        return JSONResponse({**body.model_dump(mode="json"), "id": str(uuid.uuid4())}, status_code=201)

    return app


def service_edge(keys_file: Path) -> Any:
    from fastapi.responses import JSONResponse

    from intake.api import RequestKey
    from ticketstream_shared.contract.requests import CreateTicketBody
    from ticketstream_shared.runtime.auth import ApiKeys, require_client
    from ticketstream_shared.runtime.http import Caller, create_service_app

    app = create_service_app(service="edge", keys=ApiKeys.load(keys_file), readiness=lambda: {})

    @app.post("/v1/tickets", status_code=201)
    async def create(body: CreateTicketBody, principal: Caller, request_key: RequestKey = None) -> JSONResponse:
        require_client(principal, body.client_id)
        return JSONResponse({**body.model_dump(mode="json"), "id": str(uuid.uuid4())}, status_code=201)

    return app


def serve(edge: str, port: int, keys_file: Path) -> None:
    import uvicorn

    app = {
        "asgi": asgi_edge,
        "starlette": lambda: starlette_edge(keys_file),
        "fastapi": fastapi_edge,
        "service": lambda: service_edge(keys_file),
    }[edge]()
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


# --- the measurement ----------------------------------------------------------------------------------------------


def _answering(url: str, deadline_s: float = 30.0) -> None:
    """Waits until the server answers anything at all (a 4xx included)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def measure(edge: str, rates: list[int], duration_s: float, vegeta: Path, scratch: Path) -> list[dict[str, Any]]:
    dev_keys, api_keys = write_dev_keys(scratch / "keys")
    key = json.loads(dev_keys.read_text())["integration"]
    (port,) = free_ports(1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / part) for part in ("shared", "services", "."))}
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", edge, "--port", str(port), "--keys", str(api_keys)], env=env
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/tickets"
        _answering(url)
        target = json_target(url, TICKET, {"Authorization": f"Bearer {key}"})
        steps = []
        for rate in rates:
            warmup = Attack(vegeta, [target], rate, WARMUP_S)
            warmup.start()
            warmup.wait()
            attack = Attack(vegeta, [target], rate, duration_s)
            before = cpu_seconds(server.pid)
            attack.start()
            result = attack.wait()
            used = cpu_seconds(server.pid) - before
            answered = result.requests * result.success
            steps.append({
                "edge": edge, "rate": rate, "ok_per_s": round(result.throughput, 1), "success": result.success,
                "p50_ms": result.latency_ms["p50"], "p99_ms": result.latency_ms["p99"],
                "cpu_ms_per_request": round(1000 * used / answered, 3) if answered else None,
                "cores": round(used / result.duration_s, 2) if result.duration_s else None,
                "status_codes": result.status_codes,
            })  # fmt: skip
            print(_row(steps[-1]), flush=True)
            if result.success < 1:
                print(f"    not every request answered 201: {result.status_codes} {result.errors[:3]}", flush=True)
        return steps
    finally:
        server.terminate()
        server.wait(timeout=15)


def _row(step: dict[str, Any]) -> str:
    return (
        f"  {step['edge']:<10} {step['rate']:>6,}/s  ok {step['ok_per_s']:>8,.0f}/s  p50 {step['p50_ms']:6.2f}  "
        f"p99 {step['p99_ms']:7.2f} ms  {step['cores']} cores  {step['cpu_ms_per_request']} ms CPU per request"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1000,2000", help="requests/s, comma-separated")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per rate")
    parser.add_argument("--edges", default=",".join(EDGES))
    parser.add_argument("--serve", choices=EDGES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--keys", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.keys)
        return
    rates = [int(rate) for rate in args.rates.split(",")]
    edges = args.edges.split(",")
    vegeta = ensure_vegeta()
    print(f"HTTP edges, {args.duration:g} s per rate after {WARMUP_S:g} s of warm-up; the bar of a whole creation: "
          f"{BAR_CPU_MS} ms of CPU", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as scratch:
        steps = [step for edge in edges for step in measure(edge, rates, args.duration, vegeta, Path(scratch))]
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores",
        "bar_cpu_ms_per_creation": BAR_CPU_MS,
        "steps": steps,
    }
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()

"""Memory of one API process: RSS after 3 x N requests and with 1,000 open subscriptions.

The requirement: "RSS of one API process after 100,000 requests and with 1,000 open
subscriptions, and no growth between the second and third 100,000."

Starts PostgreSQL (DATABASE_URL's server, a fresh database there; else an embedded one), the
Stripe emulator and one real `billing serve` process (BILLING_ENV=test, one uvicorn process
serving in-process: its PID is the one measured; the rate limiter on, with a budget no run
spends), fills an organization through the API (plans, customers each with a trialing
subscription, payments with a refund on every other one), then:

  - three phases of N requests each (default 100,000) from wrk (`-t1 -c8`, a Lua script that
    rotates a mix of plan(id), plans(first: 20), payments(first: 20) with customer and refunds,
    customer(id) with subscriptions; it counts responses and stops wrk at N; the figure kept is
    wrk's own request total, a run that stops short is followed by one for the rest). Every
    response must be 200 without GraphQL errors. Up to 7 requests in flight when wrk stops are
    still served but not counted;
  - after each phase, a settle pause, then VmRSS of the server from /proc/PID/status;
  - 1,000 `Live.revenue` subscriptions (100 WebSocket connections x 10), RSS with them open,
    again after one confirmed payment has reached every subscriber, and after closing them.

Prints a table (phase, requests, RSS MiB, growth vs the previous row) and the growth between
phases 2 and 3.

    .venv/bin/python bench/memory.py [--requests 100000] [--subscriptions 1000] [--json out.json]
    .venv/bin/python bench/memory.py --smoke      # 3 x 2,000 requests, 100 subscriptions

`--probe` starts the same server through a small launcher that, on SIGUSR1, writes gc counts and
the most common object types to a file; the table then shows how many objects the heap holds
after each step (the counting itself costs a little memory: keep it off for the figures).

Loopback only. Stops everything it started: wrk, the WebSockets, the server (SIGTERM), the
emulator, and the embedded PostgreSQL or the database it made.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.core.auth import Role, mint_token  # noqa: E402
from app.core.settings import Settings  # noqa: E402
from app.stripe.emulator import EMULATOR_API_KEY, StripeEmulator, free_port  # noqa: E402
from db.migrate import apply_migrations  # noqa: E402


def _bench(name: str) -> ModuleType:
    """Another benchmark as a module (as tests/test_bench_statistics.py loads one)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


baseline = _bench("graphql_vs_baseline")  # database(): DATABASE_URL's server or embedded
live = _bench("live_latency")  # connection(), Subscriber, gql(), eventually(), REVENUE, ...

JWT_SECRET = "m" * 48
ORG = "benchmem"
CONNECTIONS_PER_TOKEN = 1000
WRK_CONNECTIONS = 8

PLAN = "query($id: ID!) { plan(id: $id) { id code name price { amount currency decimal } } }"
PLANS = "{ plans(first: 20) { edges { node { id code name price { amount currency decimal } } } } }"
PAYMENTS = (
    "{ payments(first: 20) { edges { node { id status amount { amount currency } "
    "customer { id email } refunds { id amount { amount } status } } } } }"
)
CUSTOMER = (
    "query($id: ID!) { customer(id: $id) { id email name subscriptions { id status quantity "
    "price { amount currency } currentPeriodEnd trialEnd plan { id code } } } }"
)
CREATE_PLAN = """mutation($input: PlanCreateInput!) {
  planCreate(input: $input) { plan { id } errors { message } } }"""
CREATE_CUSTOMER = """mutation($input: CustomerCreateInput!) {
  customerCreate(input: $input) { customer { id } errors { message } } }"""
CREATE_SUBSCRIPTION = """mutation($input: SubscriptionCreateInput!) {
  subscriptionCreate(input: $input) { subscription { id status } errors { message } } }"""
CREATE_PAYMENT = """mutation($input: PaymentIntentCreateInput!) {
  paymentIntentCreate(input: $input) { payment { id status } errors { message } } }"""
CONFIRM_PAYMENT = """mutation($input: PaymentIntentConfirmInput!) {
  paymentIntentConfirm(input: $input) { payment { id status } errors { message } } }"""
REFUND = """mutation($input: RefundCreateInput!) {
  refundCreate(input: $input) { refund { id } errors { message } } }"""

# Rotates the kinds (one request of each in turn) and, within a kind, its bodies; counts the
# responses, the failed ones (not 200, or GraphQL errors), and stops at the limit (args[1]).
_LUA = """
local kinds = {kinds}
local headers = {{["content-type"] = "application/json", ["authorization"] = {auth}}}
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  limit = tonumber(args[1])
  sent = 0
  count = 0
  failed = 0
  sample = ""
end

function request()
  local kind = kinds[(sent % #kinds) + 1]
  local body = kind[(math.floor(sent / #kinds) % #kind) + 1]
  sent = sent + 1
  return wrk.format("POST", "/graphql", headers, body)
end

function response(status, _, body)
  count = count + 1
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    failed = failed + 1
    if sample == "" then sample = status .. " " .. string.sub(body, 1, 300) end
  end
  if count == limit then
    wrk.thread:stop()
    io.write("LIMIT REACHED\\n")
    io.flush()
  end
end

function done(summary, latency, requests)
  local failures, first = 0, ""
  for _, thread in ipairs(threads) do
    failures = failures + thread:get("failed")
    if first == "" then first = thread:get("sample") end
  end
  io.write(string.format("FAILED %d\\n", failures))
  if first ~= "" then io.write("FIRST FAILURE " .. first .. "\\n") end
end
"""

# The optional probe: `billing serve` as `python -m app.cli serve` runs it, plus a SIGUSR1
# handler that appends gc counts and the most common object types to PROBE_FILE.
_PROBE = """
import collections, gc, json, os, runpy, signal, sys, time

def _probe(signum, frame):
    started = time.perf_counter()
    gc.collect()
    objects = gc.get_objects()
    types = collections.Counter(type(o).__qualname__ for o in objects)
    row = {"objects": len(objects), "garbage": len(gc.garbage), "gc_count": gc.get_count(),
           "top": types.most_common(15), "seconds": round(time.perf_counter() - started, 3)}
    del objects
    with open(os.environ["PROBE_FILE"], "a") as out:
        out.write(json.dumps(row) + "\\n")

signal.signal(signal.SIGUSR1, _probe)
sys.argv = ["billing", *sys.argv[1:]]
runpy.run_module("app.cli", run_name="__main__", alter_sys=True)
"""


@dataclass
class Reading:
    phase: str
    requests: int  # in this step
    total_requests: int  # since the server started
    rss_kib: int
    anon_kib: int
    hwm_kib: int
    seconds: float = 0.0  # the step's own duration (load or subscriptions)
    rate: float = 0.0  # requests per second during the step, by wrk
    note: str = ""
    probe: dict[str, Any] = field(default_factory=dict)

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024


def memory(pid: int) -> tuple[int, int, int]:
    """(VmRSS, RssAnon, VmHWM) of ``pid`` in KiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["RssAnon"], fields["VmHWM"]


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


class Server:
    """One `billing serve` process (uvicorn in-process, one worker) on loopback."""

    def __init__(self, settings: Settings, folder: Path, probe: bool) -> None:
        self.settings = settings
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.probe_file = folder / "probe.jsonl" if probe else None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "BILLING_ENV": "test",
            "BILLING_HOME": str(self.folder / "home"),
            "DATABASE_URL": self.settings.database_url or "",
            "STRIPE_API_KEY": EMULATOR_API_KEY,
            "STRIPE_API_BASE": self.settings.stripe_api_base or "",
            "JWT_SECRET": JWT_SECRET,
            "WEB_CONCURRENCY": "1",  # uvicorn serves in this process: no worker children
            # On, with a budget no run spends: its per-token state is part of what is measured.
            "RATE_LIMIT_POINTS": "1000000000",
            "RATE_LIMIT_RESTORE_RATE": "10000000",
            # 100 connections of one token: past the default per-token cap.
            "WS_MAX_CONNECTIONS_PER_TOKEN": str(CONNECTIONS_PER_TOKEN),
            "LOG_LEVEL": "warning",
        }
        args = ["serve", "--no-migrate", "--no-worker", "--host", "127.0.0.1"]
        args += ["--port", str(self.port)]
        if self.probe_file is not None:
            env["PROBE_FILE"] = str(self.probe_file)
            command = [sys.executable, "-c", _PROBE, *args]
        else:
            command = [sys.executable, "-m", "app.cli", *args]
        with (self.folder / "serve.log").open("wb") as log:
            self.process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    if extra := children(self.process.pid):
                        raise SystemExit(f"billing serve has child processes {extra}")
                    return
            time.sleep(0.1)
        raise SystemExit(f"billing serve did not start:\n{self.log()[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return (self.folder / "serve.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # uvicorn's graceful shutdown
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def read(self, phase: str, requests: int, total: int, **extra: Any) -> Reading:
        rss, anon, hwm = memory(self.pid)
        reading = Reading(phase, requests, total, rss, anon, hwm, **extra)
        if self.probe_file is not None:
            before = self.probe_file.read_text().count("\n") if self.probe_file.exists() else 0
            os.kill(self.pid, signal.SIGUSR1)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                lines = self.probe_file.read_text().splitlines() if self.probe_file.exists() else []
                if len(lines) > before:
                    reading.probe = json.loads(lines[-1])
                    break
                time.sleep(0.1)
        return reading


async def seed(server: str, bearer: str, plans: int, customers: int, payments: int) -> dict:
    """Fill the organization through the API; returns the ids the requests rotate over."""

    async def call(http: httpx.AsyncClient, query: str, field: str, values: dict) -> dict:
        payload: dict[str, Any] = (await live.gql(http, query, {"input": values}))[field]
        if payload["errors"]:
            raise SystemExit(f"seeding failed ({field}): {payload['errors']}")
        return payload

    headers = {"authorization": f"Bearer {bearer}"}
    async with httpx.AsyncClient(base_url=server, headers=headers, timeout=60) as http:
        plan_ids = []
        for n in range(plans):
            made = await call(
                http,
                CREATE_PLAN,
                "planCreate",
                {
                    "code": f"mem-{n}",
                    "name": f"Plan {n}",
                    "tier": "PRO",
                    "interval": "MONTH",
                    "price": {"amount": 1000 + 100 * n, "currency": "USD"},
                },
            )
            plan_ids.append(made["plan"]["id"])
        customer_ids = []
        for n in range(customers):
            made = await call(
                http,
                CREATE_CUSTOMER,
                "customerCreate",
                {"email": f"c{n}@example.com", "name": f"Customer {n}"},
            )
            customer_ids.append(made["customer"]["id"])
            await call(
                http,
                CREATE_SUBSCRIPTION,
                "subscriptionCreate",
                {
                    "customerId": customer_ids[-1],
                    "planId": plan_ids[n % plans],
                    "trialDays": 14,  # no charge: the subscription is trialing
                    "idempotencyKey": str(uuid.uuid4()),
                },
            )
        for n in range(payments):
            await pay(http, customer_ids[n % customers], 2000 + n, refund=n % 2 == 0, call=call)
    return {"plans": plan_ids, "customers": customer_ids}


async def pay(http: httpx.AsyncClient, customer: str, amount: int, refund: bool, call: Any) -> str:
    made = await call(
        http,
        CREATE_PAYMENT,
        "paymentIntentCreate",
        {
            "customerId": customer,
            "amount": {"amount": amount, "currency": "USD"},
            "paymentMethodId": "pm_card_visa",
            "idempotencyKey": str(uuid.uuid4()),
        },
    )
    payment: str = made["payment"]["id"]
    await call(
        http,
        CONFIRM_PAYMENT,
        "paymentIntentConfirm",
        {"paymentId": payment, "idempotencyKey": str(uuid.uuid4())},
    )
    if refund:
        await call(
            http,
            REFUND,
            "refundCreate",
            {
                "paymentId": payment,
                "amount": {"amount": 100, "currency": "USD"},
                "reason": "DUPLICATE",
                "idempotencyKey": str(uuid.uuid4()),
            },
        )
    return payment


def bodies(ids: dict[str, list[str]]) -> list[list[str]]:
    """The request mix: one list of JSON bodies per kind of request."""

    def body(query: str, variables: dict[str, Any] | None = None) -> str:
        return json.dumps({"query": query, **({"variables": variables} if variables else {})})

    return [
        [body(PLAN, {"id": plan}) for plan in ids["plans"]],
        [body(PLANS)],
        [body(PAYMENTS)],
        [body(CUSTOMER, {"id": customer}) for customer in ids["customers"]],
    ]


def check(server: str, bearer: str, kinds: list[list[str]]) -> None:
    """Every body answers 200 with data and no errors (the Lua script counts failures too)."""
    headers = {"authorization": f"Bearer {bearer}", "content-type": "application/json"}
    with httpx.Client(base_url=server, headers=headers, timeout=30) as http:
        for kind in kinds:
            for body in kind:
                answer = http.post("/graphql", content=body)
                payload = answer.json()
                if answer.status_code != 200 or "errors" in payload or not payload.get("data"):
                    raise SystemExit(f"request failed: {body}\n{answer.status_code} {payload}")


def lua_script(kinds: list[list[str]], bearer: str, folder: Path) -> Path:
    def literal(text: str) -> str:
        assert "]==]" not in text
        return f"[==[{text}]==]"

    rendered = "{" + ", ".join("{" + ", ".join(map(literal, k)) + "}" for k in kinds) + "}"
    script = folder / "mix.lua"
    script.write_text(_LUA.format(kinds=rendered, auth=literal(f"Bearer {bearer}")))
    return script


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def wrk_run(url: str, script: Path, limit: int) -> tuple[int, float]:
    """One wrk run that stops after ``limit`` responses (or its duration bound):
    (wrk's request total, seconds)."""
    program = shutil.which("wrk")
    if program is None:
        raise SystemExit("wrk is needed (Debian package `wrk`)")
    bound = max(60, limit // 20)  # seconds: far more than the limit takes at 20 requests/s
    command = [program, "-t1", f"-c{WRK_CONNECTIONS}", f"-d{bound}s", "-s", str(script)]
    command += [url, "--", str(limit)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append(line)
            if line.strip() == "LIMIT REACHED":
                child.send_signal(signal.SIGINT)  # wrk stops and prints its summary
                break
        lines += child.stdout.readlines()
        child.wait(bound + 60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
    out = "".join(lines)
    found = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out)
    failed = re.search(r"FAILED (\d+)", out)
    if found is None or failed is None:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    if int(failed.group(1)) or "Non-2xx" in out:
        raise SystemExit(f"failed requests under load:\n{out}")
    return int(found.group(1)), float(found.group(2)) * _UNITS[found.group(3)]


def drive(url: str, script: Path, count: int) -> tuple[int, float]:
    """At least ``count`` requests in wrk runs: (wrk's request total, seconds under load)."""
    done, seconds = 0, 0.0
    while done < count:
        made, took = wrk_run(url, script, count - done)
        if made == 0:
            raise SystemExit("wrk completed no request")
        done, seconds = done + made, seconds + took
    return done, seconds


async def subscriptions(
    server: Server, bearer: str, count: int, customer: str, settle: float, total: int
) -> list[Reading]:
    """Open ``count`` Live.revenue subscriptions, read RSS; one confirmed payment reaches each,
    read RSS; close them all, read RSS."""
    subs = [live.Subscriber() for _ in range(count)]
    per = live.PER_CONNECTION
    groups = [subs[n : n + per] for n in range(0, count, per)]
    ws_url = "ws" + server.url.removeprefix("http") + "/graphql"
    headers = {"authorization": f"Bearer {bearer}"}
    readings = []
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as http:
        async with contextlib.AsyncExitStack() as stack:
            started = time.perf_counter()
            for group in groups:
                await stack.enter_async_context(
                    live.connection(ws_url, bearer, group, live.REVENUE)
                )
            await live.eventually(lambda: all(s.messages for s in subs), "the first snapshots")
            opened = time.perf_counter() - started
            await asyncio.sleep(settle)
            readings.append(
                server.read(
                    f"{count} subscriptions open",
                    0,
                    total,
                    seconds=opened,
                    note=f"{len(groups)} connections x {per}",
                )
            )
            first = [s.messages[-1][1] for s in subs]
            before = [len(s.messages) for s in subs]

            async def call(http: httpx.AsyncClient, query: str, name: str, values: dict) -> dict:
                payload: dict[str, Any] = (await live.gql(http, query, {"input": values}))[name]
                if payload["errors"]:
                    raise SystemExit(f"{name} failed: {payload['errors']}")
                return payload

            started = time.perf_counter()
            await pay(http, customer, 5000, refund=False, call=call)
            await live.eventually(
                lambda: all(s.messages[-1][1] != f for s, f in zip(subs, first, strict=True)),
                "the payment at every subscriber",
            )
            delivered = time.perf_counter() - started
            await asyncio.sleep(settle)
            sent = sum(len(s.messages) - b for s, b in zip(subs, before, strict=True))
            readings.append(
                server.read(
                    "after 1 payment (all got it)",
                    0,
                    total,
                    seconds=delivered,
                    note=f"{sent} messages to {count} subscribers",
                )
            )
        await asyncio.sleep(settle)
    readings.append(server.read(f"{count} subscriptions closed", 0, total))
    return readings


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    readings: list[Reading] = []
    with (
        baseline.database() as url,
        tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp,
    ):
        folder = Path(tmp)
        asyncio.run(apply_migrations(url))
        emulator = StripeEmulator()
        emulator.start()
        settings = Settings(
            env="test",
            home=folder / "home",
            database_url=url,
            stripe_api_key=EMULATOR_API_KEY,
            stripe_api_base=emulator.base_url,
            jwt_secret=JWT_SECRET,
        )
        server = Server(settings, folder, args.probe)
        try:
            server.start()
            bearer = mint_token(
                settings, org=ORG, role=Role.ADMIN, subject="bench", ttl_seconds=86_400
            )
            seeded = time.monotonic()
            ids = asyncio.run(seed(server.url, bearer, args.plans, args.customers, args.payments))
            seed_seconds = time.monotonic() - seeded
            kinds = bodies(ids)
            check(server.url, bearer, kinds)
            script = lua_script(kinds, bearer, folder)
            time.sleep(args.settle)
            readings.append(server.read("started + seeded", 0, 0, seconds=seed_seconds))
            total = 0
            for phase in (1, 2, 3):
                made, seconds = drive(f"{server.url}", script, args.requests)
                total += made
                time.sleep(args.settle)
                readings.append(
                    server.read(
                        f"phase {phase}",
                        made,
                        total,
                        seconds=seconds,
                        rate=made / seconds if seconds else 0.0,
                    )
                )
            for _ in range(args.cycles):
                readings += asyncio.run(
                    subscriptions(
                        server, bearer, args.subscriptions, ids["customers"][0], args.settle, total
                    )
                )
        except BaseException:
            if server.process is not None:
                print(server.log()[-3000:], file=sys.stderr)
            raise
        finally:
            server.stop()
            emulator.stop()
    by_phase = {r.phase: r for r in readings}
    two, three = by_phase["phase 2"], by_phase["phase 3"]
    growth = (three.rss_kib - two.rss_kib) / 1024
    return {
        "requests_per_phase": args.requests,
        "subscriptions": args.subscriptions,
        "seeded": {"plans": args.plans, "customers": args.customers, "payments": args.payments},
        "wrk": {"threads": 1, "connections": WRK_CONNECTIONS},
        "settle_seconds": args.settle,
        "readings": [{**asdict(r), "rss_mib": round(r.rss_mib, 2)} for r in readings],
        "growth_phase2_to_3_mib": round(growth, 2),
        "growth_phase2_to_3_percent": round(100 * growth / two.rss_mib, 2),
        "seconds": round(time.monotonic() - started, 1),
    }


def table(report: dict[str, Any]) -> str:
    probe = any(r["probe"] for r in report["readings"])
    head = (
        f"{'phase':<32}{'requests':>10}{'total':>10}{'req/s':>8}{'RSS MiB':>10}{'growth':>9}"
        f"{'anon MiB':>10}{'peak MiB':>10}"
    )
    lines = [head + (f"{'objects':>10}" if probe else "") + "  note"]
    previous = None
    for r in report["readings"]:
        growth = "" if previous is None else f"{(r['rss_kib'] - previous) / 1024:+.2f}"
        rate = f"{r['rate']:.0f}" if r["rate"] else ""
        line = (
            f"{r['phase']:<32}{r['requests']:>10}{r['total_requests']:>10}"
            f"{rate:>8}{r['rss_mib']:>10.2f}{growth:>9}"
            f"{r['anon_kib'] / 1024:>10.2f}{r['hwm_kib'] / 1024:>10.2f}"
        )
        if probe:
            line += f"{r['probe'].get('objects', ''):>10}"
        lines.append(line + (f"  {r['note']}" if r["note"] else ""))
        previous = r["rss_kib"]
    lines.append(
        f"growth between phase 2 and 3: {report['growth_phase2_to_3_mib']:+.2f} MiB "
        f"({report['growth_phase2_to_3_percent']:+.2f} %)"
    )
    lines.append(f"whole run: {report['seconds']} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000, help="per phase (3 phases)")
    parser.add_argument("--subscriptions", type=int, default=1000, help="Live.revenue, 10 each")
    parser.add_argument("--plans", type=int, default=5)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--payments", type=int, default=100)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before each reading")
    parser.add_argument("--probe", action="store_true", help="count heap objects at each reading")
    parser.add_argument(
        "--cycles",
        type=int,
        default=1,
        help="open and close the subscriptions this many times (a leftover grows per cycle)",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--smoke", action="store_true", help="3 x 2,000 requests, 100 subscriptions, less data"
    )
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.subscriptions = 2000, 100
        args.customers, args.payments, args.settle = 20, 20, 1.0
    if args.subscriptions > CONNECTIONS_PER_TOKEN * live.PER_CONNECTION:
        parser.error("too many subscriptions for one token")
    report = run(args)
    print(table(report))
    if any(r["probe"] for r in report["readings"]):
        for r in report["readings"]:
            top = ", ".join(f"{name} {n}" for name, n in r["probe"]["top"][:8])
            print(f"{r['phase']}: {top}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

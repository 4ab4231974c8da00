"""The `vigil` command: run the server or one of its roles, migrate, and manage
organizations, projects, DSN keys, API tokens, features and server options."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from vigil import __version__, logs
from vigil.config import (
    ENV_VARS,
    MAX_RETENTION_DAYS,
    ConfigError,
    Settings,
    load_settings,
    redact_url,
)
from vigil.db.engine import make_engine
from vigil.db.migrate import migrate
from vigil.streams.backend import LogError
from vigil.tenancy import credentials, store
from vigil.tenancy.bootstrap import bootstrap
from vigil.tenancy.public_url import public_base_url

if TYPE_CHECKING:
    from vigil.webhooks.store import Webhook

log = logging.getLogger("vigil")


class CommandError(Exception):
    """A failure the user can fix; printed without a traceback."""


# --- running ---------------------------------------------------------------------------


def _prepare(settings: Settings, *, warn: bool = True) -> Engine:
    # `warn`: log what is wrong with the database server's settings (for the processes
    # that run on; not for each short admin command).
    engine = make_engine(settings)
    before, after = migrate(engine)
    if before != after:
        log.info("database migrated", extra={"from": before or "empty", "to": after})
    if warn:
        for warning in _server_warnings(engine):
            log.warning(warning)
    return engine


def _server_warnings(engine: Engine) -> list[str]:
    from vigil.db.server_checks import server_warnings

    with engine.connect() as conn:
        return server_warnings(conn)


def _consumer_names() -> list[str]:
    from vigil.streams.consumers import CONSUMERS

    return sorted(CONSUMERS)


def cmd_serve(settings: Settings, _args: argparse.Namespace) -> int:
    from vigil.serve.supervisor import (
        Announcement,
        Supervisor,
        child_env,
        prepare_metrics_dir,
        vigil_argv,
    )
    from vigil.streams.backend import get_backend

    _check_free(settings.host, settings.port)
    engine = _prepare(settings)
    boot = bootstrap(engine)
    with engine.connect() as conn:
        base_url = public_base_url(conn, settings)
    engine.dispose()
    names = _consumer_names()
    backend = get_backend(settings)
    try:
        backend.ensure_topics(names)
    finally:
        backend.close()

    def banner(listening: bool) -> None:
        _print_banner(
            settings,
            base_url,
            boot.created,
            boot.project.id,
            boot.key,
            boot.token,
            boot.organization,
            listening=listening,
        )

    metrics_dir = str((settings.home / "run" / "prometheus").resolve())
    prepare_metrics_dir(metrics_dir)
    children = {"web": vigil_argv("web"), "periodic": vigil_argv("periodic")}
    for name in names:
        children[f"consumer:{name}"] = vigil_argv("consumer", name)
    env = child_env(os.environ, metrics_dir)
    env["VIGIL_HOME"] = str(settings.home.resolve())
    # The banner says "listening" and gives the DSN: only once the web app listens.
    announcement = Announcement(settings.host, settings.port, banner)
    return Supervisor(children, env, announcement).run()


def _check_free(host: str, port: int) -> None:
    """CommandError if another program listens at host:port: the banner would name its
    address, and the web child fail to listen over and over. (Any other reason it cannot
    listen there is the web child's to report.)"""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # as the web app's server binds (a port in TIME_WAIT is free)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"cannot listen on {host}:{port}: another program listens there "
                    "(stop it, or set VIGIL_BIND to another address)"
                ) from None


def _print_banner(
    settings: Settings,
    base_url: str,
    created: bool,
    project_id: int,
    key: store.ProjectKey | None,
    token: str | None,
    org: store.Organization,
    *,
    listening: bool = True,
) -> None:
    # Not listening: the web app did not answer in time, or vigil is stopping without
    # it; the banner is printed anyway, as the first API token is shown nowhere else.
    if listening:
        lines = [f"vigil {__version__} listening on {settings.base_url}"]
    else:
        lines = [
            f"vigil {__version__}: the web app is not answering on {settings.bind} yet "
            "(see the log above)"
        ]
    if key is not None:
        lines.append(f"  DSN:       {credentials.format_dsn(base_url, key.public_key, project_id)}")
    else:
        lines.append("  DSN:       (the first project has no active key: `vigil key create`)")
    if token:
        lines.append(f"  API token: {token}")
        lines.append("             (shown once; create more with `vigil token create`)")
    else:
        lines.append(f"  API token: create one with `vigil token create --org {org.slug}`")
    lines.append(f"  Data:      {settings.home.resolve()}")
    if not created:
        lines.append("  (existing install: nothing was bootstrapped)")
    print("\n".join(lines), flush=True)


def cmd_web(settings: Settings, _args: argparse.Namespace) -> int:
    import uvicorn

    from vigil.api.app import create_app, server_options
    from vigil.gc_tuning import tune_for_throughput

    if not os.environ.get("VIGIL_SUPERVISED"):
        _prepare(settings).dispose()
    options = server_options()
    app = create_app(settings)
    tune_for_throughput()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        http=options.http,
        loop=options.loop,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_consumer(settings: Settings, args: argparse.Namespace) -> int:
    from vigil.gc_tuning import tune_for_throughput
    from vigil.streams.consumers import get_definition
    from vigil.streams.runner import run_consumer

    if args.list or not args.name:
        names = _consumer_names()
        print("\n".join(names) if names else "(no consumers are defined yet)")
        if not args.list:
            print("vigil consumer: name the consumer to run (one of the above)", file=sys.stderr)
        return 0 if args.list else 2
    definition = get_definition(args.name, settings)
    if not os.environ.get("VIGIL_SUPERVISED"):
        _prepare(settings).dispose()
    tune_for_throughput()
    run_consumer(definition, settings)
    return 0


def cmd_periodic(settings: Settings, args: argparse.Namespace) -> int:
    from vigil import periodic

    engine = make_engine(settings) if os.environ.get("VIGIL_SUPERVISED") else _prepare(settings)
    try:
        if args.once:
            periodic.run_once(engine, settings=settings)
        else:
            periodic.run_forever(engine, settings=settings)
    finally:
        engine.dispose()
    return 0


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    engine = make_engine(settings)
    before, after = migrate(engine)
    warnings = _server_warnings(engine)
    engine.dispose()
    if before == after:
        print(f"database is up to date (revision {after})")
    else:
        print(f"database migrated from {before or 'empty'} to {after}")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_cleanup(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from vigil.retention import remove_expired

    if args.days is not None and not 1 <= args.days <= MAX_RETENTION_DAYS:
        raise CommandError(f"--days must be from 1 to {MAX_RETENTION_DAYS:,}, got {args.days:,}")
    days = settings.retention_days if args.days is None else args.days
    if days <= 0:
        print("nothing to do: retention is off (VIGIL_RETENTION_DAYS=0; or pass --days N)")
        return 0
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=days)
    print(f"deleting what is older than {days} days (before {cutoff:%Y-%m-%d %H:%M} UTC)")
    totals: dict[str, int] = {}

    def progress(kind: str, count: int) -> None:
        totals[kind] = totals.get(kind, 0) + count
        print(f"  {kind}: {totals[kind]:,} deleted", flush=True)

    engine = _prepare(settings, warn=False)
    try:
        removed = remove_expired(engine, now, days, progress)
    finally:
        engine.dispose()
    print(
        f"done: {removed.issues:,} issues, {removed.events:,} events, "
        f"{removed.occurrences:,} occurrences, {removed.checkins:,} check-ins, "
        f"{removed.incidents:,} incidents deleted"
    )
    return 0


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from vigil.db.backup import BackupError, backup_sqlite, sqlite_path

    database = sqlite_path(settings.resolved_database_url)
    if database is None:
        raise CommandError(
            "the database is not a SQLite file: back it up with its own tools "
            "(pg_dump for PostgreSQL); vigil keeps everything else in the log"
        )
    if not database.is_file():
        raise CommandError(f"{database}: no such database (is VIGIL_HOME {settings.home}?)")
    target = Path(args.directory)
    if target.exists() and not target.is_dir():
        raise CommandError(f"{target}: not a directory (give a new or empty directory)")
    if target.is_dir() and any(target.iterdir()):
        raise CommandError(f"{target}: not empty (vigil never overwrites a backup)")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"{target}: cannot make the directory: {exc.strerror or exc}") from None
    # The log first: a message it still holds that the database copy has applied is
    # applied again on restore, to no effect (applying is idempotent); the other order
    # could leave out a message accepted after the database was copied.
    files = []
    if not settings.uses_kafka and settings.log_path.is_file():
        files.append(("the embedded log", settings.log_path, target / "log.sqlite3"))
    files.append(("the database", database, target / "vigil.sqlite3"))
    try:
        for what, source, copy in files:
            print(f"copying {what} ({source}) …", flush=True)
            started = time.monotonic()
            size = backup_sqlite(source, copy)
            took = time.monotonic() - started
            print(f"  {copy}: {size / 1e6:,.1f} MB in {took:.1f} s, checked", flush=True)
    except BackupError as exc:
        raise CommandError(str(exc)) from None
    print(
        f"done. To restore: stop vigil, put the files of {target} in place of those in "
        f"{settings.home} (deleting their -wal and -shm files), start vigil."
    )
    return 0


def cmd_config(settings: Settings, _args: argparse.Namespace) -> int:
    env_of = {name: env for env, name in ENV_VARS.items()}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if f.name in ("database_url", "smtp_url") and value:
            value = redact_url(value)  # shown to whoever runs it: never a password
        print(f"{env_of.get(f.name, f.name)}={value}")
    return 0


# --- management ------------------------------------------------------------------------


def _with_conn(settings: Settings, fn: Callable[[Connection], int]) -> int:
    engine = _prepare(settings, warn=False)
    try:
        with engine.begin() as conn:
            return fn(conn)
    finally:
        engine.dispose()


def cmd_org(settings: Settings, args: argparse.Namespace) -> int:
    def run(c: Connection) -> int:
        if args.action == "create":
            org = store.create_organization(c, args.slug, args.name)
            print(f"created organization {org.slug} (id {org.id})")
        else:
            for org in store.list_organizations(c):
                print(f"{org.id}\t{org.slug}\t{org.name}")
        return 0

    return _with_conn(settings, run)


def cmd_project(settings: Settings, args: argparse.Namespace) -> int:
    def run(c: Connection) -> int:
        org = store.get_organization(c, args.org)
        if args.action == "create":
            proj = store.create_project(c, org, args.slug, args.name)
            key = store.create_key(c, proj)
            base_url = public_base_url(c, settings)
            print(f"created project {proj.slug} (id {proj.id})")
            print(f"DSN: {credentials.format_dsn(base_url, key.public_key, proj.id)}")
        else:
            for proj in store.list_projects(c, org):
                print(f"{proj.id}\t{proj.slug}\t{proj.name}")
        return 0

    return _with_conn(settings, run)


def cmd_key(settings: Settings, args: argparse.Namespace) -> int:
    def run(c: Connection) -> int:
        if args.action in ("enable", "disable"):
            key = store.set_key_active(c, args.public_key, args.action == "enable")
            print(f"key {key.public_key} is now {'enabled' if key.is_active else 'disabled'}")
            return 0
        org = store.get_organization(c, args.org)
        proj = store.get_project(c, org, args.project)
        base_url = public_base_url(c, settings)
        if args.action == "create":
            key = store.create_key(c, proj, args.label)
            print(credentials.format_dsn(base_url, key.public_key, proj.id))
        else:
            for key in store.list_keys(c, proj):
                state = "active" if key.is_active else "disabled"
                dsn = credentials.format_dsn(base_url, key.public_key, proj.id)
                print(f"{key.public_key}\t{state}\t{key.label}\t{dsn}")
        return 0

    return _with_conn(settings, run)


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    def run(c: Connection) -> int:
        org = store.get_organization(c, args.org)
        if args.action == "create":
            try:
                token, secret = store.create_token(c, org, args.name, args.scope)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            print(secret)
            print(
                f"(token {token.id} for {org.slug}, scopes {' '.join(token.scopes)}; "
                "shown once, store it now)",
                file=sys.stderr,
            )
        elif args.action == "revoke":
            store.revoke_token(c, org, args.id)
            print(f"token {args.id} revoked")
        else:
            for token in store.list_tokens(c, org):
                state = "active" if token.is_active else "revoked"
                scopes = " ".join(token.scopes)
                print(f"{token.id}\t{token.token_prefix}…\t{state}\t{token.name}\t{scopes}")
        return 0

    return _with_conn(settings, run)


def _test_webhook(settings: Settings, c: Connection, hook: Webhook) -> int:
    from datetime import UTC, datetime

    from vigil.webhooks import sender
    from vigil.webhooks import store as webhooks

    project = webhooks.sample_project(c, hook)
    base_url = public_base_url(c, settings)
    c.commit()  # nothing held open while the receiver answers
    print(f"sending a test notification to {hook.url} …", flush=True)
    outcome = sender.send_test(settings, hook, project, base_url, datetime.now(UTC))
    if outcome.delivered:
        protocol = "SMTP" if hook.format == "email" else "HTTP"
        print(f"delivered ({protocol} {outcome.code})" if outcome.code else "delivered")
        return 0
    print(f"vigil: not delivered: {outcome.error}", file=sys.stderr)
    return 1


def cmd_webhook(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from vigil.webhooks import store as webhooks

    def run(c: Connection) -> int:
        org = store.get_organization(c, args.org)
        if args.action == "add":
            project = None if args.project is None else store.get_project(c, org, args.project)
            hook = webhooks.create_webhook(
                c,
                org,
                project,
                args.target,
                fmt=args.format,
                actions=args.on,
                now=datetime.now(UTC),
                mail_relay=bool(settings.smtp_url),
            )
            print(f"webhook {hook.id} for {org.slug}/{hook.project_slug or '*'}: {hook.url}")
            print(f"  format {hook.format}; on {', '.join(hook.actions)}")
            if hook.format != "email":
                print(f"  signing secret (Sentry-Hook-Signature): {hook.secret}")
        elif args.action == "remove":
            webhooks.delete_webhook(c, org, args.target)
            print(f"webhook {args.target} removed")
        elif args.action == "test":
            return _test_webhook(settings, c, webhooks.get_webhook(c, org, args.target))
        elif args.action == "deliveries":
            hook = webhooks.get_webhook(c, org, args.target)
            protocol = "SMTP" if hook.format == "email" else "HTTP"
            for row in webhooks.recent_deliveries(c, hook.id):
                code = "-" if row.response_code is None else row.response_code
                print(
                    f"{row.id}\t{row.date_added:%Y-%m-%d %H:%M:%S}\tissue {row.group_id}\t"
                    f"{row.action}\t{row.status}\tattempts {row.attempts}\t{protocol} {code}\t"
                    f"{row.last_error or ''}"
                )
        else:
            hooks = webhooks.list_webhooks(c, org)
            counts = webhooks.delivery_counts(c, [h.id for h in hooks])
            for hook in hooks:
                n = counts[hook.id]
                print(
                    f"{hook.id}\t{hook.project_slug or '*'}\t{hook.format}\t{hook.url}\t"
                    f"{','.join(hook.actions)}\tpending {n.pending} delivered {n.delivered} "
                    f"failed {n.failed}\tsecret {hook.secret}"
                    + (f"\tlast error: {hook.last_error}" if hook.last_error else "")
                )
        return 0

    return _with_conn(settings, run)


def cmd_feature(settings: Settings, args: argparse.Namespace) -> int:
    from vigil.issues.projects import FEATURE_PREFIX, features_read

    def run(c: Connection) -> int:
        org = store.get_organization(c, args.org)
        if args.action in ("enable", "disable"):
            if not args.feature:
                raise CommandError(f"feature {args.action} needs a feature name")
            store.set_feature(c, org, args.feature, args.action == "enable")
            print(f"{args.feature} {args.action}d for {org.slug}")
            known = features_read()
            if args.feature not in known:
                shown = sorted(name for name in known if name.startswith(FEATURE_PREFIX))
                print(
                    f"warning: vigil reads no feature named {args.feature!r}; it is stored "
                    f"anyway. vigil reads: {', '.join(shown)}",
                    file=sys.stderr,
                )
        else:
            for name, enabled in sorted(store.features(c, org.id).items()):
                print(f"{name}\t{'on' if enabled else 'off'}")
        return 0

    return _with_conn(settings, run)


def cmd_option(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from vigil import options
    from vigil.option_checks import OPTIONS, check_option

    def run(c: Connection) -> int:
        stored = options.list_options(c)
        if args.action == "list":
            # Every option vigil reads, set or not, then any other stored with --force.
            for key in [*sorted(OPTIONS), *sorted(set(stored) - set(OPTIONS))]:
                shown = json.dumps(stored[key]) if key in stored else "(not set: the default)"
                print(f"{key}\t{shown}")
        elif args.action == "get":
            if args.key not in OPTIONS and args.key not in stored:
                raise CommandError(f"unknown option {args.key!r} (vigil option list shows them)")
            print(json.dumps(stored.get(args.key)))
            if args.key not in stored:
                print(f"({args.key} is not set: vigil uses its default)", file=sys.stderr)
        else:
            try:
                value = json.loads(args.value)
            except json.JSONDecodeError as exc:
                raise CommandError(f"option value must be JSON: {exc}") from None
            if not args.force:
                try:
                    check_option(args.key, value)
                except ValueError as exc:
                    raise CommandError(f"{exc} (--force stores it anyway)") from None
            options.set_option(c, args.key, value)
            print(f"{args.key} = {json.dumps(value)}")
        return 0

    return _with_conn(settings, run)


def cmd_bench(_settings: Settings, args: argparse.Namespace) -> int:
    from vigil.bench import BenchError

    # The benchmark's own bookkeeping (topics made in its temporary home) is not news.
    if log.getEffectiveLevel() < logging.WARNING:
        log.setLevel(logging.WARNING)
    try:
        return int(args.bench(args))
    except BenchError as exc:
        raise CommandError(f"bench {args.benchmark}: {exc}") from None


def _add_bench(sub: Any) -> None:
    from vigil.bench import checkins, occurrences

    p = sub.add_parser(
        "bench",
        help="measure this machine: check-ins or occurrences end to end, each beside a "
        "baseline from the same run (in a temporary home unless given a database)",
    )
    benchmarks = p.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, module, summary in (
        ("checkins", checkins, "HTTP envelopes into `vigil serve` until applied"),
        ("occurrences", occurrences, "occurrences from the log to the issues API"),
    ):
        b = benchmarks.add_parser(name, help=summary, description=module.__doc__)
        b.formatter_class = argparse.RawDescriptionHelpFormatter
        module.add_arguments(b)
        b.set_defaults(bench=module.command)
    p.set_defaults(func=cmd_bench)


# --- parser ----------------------------------------------------------------------------


class _CommandParser(argparse.ArgumentParser):
    """A command's parser that takes its options anywhere among its positionals:
    `vigil project create --org acme app` as well as `vigil project --org acme create
    app`. Plain argparse fills an optional positional (the slug) with its default when
    an option stands between it and the action, then refuses the slug."""

    _intermixing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        nested = any(a.nargs in (argparse.PARSER, argparse.REMAINDER) for a in self._actions)
        if self._intermixing or nested:  # intermixed parsing cannot nest; it calls us back
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


# Where to listen is a setting, as every other (no --port flag): say so where it is looked for.
_LISTEN_EPILOG = (
    "The web app listens on VIGIL_BIND (default 127.0.0.1:9000), e.g. "
    "`VIGIL_BIND=0.0.0.0:9000 vigil serve`; other settings: `vigil config`."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil",
        description="Self-hosted, Sentry-compatible cron monitoring and issue ingestion.",
        epilog="Settings come from VIGIL_* environment variables and $VIGIL_HOME/vigil.toml "
        "(see `vigil config`).",
    )
    parser.add_argument("--version", action="version", version=f"vigil {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser
    )

    sub.add_parser(
        "serve",
        help="run everything: the web app, every consumer and the periodic jobs, supervised",
        epilog=_LISTEN_EPILOG,
    ).set_defaults(func=cmd_serve)
    sub.add_parser(
        "web", help="run only the web app (ingest, API, health, metrics)", epilog=_LISTEN_EPILOG
    ).set_defaults(func=cmd_web)
    p = sub.add_parser("consumer", help="run one named consumer")
    p.add_argument("name", nargs="?")
    p.add_argument("--list", action="store_true", help="list the consumers")
    p.set_defaults(func=cmd_consumer)
    p = sub.add_parser(
        "periodic",
        help="run only the timer-driven jobs: expiry of sampling rules, issues unignored when "
        "their time is up, the crons clock's idle tick and pulses, the outbox flush, retention",
    )
    p.add_argument("--once", action="store_true", help="run each job once and exit")
    p.set_defaults(func=cmd_periodic)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("config", help="print the effective settings").set_defaults(func=cmd_config)
    p = sub.add_parser(
        "backup",
        help="copy the SQLite database and the embedded log, while vigil runs, into a new "
        "directory",
    )
    p.add_argument("directory", help="where the copies go: a new or empty directory")
    p.set_defaults(func=cmd_backup)
    p = sub.add_parser(
        "cleanup",
        help="delete issues, events and check-ins older than the retention, at once and for "
        "good (vigil periodic does it hourly)",
    )
    p.add_argument(
        "--days",
        type=int,
        help="keep this many days instead of VIGIL_RETENTION_DAYS",
    )
    p.set_defaults(func=cmd_cleanup)

    p = sub.add_parser("org", help="organizations")
    p.add_argument("action", choices=["list", "create"])
    p.add_argument("slug", nargs="?")
    p.add_argument("--name")
    p.set_defaults(func=cmd_org, needs_slug={"create"})

    p = sub.add_parser("project", help="projects (create also makes a DSN key)")
    p.add_argument("action", choices=["list", "create"])
    p.add_argument("slug", nargs="?")
    p.add_argument("--org", default="default")
    p.add_argument("--name")
    p.set_defaults(func=cmd_project, needs_slug={"create"})

    p = sub.add_parser("key", help="DSN keys")
    p.add_argument("action", choices=["list", "create", "enable", "disable"])
    p.add_argument("public_key", nargs="?", help="for enable/disable")
    p.add_argument("--org", default="default")
    p.add_argument("--project", default="default")
    p.add_argument("--label", default="Default")
    p.set_defaults(func=cmd_key)

    p = sub.add_parser("token", help="API tokens")
    p.add_argument("action", choices=["list", "create", "revoke"])
    p.add_argument("--org", default="default")
    p.add_argument("--name", default="cli")
    p.add_argument(
        "--scope",
        action="append",
        help=f"repeat for several (default: all of {', '.join(credentials.ALL_SCOPES)})",
    )
    p.add_argument("--id", type=int, help="for revoke")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser(
        "webhook", help="issue webhooks: POST new, resolved, unresolved, archived issues"
    )
    p.add_argument("action", choices=["list", "add", "remove", "deliveries", "test"])
    p.add_argument(
        "target",
        nargs="?",
        help="add: the URL (https://…, or mailto:a@example.com,b@example.com to email through "
        "VIGIL_SMTP_URL); remove, deliveries, test (send it a test notification now): the "
        "webhook id",
    )
    p.add_argument("--org", default="default")
    p.add_argument("--project", help="add: only this project's issues (default: all)")
    p.add_argument("--format", choices=["sentry", "slack"], help="add: the body (default: sentry)")
    p.add_argument(
        "--on",
        action="append",
        choices=["created", "resolved", "unresolved", "archived"],
        help="add: repeat for several (default: all)",
    )
    p.set_defaults(func=cmd_webhook)

    p = sub.add_parser("feature", help="per-organization features")
    p.add_argument("action", choices=["list", "enable", "disable"])
    p.add_argument("feature", nargs="?")
    p.add_argument("--org", default="default")
    p.set_defaults(func=cmd_feature)

    p = sub.add_parser("option", help="server options (e.g. crons.organization.disable-check-in)")
    p.add_argument("action", choices=["list", "get", "set"])
    p.add_argument("key", nargs="?")
    p.add_argument("value", nargs="?", help="for set: the value as JSON")
    p.add_argument(
        "--force", action="store_true", help="for set: store a key or value vigil does not know"
    )
    p.set_defaults(func=cmd_option)
    _add_bench(sub)
    # Each command's own --help opens with the line the command list shows for it.
    for action in sub._choices_actions:
        command = sub.choices[action.dest]
        if command.description is None:
            command.description = action.help
    return parser


def _check_args(args: argparse.Namespace) -> None:
    needs_slug: set[str] = getattr(args, "needs_slug", set())
    if getattr(args, "action", None) in needs_slug and not args.slug:
        raise CommandError(f"{args.command} {args.action} needs a slug")
    if args.command == "key" and args.action in ("enable", "disable") and not args.public_key:
        raise CommandError(f"key {args.action} needs the public key")
    if args.command == "token" and args.action == "revoke" and args.id is None:
        raise CommandError("token revoke needs --id")
    if args.command == "webhook" and args.action != "list" and not args.target:
        what = "URL" if args.action == "add" else "webhook id"
        raise CommandError(f"webhook {args.action} needs the {what}")
    if args.command == "option" and args.action != "list" and not args.key:
        raise CommandError(f"option {args.action} needs a key")
    if args.command == "option" and args.action == "set" and args.value is None:
        raise CommandError("option set needs a value (JSON)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        logs.configure(settings.log_level, settings.log_format, role=args.command)
        _check_args(args)
        return int(args.func(settings, args))
    except ConfigError as exc:
        print(f"vigil: configuration error: {exc}", file=sys.stderr)
        return 2
    except (CommandError, store.TenancyError) as exc:
        print(f"vigil: {exc}", file=sys.stderr)
        return 1
    except LogError as exc:
        print(f"vigil: cannot use the log: {exc}", file=sys.stderr)
        return 1
    except OperationalError as exc:
        print(f"vigil: cannot use the database: {exc.orig}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

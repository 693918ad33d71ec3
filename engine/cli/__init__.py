"""The ``kaleem`` command line: run the engine, and wrap the admin API for operators.

Admin commands talk HTTP to a running engine (``--url``, default from the settings) with the
operator token (``KALEEM_ADMIN_TOKEN`` or the one ``kaleem serve`` generated in the data dir).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import signal
import sys
from pathlib import Path
from typing import Any

from engine.adapters.datadir import DataDirInUse, EngineLock
from engine.cli import outbox
from engine.cli.common import CliError, operator_token, request, settings_from
from engine.config import ConfigError


# -- serve -------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    # Fail fast, before Ray is even imported, when another engine owns this data dir.
    lock = None
    if settings.role != "gateway":
        lock = EngineLock.acquire(settings.data_dir, settings.role)
    from actors.runtime import Runtime, ensure_admin_token
    from observability.logging_setup import configure

    configure(settings.log_level, settings.log_json, service="kaleem-gateway")
    settings, generated = ensure_admin_token(settings)
    runtime = Runtime(settings, engine_lock=lock)
    try:
        print("starting Kaleem: building/verifying models, Redis, Ray, Serve …", flush=True)
        runtime.start_backends()
        return asyncio.run(_serve(runtime, args.demo, generated))
    finally:
        runtime.stop_backends()
        print("Kaleem stopped.", flush=True)


async def _serve(runtime: Any, demo: bool, generated_token: bool) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if runtime.settings.role == "workers":
            await runtime.run_workers()
            print("Kaleem workers are running (actors and Serve; no gateway)", flush=True)
            code = await _until_stopped(runtime, stop)
            print("shutting down …", flush=True)
            return code
        await runtime.start_gateway()
        s = runtime.settings
        base = s.base_url
        lines = [
            f"Kaleem is running on {base}",
            f"  console:        {base}/console/  (sign up there, or log in)",
            f"  admin API:      {base}/api/v1  (health {base}/healthz, ready {base}/readyz)",
            f"  metrics:        {base}/metrics",
        ]
        if s.ray_dashboard:
            lines.append(f"  Ray dashboard:  http://127.0.0.1:{s.ray_dashboard_port}")
        if generated_token:
            lines.append(f"  operator token: written to {s.data_dir / 'admin.token'}")
        if demo:
            from engine.demo.seed import seed_demo

            info = await seed_demo(base, s.admin_token, s.data_dir)
            lines += [
                f"  demo store:     {info['merchant_id']} (API key in {info['key_file']})",
                f"  webchat:        {base}/webchat/{info['merchant_id']}",
            ]
            if info.get("console_file"):
                lines.append(f"  console login:  in {info['console_file']} (email, password)")
        print("\n".join(lines), flush=True)
        await stop.wait()
        print("shutting down …", flush=True)
    finally:
        await runtime.stop()
    return 0


async def _until_stopped(runtime: Any, stop: asyncio.Event) -> int:
    """0 on SIGTERM/SIGINT; 1 once the runtime can no longer work by itself.

    The workers role has no ``/healthz`` for an orchestrator to probe, so when its Redis
    supervisor gives up the process exits non-zero and gets restarted instead.
    """
    while True:
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
            return 0
        except TimeoutError:
            reason = runtime.liveness()
            if reason:
                print(f"kaleem: error: {reason}; exiting", file=sys.stderr, flush=True)
                return 1


# -- admin commands ----------------------------------------------------------------------------
def cmd_merchant_create(args: argparse.Namespace) -> int:
    s = settings_from(args)
    url = (args.url or s.base_url).rstrip("/")
    out = asyncio.run(
        request(
            "POST",
            f"{url}/api/v1/merchants",
            operator_token(s),
            json_body={"name": args.name, "default_language": args.language},
        )
    )
    print(json.dumps(out, ensure_ascii=False))
    return 0


def _content_type_for(path: Path) -> str:
    return "text/csv" if path.suffix.lower() == ".csv" else "application/x-ndjson"


def _read_import_file(name: str) -> tuple[Path, bytes]:
    path = Path(name)
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    return path, path.read_bytes()


async def _import(args: argparse.Namespace, route: str, path: Path, data: bytes) -> int:
    s = settings_from(args)
    url = (args.url or s.base_url).rstrip("/")
    token = operator_token(s)
    job = await request(
        "POST",
        f"{url}{route}",
        token,
        data=data,
        content_type=_content_type_for(path),
        merchant=args.merchant,
    )
    job_id = job["job_id"]
    while True:
        status = await request("GET", f"{url}/api/v1/jobs/{job_id}", token, merchant=args.merchant)
        progress = status.get("progress", {})
        total = int(progress.get("total") or 0)
        indexed = int(progress.get("indexed") or 0)
        width = 30
        filled = int(width * indexed / total) if total else width
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {indexed}/{total}")
        sys.stderr.flush()
        if status["status"] != "running":
            sys.stderr.write("\n")
            break
        await asyncio.sleep(0.5)
    for err in status.get("errors", [])[:50]:
        sys.stderr.write(f"line {err.get('line')}: {err.get('message')}\n")
    print(json.dumps({"job_id": job_id, **status}, ensure_ascii=False))
    return 0 if status["status"] == "done" else 1


def cmd_catalog_import(args: argparse.Namespace) -> int:
    return asyncio.run(_import(args, "/api/v1/catalog/import", *_read_import_file(args.file)))


def cmd_knowledge_import(args: argparse.Namespace) -> int:
    return asyncio.run(_import(args, "/api/v1/knowledge/import", *_read_import_file(args.file)))


def _channel_secrets(args: argparse.Namespace) -> tuple[str, str]:
    """The bot token and webhook secret: prompted for (a terminal) or read as two lines of
    stdin, so they never sit in argv where any local user's ``ps`` can read them."""
    if args.bot_token or args.secret_token:
        sys.stderr.write(
            "kaleem: warning: --bot-token/--secret-token are visible to other local users "
            "(ps); pipe them on stdin instead\n"
        )
    bot_token, secret_token = args.bot_token or "", args.secret_token or ""
    if not (bot_token and secret_token):
        if sys.stdin.isatty():
            bot_token = bot_token or getpass.getpass("bot token: ")
            secret_token = secret_token or getpass.getpass("webhook secret token: ")
        else:
            lines = [line.strip() for line in sys.stdin.read(4096).splitlines() if line.strip()]
            if len(lines) < 2 - bool(bot_token) - bool(secret_token):
                raise CliError("give the bot token and the webhook secret as two lines on stdin")
            queue = iter(lines)
            bot_token = bot_token or next(queue)
            secret_token = secret_token or next(queue)
    return bot_token, secret_token


def cmd_channel_create(args: argparse.Namespace) -> int:
    s = settings_from(args)
    url = (args.url or s.base_url).rstrip("/")
    bot_token, secret_token = _channel_secrets(args)
    body: dict[str, Any] = {
        "kind": args.kind,
        "bot_token": bot_token,
        "secret_token": secret_token,
    }
    if args.api_base:
        body["api_base"] = args.api_base
    out = asyncio.run(
        request(
            "POST",
            f"{url}/api/v1/channels",
            operator_token(s),
            json_body=body,
            merchant=args.merchant,
        )
    )
    print(json.dumps(out, ensure_ascii=False))
    return 0


def cmd_models_build(args: argparse.Namespace) -> int:
    from models.registry import ensure_models

    s = settings_from(args)
    target = Path(args.models_dir) if args.models_dir else s.models_dir
    paths = ensure_models(target)
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kaleem", description="Kaleem conversation engine")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the engine (Ray, Serve, actors, gateway)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir")
    serve.add_argument("--demo", action="store_true", help="seed a bilingual demo store")
    serve.add_argument(
        "--role",
        choices=["all", "workers", "gateway"],
        help="all (default): everything in one process; workers: Ray actors + Serve only; "
        "gateway: an extra gateway replica attaching to running workers (needs RAY_ADDRESS)",
    )
    serve.set_defaults(func=cmd_serve)

    def admin(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--url", help="engine base URL (default from settings)")
        parser.add_argument("--data-dir")

    merchant = sub.add_parser("merchant", help="merchant accounts").add_subparsers(
        dest="action", required=True
    )
    mc = merchant.add_parser("create")
    mc.add_argument("--name", required=True)
    mc.add_argument("--language", choices=["ar", "en"], default="ar")
    admin(mc)
    mc.set_defaults(func=cmd_merchant_create)

    for name, func in (("catalog", cmd_catalog_import), ("knowledge", cmd_knowledge_import)):
        grp = sub.add_parser(name, help=f"{name} imports").add_subparsers(
            dest="action", required=True
        )
        imp = grp.add_parser("import")
        imp.add_argument("file")
        imp.add_argument("--merchant", required=True)
        admin(imp)
        imp.set_defaults(func=func)

    channel = sub.add_parser("channel", help="channels").add_subparsers(
        dest="action", required=True
    )
    cc = channel.add_parser("create")
    cc.add_argument("kind", choices=["telegram"])
    cc.add_argument("--merchant", required=True)
    cc.add_argument("--bot-token", help="visible in ps: prefer stdin (first line)")
    cc.add_argument("--secret-token", help="visible in ps: prefer stdin (second line)")
    cc.add_argument("--api-base")
    admin(cc)
    cc.set_defaults(func=cmd_channel_create)

    outbox.register(sub, admin)

    from engine.evaluation.cli import register as register_eval

    register_eval(sub)

    models = sub.add_parser("models", help="ML model assets").add_subparsers(
        dest="action", required=True
    )
    mb = models.add_parser("build", help="build and verify the ONNX encoders")
    mb.add_argument("--models-dir")
    mb.add_argument("--data-dir")
    mb.set_defaults(func=cmd_models_build)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, ConfigError, DataDirInUse) as exc:
        print(f"kaleem: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

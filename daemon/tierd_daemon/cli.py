"""`tierd`: the command line of the tierd storage daemon.

Reads like its peers: `tierd COMMAND [OPTIONS]`, --help on every command,
exit status 0 on success, 1 when a check finds a problem, 2 on bad usage.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from tierd.errors import TierdError
from tierd_daemon import __version__
from tierd_daemon.units import format_size

log = logging.getLogger("tierd")

EPILOG = """\
examples:
  tierd serve                     run the daemon in the foreground (systemd: tierd.service)
  tierd demo                      start tierd and drive a checkpoint + KV workload through it
  tierd ckpt ls run-42            list a training run's checkpoints
  tierd ckpt export run-42 latest out.safetensors
  tierd fsck                      verify the default store (catalog, space, checksums)
  tierd fsck --data-dir /var/lib/tierd --json
  tierd --config /etc/tierd/tierd.toml fsck

Configuration: --config FILE, else $TIERD_CONFIG, else a built-in default that
needs no file (data under ~/.local/share/tierd). See config/tierd.toml.
"""


def setup_logging(level: str = "info") -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def _add_common(p: argparse.ArgumentParser, default) -> None:
    kw = {} if default is None else {"default": default}
    p.add_argument("-c", "--config", metavar="FILE", help="TOML config (default: $TIERD_CONFIG "
                   "or the built-in default)", **kw)
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only", **kw)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tierd", description="Tiered DRAM/NVMe storage daemon for GPU hosts.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"tierd {__version__}")
    _add_common(p, None)
    # The same options after the command (`tierd fsck -q`), as systemctl allows.
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sv = sub.add_parser("serve", parents=[common], help="run the daemon in the foreground",
                        description="Run tierd in the foreground, as systemd runs it "
                        "(Type=notify). Stops on SIGTERM after flushing dirty data to NVMe.")
    sv.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                    help="override log_level from the config")

    f = sub.add_parser("fsck", parents=[common], help="verify catalog, space accounting and checksums",
                       description="Verify a store: every catalog record decodes and lies inside "
                       "the data files, no two objects share a page, the free space is exactly "
                       "what the catalog leaves, and (unless --no-verify-data) every object "
                       "matches its checksum. Exits 1 on any inconsistency.")
    f.add_argument("--data-dir", metavar="DIR", help="store directory (default: from config)")
    f.add_argument("--no-verify-data", action="store_true", help="skip reading every object")
    f.add_argument("--json", action="store_true", help="print the report as JSON")

    d = sub.add_parser("demo", parents=[common],
                       help="start the daemon (if none runs) and drive a real workload through it",
                       description="Start tierd on the configured (or built-in default) config "
                       "unless one already serves the socket, save and restore a training "
                       "state through shared memory, restart the daemon for a cold restore "
                       "from NVMe, write KV-cache-style blocks, then remove the demo's objects "
                       "and stop the daemon it started.")
    d.add_argument("--size", default="256MiB", help="bytes of state to write (default 256MiB)")
    d.add_argument("--chunk", default="16MiB", help="checkpoint chunk size (default 16MiB)")
    d.add_argument("--rounds", type=int, default=3, help="checkpoint steps (default 3)")

    from tierd_daemon.cli_objects import add_commands
    p.object_handlers = add_commands(sub, common)
    from tierd_daemon.cli_ckpt import add_commands as add_ckpt_commands
    p.object_handlers.update(add_ckpt_commands(sub, common))
    return p


def _store_config_and_dir(args):
    from tierd_daemon import config as config_mod
    cfg = config_mod.load(args.config)
    return cfg, (args.data_dir or cfg.store_dir)


def cmd_fsck(args) -> int:
    from tierd_daemon.store import Store
    cfg, path = _store_config_and_dir(args)
    with Store.open(path, cfg.store, allow_damaged=True) as store:
        progress = None
        if sys.stderr.isatty() and not args.json:
            def progress(i, n):
                if i == n or i % 64 == 0:
                    print(f"\rverifying {i}/{n} objects", end="" if i < n else "\n",
                          file=sys.stderr, flush=True)
        rep = store.fsck(verify_data=not args.no_verify_data, progress=progress)
        usage = store.usage()
    if args.json:
        print(json.dumps(dict(rep.to_dict(), store=path), indent=2))
    else:
        print(f"store {path}: {rep.objects} objects, {format_size(rep.logical_bytes)} logical, "
              f"{format_size(usage.used_bytes)} of {format_size(usage.capacity_bytes)} used")
        for w in rep.warnings:
            print(f"warning: {w}")
        for e in rep.errors:
            print(f"error: {e}")
        print(f"fsck: {'clean' if rep.ok else f'{len(rep.errors)} error(s)'}"
              f"{f', {rep.verified} objects verified' if rep.verified else ''}")
    return 0 if rep.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        if args.command == "serve":
            from tierd_daemon import config as config_mod
            from tierd_daemon.service import serve
            cfg = config_mod.load(args.config)
            setup_logging("warning" if args.quiet else (args.log_level or cfg.log_level))
            logging.getLogger("tierd").info("config: %s", cfg.source)
            return serve(cfg)
        setup_logging("warning" if args.quiet else "info")
        if args.command == "fsck":
            return cmd_fsck(args)
        if args.command == "demo":
            from tierd_daemon.demo import run_demo
            return run_demo(args)
        if args.command in parser.object_handlers:
            return parser.object_handlers[args.command](args)
    except TierdError as e:
        print(f"tierd: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())

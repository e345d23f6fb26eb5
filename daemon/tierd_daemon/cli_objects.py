"""`tierd put|get|rm|ls|status`: objects and daemon state from the shell.

These commands are clients of a running daemon (tierd.connect); they never
open the store themselves. cli.py wires them in with add_commands().

    tierd put default ckpt/step100 model.bin     # waits for "persisted" in durable namespaces
    echo hello | tierd put cache greeting
    tierd get default ckpt/step100 -o model.bin
    tierd ls default --prefix ckpt/ -l
    tierd rm cache greeting
    tierd status [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable

from tierd.errors import TierdError
from tierd_daemon.units import format_size


def _add_socket(p: argparse.ArgumentParser) -> None:
    p.add_argument("--socket", metavar="PATH",
                   help="daemon socket (default: $TIERD_SOCKET, the config's [server] socket "
                   "with --config, else $XDG_RUNTIME_DIR/tierd/tierd.sock, "
                   "/tmp/tierd-$UID/tierd.sock, /run/tierd/tierd.sock)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="give up on an unresponsive daemon after this long (default 30)")


def add_commands(sub, common: argparse.ArgumentParser) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add put/get/rm/ls/status to the `tierd` subparsers; return name -> handler(args) -> int."""
    p = sub.add_parser("put", parents=[common], help="store an object (from a file or stdin)",
                       description="Store FILE (or stdin, with - or no FILE) as KEY in namespace "
                       "NS. Waits until the object is on NVMe when the namespace is durable, "
                       "else until it is in the DRAM tier; --durability overrides.")
    p.add_argument("ns", metavar="NS")
    p.add_argument("key", metavar="KEY")
    p.add_argument("file", metavar="FILE", nargs="?", default="-")
    p.add_argument("--durability", choices=("staged", "persisted"),
                   help="staged: in DRAM; persisted: on NVMe (default: persisted in durable "
                   "namespaces, staged otherwise)")
    _add_socket(p)

    g = sub.add_parser("get", parents=[common], help="read an object (to stdout or a file)",
                       description="Write the bytes of KEY in namespace NS to stdout, or to FILE "
                       "with -o. Exits 1 if there is no such object.")
    g.add_argument("ns", metavar="NS")
    g.add_argument("key", metavar="KEY")
    g.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    _add_socket(g)

    r = sub.add_parser("rm", parents=[common], help="delete an object",
                       description="Delete KEY from namespace NS. Exits 1 if there was none.")
    r.add_argument("ns", metavar="NS")
    r.add_argument("key", metavar="KEY")
    _add_socket(r)

    ls = sub.add_parser("ls", parents=[common], help="list the keys of a namespace",
                        description="List the keys of namespace NS in order, one a line.")
    ls.add_argument("ns", metavar="NS")
    ls.add_argument("--prefix", default="", metavar="P", help="only keys starting with P")
    ls.add_argument("-l", "--long", action="store_true", help="also show size and tier")
    _add_socket(ls)

    st = sub.add_parser("status", parents=[common], help="show the daemon's tiers and namespaces",
                        description="Per namespace: DRAM used/capacity, dirty bytes, DRAM hit "
                        "rate, NVMe used and flush backlog. --json prints the daemon's status "
                        "document as it is.")
    st.add_argument("--json", action="store_true", help="print the status document as JSON")
    _add_socket(st)

    handlers = {"put": _guard(cmd_put), "get": _guard(cmd_get), "rm": _guard(cmd_rm),
                "ls": _guard(cmd_ls), "status": _guard(cmd_status)}
    # Each subcommand also carries its handler, so cli.main can dispatch with
    # `args.object_handler(args)` without keeping the dict around.
    for name, parser in (("put", p), ("get", g), ("rm", r), ("ls", ls), ("status", st)):
        parser.set_defaults(object_handler=handlers[name])
    return handlers


def _guard(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Every tierd error (NotFound, DaemonUnavailable, ...) -> `tierd: error: ...`, exit 1."""
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except TierdError as e:
            print(f"tierd: error: {e}", file=sys.stderr)
            return 1
        except BrokenPipeError:  # `tierd get ... | head`
            try:
                sys.stdout = open(os.devnull, "w")
            except OSError:
                pass
            return 1
    run.__name__ = run.__qualname__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def _socket_path(args) -> str | None:
    if getattr(args, "socket", None):
        return args.socket
    if os.environ.get("TIERD_SOCKET"):
        return None  # connect() reads it
    if getattr(args, "config", None):
        # An explicit config names the daemon's socket.
        from tierd_daemon import config as config_mod
        cfg = config_mod.load(args.config)
        server = getattr(cfg, "server", None)
        sock = getattr(server, "socket", "") if server is not None else ""
        if sock:
            return sock
    return None


def _connect(args):
    import tierd
    return tierd.connect(_socket_path(args), timeout=getattr(args, "timeout", 30.0))


def _key_text(k: bytes) -> str:
    return k.decode("utf-8", "backslashreplace")


def cmd_put(args) -> int:
    if args.file == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = _read_file(args.file)
        except OSError as e:
            print(f"tierd: error: cannot read {args.file}: {e.strerror or e}", file=sys.stderr)
            return 1
    with _connect(args) as c:
        durability = args.durability
        if durability is None:
            durability = "persisted" if c.namespace_info(args.ns)["durable"] else "staged"
        c.put(args.ns, args.key, data, durability=durability)
    return 0


def _read_file(path: str):
    """A regular file mapped read-only (one copy, straight into the arena); else its bytes."""
    import mmap
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        import stat as stat_mod
        if stat_mod.S_ISREG(st.st_mode) and st.st_size > 0:
            return memoryview(mmap.mmap(f.fileno(), st.st_size, prot=mmap.PROT_READ))
        return f.read()


def cmd_get(args) -> int:
    with _connect(args) as c:
        with c.get(args.ns, args.key) as lease:
            buf = lease.array.data  # no copy: straight from the arena
            if args.output and args.output != "-":
                tmp = f"{args.output}.tierd-tmp"
                try:
                    with open(tmp, "wb") as f:
                        f.write(buf)
                    os.replace(tmp, args.output)
                except OSError as e:
                    try:
                        os.unlink(tmp)
                    except OSError:
                        pass
                    print(f"tierd: error: cannot write {args.output}: {e.strerror or e}",
                          file=sys.stderr)
                    return 1
            else:
                out = sys.stdout.buffer
                out.write(buf)
                out.flush()
    return 0


def cmd_rm(args) -> int:
    with _connect(args) as c:
        c.delete(args.ns, args.key)
    return 0


def cmd_ls(args) -> int:
    out = sys.stdout
    with _connect(args) as c:
        for k in c.list(args.ns, prefix=args.prefix.encode("utf-8", "surrogateescape")):
            if args.long:
                try:
                    st = c.stat(args.ns, k)
                except TierdError as e:
                    if getattr(e, "code", "") == "NOT_FOUND":
                        continue  # deleted between list and stat
                    raise
                out.write(f"{st.get('size', 0):>14}  {str(st.get('tier', '?')):<5}  "
                          f"{_key_text(k)}\n")
            else:
                out.write(_key_text(k) + "\n")
    out.flush()
    return 0


# ---- status -----------------------------------------------------------------------------

def _first(d: dict, *names, default=None):
    for n in names:
        if isinstance(d, dict) and d.get(n) is not None:
            return d[n]
    return default


def _namespaces(doc: dict) -> dict[str, dict]:
    """Per-namespace rows from the status document, merging DRAM and NVMe sections."""
    rows: dict[str, dict] = {}

    def merge(section, prefix=""):
        if isinstance(section, list):
            section = {str(x.get("ns", x.get("name", i))): x for i, x in enumerate(section)
                       if isinstance(x, dict)}
        if not isinstance(section, dict):
            return
        for name, v in section.items():
            if isinstance(v, dict):
                row = rows.setdefault(str(name), {})
                for k, val in v.items():
                    row.setdefault(prefix + k if prefix and not k.startswith(prefix) else k, val)

    merge(doc.get("namespaces"))
    tiers = doc.get("tiers") if isinstance(doc.get("tiers"), dict) else {}
    for tier_name in ("dram", "nvme"):
        sec = doc.get(tier_name, tiers.get(tier_name))
        if isinstance(sec, dict):
            merge(sec.get("namespaces", sec if tier_name == "dram" else None),
                  prefix=f"{tier_name}_")
    return rows


def _pct(v) -> str:
    return "-" if v is None else f"{100 * float(v):.1f}%"


def _size(v) -> str:
    return "-" if v is None else format_size(int(v))


def format_status(doc: dict) -> str:
    rows = _namespaces(doc)
    head = ("NAMESPACE", "DRAM USED", "DRAM CAP", "DIRTY", "HIT RATE", "NVME USED", "BACKLOG")
    table = [head]
    for name in sorted(rows):
        r = rows[name]
        hit = _first(r, "hit_rate_dram", "dram_hit_rate", "hit_rate")
        if hit is None:
            hits, nv, miss = (_first(r, "hits_dram", "dram_hits"), _first(r, "hits_nvme"),
                              _first(r, "misses"))
            if hits is not None and miss is not None and (hits + (nv or 0) + miss):
                hit = hits / (hits + (nv or 0) + miss)
        table.append((
            name,
            _size(_first(r, "dram_used", "dram_used_bytes", "used_bytes")),
            _size(_first(r, "dram_bytes", "dram_capacity", "dram_capacity_bytes")),
            _size(_first(r, "dirty_bytes", "dram_dirty_bytes")),
            _pct(hit),
            _size(_first(r, "nvme_used", "nvme_used_bytes", "nvme_bytes_used", "stored_bytes",
                         "nvme_stored_bytes")),
            _size(_first(r, "flush_backlog_bytes", "dram_flush_backlog_bytes", "flush_backlog",
                         "backlog_bytes")),
        ))
    # The daemon reports NVMe use per store, not (yet) per namespace: drop the
    # column when no row has it, and show the store's totals above the table.
    if all(row[5] == "-" for row in table[1:]):
        table = [row[:5] + row[6:] for row in table]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in table]
    extra = []
    server = doc.get("server")
    if isinstance(server, dict):
        bits = [f"tierd {server.get('version', '?')}"]
        for k, fmt in (("pid", "pid {}"), ("uptime_s", "up {:g} s"), ("clients", "{} clients"),
                       ("socket", "socket {}")):
            if server.get(k) is not None:
                bits.append(fmt.format(server[k]))
        extra.append("daemon: " + ", ".join(bits))
    elif isinstance(server, str):
        extra.append(f"daemon: {server}")
    store = doc.get("store", (doc.get("tiers") or {}).get("nvme") if isinstance(doc.get("tiers"), dict) else None)
    if isinstance(store, dict):
        used = _first(store, "used_bytes", "used")
        cap = _first(store, "capacity_bytes", "capacity")
        bits = [f"{_size(used)} of {_size(cap)} used"]
        if store.get("objects") is not None:
            bits.append(f"{store['objects']} objects")
        if store.get("engine"):
            bits.append(f"engine {store['engine']}")
        extra.append("nvme: " + ", ".join(bits))
    dram = doc.get("dram")
    if isinstance(dram, dict) and "keep_warm" in dram:
        if dram["keep_warm"]:
            extra.append(f"dram: kept warm, every page read every {dram.get('keep_warm_interval_s'):g} s "
                         f"({dram.get('keep_warm_why')}; {dram.get('keep_warm_passes', 0)} passes, "
                         f"last {dram.get('keep_warm_last_pass_ms')} ms)")
        else:
            extra.append(f"dram: not kept warm ({dram.get('keep_warm_why')})")
    backlog = _first(doc, "flush_backlog_bytes", "backlog_bytes")
    if backlog is None and isinstance(doc.get("backlog"), (int, float)):
        backlog = doc["backlog"]
    if backlog is None and rows:
        vals = [_first(r, "flush_backlog_bytes") for r in rows.values()]
        if all(v is not None for v in vals):
            backlog = sum(vals)
    if backlog is not None:
        extra.append(f"flush backlog: {_size(backlog)}")
    return "\n".join(extra + [""] + lines if extra else lines)


def cmd_status(args) -> int:
    with _connect(args) as c:
        doc = c.status()
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True, default=_json_default))
    else:
        print(format_status(doc if isinstance(doc, dict) else {}))
    return 0


def _json_default(o):
    if isinstance(o, bytes):
        return o.decode("utf-8", "backslashreplace")
    raise TypeError(f"{type(o).__name__} is not JSON serializable")

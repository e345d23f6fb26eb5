"""`tierd ckpt ls|show|export|import|rm`: checkpoint snapshots from the shell.

Clients of a running daemon (tierd.connect), like the object commands;
cli.py wires them in with add_commands().

    tierd ckpt ls run-42 [--json]                       steps, time, tensors, bytes, latest
    tierd ckpt show run-42 [STEP]                       tensor table of STEP (default latest)
    tierd ckpt export run-42 100 step100.safetensors    a snapshot to a .safetensors file
    tierd ckpt import run-42 200 step100.safetensors    a .safetensors file as snapshot 200
    tierd ckpt rm run-42 100                            remove one snapshot

export/import need the `safetensors` package (pip install safetensors).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from typing import Callable

from tierd.errors import InvalidArgument, NotFound
from tierd_daemon.cli_objects import _add_socket, _connect, _guard
from tierd_daemon.units import format_size

NO_KEEP_LIMIT = 1 << 62    # the CLI never applies retention: keep_last is the trainer's call


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="the training run (CheckpointManager's run name)")
    p.add_argument("--ns", default="default", metavar="NS",
                   help="namespace holding the run (default: default)")


def _step(text: str):
    if text == "latest":
        return None
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid step {text!r}: an integer or 'latest'") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"invalid step {text!r}: steps are >= 0")
    return v


def _new_step(text: str) -> int:
    v = _step(text)
    if v is None:
        raise argparse.ArgumentTypeError("the step to import into must be a number")
    return v


def add_commands(sub, common: argparse.ArgumentParser) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add `ckpt` (with ls/show/export/import/rm) to the `tierd` subparsers;
    return {"ckpt": handler(args) -> int}."""
    ck = sub.add_parser(
        "ckpt", parents=[common], help="list, inspect, export and import checkpoint snapshots",
        description="Checkpoint snapshots saved with tierd's CheckpointManager "
        "(client.checkpoints(RUN)). STEP is a step number or 'latest'.",
        epilog="examples:\n"
        "  tierd ckpt ls run-42\n"
        "  tierd ckpt show run-42 latest\n"
        "  tierd ckpt export run-42 100 step100.safetensors\n"
        "  tierd ckpt import run-42 200 step100.safetensors\n"
        "  tierd ckpt rm run-42 100",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    csub = ck.add_subparsers(dest="ckpt_command", metavar="COMMAND")

    ls = csub.add_parser("ls", parents=[common], help="list the persisted snapshots of a run",
                         description="One line per persisted snapshot of RUN: step, time saved, "
                         "number of tensors, logical bytes; '*' marks the latest.")
    _add_run(ls)
    ls.add_argument("--json", action="store_true", help="print a JSON list instead")
    _add_socket(ls)

    sh = csub.add_parser("show", parents=[common], help="list the tensors of a snapshot",
                         description="The tensors of snapshot STEP of RUN (default: latest): "
                         "path, dtype, shape, bytes.")
    _add_run(sh)
    sh.add_argument("step", metavar="STEP", nargs="?", type=_step, default=None,
                    help="step number or 'latest' (default)")
    sh.add_argument("--json", action="store_true", help="print the tensor list as JSON")
    _add_socket(sh)

    ex = csub.add_parser("export", parents=[common], help="write a snapshot to a .safetensors file",
                         description="Write every tensor of snapshot STEP of RUN to OUT "
                         "(tensor names: the dotted paths; the non-tensor state as JSON "
                         "metadata 'tierd.tree' when it can be). OUT appears complete or not "
                         "at all. Needs the safetensors package.")
    _add_run(ex)
    ex.add_argument("step", metavar="STEP", type=_step, help="step number or 'latest'")
    ex.add_argument("out", metavar="OUT.safetensors")
    _add_socket(ex)

    im = csub.add_parser("import", parents=[common], help="save a .safetensors file as a snapshot",
                         description="Save the tensors of IN as snapshot STEP of RUN and wait "
                         "until it is persisted (it becomes 'latest' if STEP is the newest). "
                         "No snapshot is removed by retention. Needs the safetensors package.")
    _add_run(im)
    im.add_argument("step", metavar="STEP", type=_new_step, help="step number to save as")
    im.add_argument("inp", metavar="IN.safetensors")
    _add_socket(im)

    rm = csub.add_parser("rm", parents=[common], help="remove a snapshot",
                         description="Remove snapshot STEP of RUN and the chunks only it used; "
                         "'latest' moves back to the previous step. Do not run it against a "
                         "run that is being saved (one writer per run).")
    _add_run(rm)
    rm.add_argument("step", metavar="STEP", type=_new_step, help="step number")
    _add_socket(rm)

    handlers = {"ls": cmd_ls, "show": cmd_show, "export": cmd_export, "import": cmd_import,
                "rm": cmd_rm}

    def dispatch(args: argparse.Namespace) -> int:
        name = getattr(args, "ckpt_command", None)
        if not name:
            ck.print_help(sys.stderr)
            return 2
        return handlers[name](args)

    handler = _guard(dispatch)
    handler.__name__ = handler.__qualname__ = "cmd_ckpt"
    ck.set_defaults(object_handler=handler)
    return {"ckpt": handler}


# ---- helpers ----------------------------------------------------------------------------

def _manager(c, args, reader: bool):
    """A CheckpointManager for args.run. ls/show/export open it read-only: they
    must not collect, they cannot see a live trainer's in-flight chunks.
    import/rm act as the run's writer (do not run them while a trainer writes
    the same run)."""
    from tierd.checkpoint import CheckpointManager
    return CheckpointManager(c, args.run, keep_last=NO_KEEP_LIMIT, ns=args.ns, readonly=reader)


def _when(t) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t)))


def _dtype_text(desc: dict) -> str:
    if "ml" in desc:
        return desc["ml"]
    if "torch" in desc:
        return f"torch.{desc['torch']}"
    try:
        import numpy as np
        dt = np.lib.format.descr_to_dtype(desc["np"])
        return dt.name if dt.fields is None and dt.byteorder != ">" else str(desc["np"])
    except Exception:
        return str(desc.get("np"))


def _table(rows: list[tuple], right: set[int]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip()
                     for r in rows)


class _Bar:
    """One-line progress on stderr when it is a terminal: phase, bar, bytes, MB/s."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled = label, enabled
        self.phase, self.t0, self.last = None, 0.0, 0.0

    def __call__(self, done: int, total: int, phase: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if phase != self.phase:
            if self.phase is not None:
                sys.stderr.write("\n")
            self.phase, self.t0, self.last = phase, now, 0.0
        elif done < total and now - self.last < 0.1:
            return
        self.last = now
        frac = done / total if total else 1.0
        width = 28
        fill = int(frac * width)
        rate = done / max(now - self.t0, 1e-6) / 1e6
        sys.stderr.write(f"\r{self.label} {phase:<7} [{'#' * fill}{'.' * (width - fill)}] "
                         f"{format_size(done)} / {format_size(total)}  {rate:7.1f} MB/s\x1b[K")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.phase is not None:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.phase = None


def _bar(label: str, args) -> _Bar:
    return _Bar(label, sys.stderr.isatty() and not getattr(args, "quiet", False))


def _with_warnings(fn):
    """Run fn(); warnings (e.g. state left out of an export) as `tierd: warning: ...`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return fn()
        finally:
            for w in caught:
                print(f"tierd: warning: {w.message}", file=sys.stderr)


# ---- commands ---------------------------------------------------------------------------

def cmd_ls(args) -> int:
    with _connect(args) as c:
        ck = _manager(c, args, reader=True)
        try:
            latest = ck.latest()
            rows = []
            for s in ck.steps():
                try:
                    m = ck.manifest(s)
                except NotFound:
                    continue    # removed between list and read
                rows.append({"step": s, "time": m.get("time"), "tensors": len(m["tensors"]),
                             "bytes": sum(int(t["nbytes"]) for t in m["tensors"]),
                             "latest": s == latest})
        finally:
            ck.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no checkpoints of run {args.run!r} in namespace {args.ns!r}", file=sys.stderr)
        return 0
    table = [("", "STEP", "SAVED", "TENSORS", "BYTES")]
    for r in rows:
        table.append(("*" if r["latest"] else " ", r["step"], _when(r["time"]), r["tensors"],
                      format_size(r["bytes"])))
    print(_table(table, right={1, 3, 4}))
    return 0


def cmd_show(args) -> int:
    with _connect(args) as c:
        ck = _manager(c, args, reader=True)
        try:
            m = ck.manifest(args.step)
            latest = ck.latest()
        finally:
            ck.close()
    tensors = m["tensors"]
    if args.json:
        print(json.dumps({"step": m["step"], "time": m.get("time"), "latest": m["step"] == latest,
                          "tensors": [{"path": t["path"], "dtype": _dtype_text(t["dtype"]),
                                       "shape": list(t["shape"]), "bytes": int(t["nbytes"])}
                                      for t in tensors]}, indent=2))
        return 0
    total = sum(int(t["nbytes"]) for t in tensors)
    print(f"run {args.run} step {m['step']}{' (latest)' if m['step'] == latest else ''}, "
          f"saved {_when(m.get('time'))}: {len(tensors)} tensors, {format_size(total)}")
    if tensors:
        table = [("PATH", "DTYPE", "SHAPE", "BYTES")]
        for t in tensors:
            table.append((t["path"] or "(root)", _dtype_text(t["dtype"]),
                          "(" + ", ".join(str(x) for x in t["shape"]) +
                          ("," if len(t["shape"]) == 1 else "") + ")", int(t["nbytes"])))
        print(_table(table, right={3}))
    return 0


def cmd_export(args) -> int:
    from tierd.safetensors_io import export_snapshot
    with _connect(args) as c:
        ck = _manager(c, args, reader=True)
        bar = _bar(f"export {args.run}@{'latest' if args.step is None else args.step}", args)
        try:
            info = _with_warnings(lambda: export_snapshot(ck, args.step, args.out, progress=bar))
        finally:
            bar.close()
            ck.close()
    print(f"exported step {info['step']} of {args.run}: {info['tensors']} tensors, "
          f"{format_size(info['bytes'])} -> {args.out}", file=sys.stderr)
    return 0


def cmd_import(args) -> int:
    from tierd.safetensors_io import import_snapshot
    with _connect(args) as c:
        ck = _manager(c, args, reader=False)
        if args.step in ck.steps():
            ck.close()
            raise InvalidArgument(f"run {args.run!r} already has step {args.step}; "
                                  f"remove it first (tierd ckpt rm {args.run} {args.step})")
        bar = _bar(f"import {args.run}@{args.step}", args)
        try:
            info = _with_warnings(lambda: import_snapshot(ck, args.step, args.inp, progress=bar))
        finally:
            bar.close()
            ck.close()
    print(f"imported {args.inp} as step {args.step} of {args.run}: {info['tensors']} tensors, "
          f"{format_size(info['bytes'])}", file=sys.stderr)
    return 0


def cmd_rm(args) -> int:
    with _connect(args) as c:
        ck = _manager(c, args, reader=False)
        try:
            ck.delete(args.step)
        finally:
            ck.close()
    return 0

"""fsck: prove that the catalog, the allocator and the bytes agree.

Checks, in order:
  1. every catalog record decodes, names a configured namespace, and its
     extents lie inside the data files and cover exactly its stored bytes;
  2. no two objects share a page (the allocator can be derived at all);
  3. accounting (invariant 5): the live allocator's used pages equal the
     pages the catalog references plus writes in flight plus freed extents
     still pinned by readers, and its free space equals the derived one when
     nothing is in flight;
  4. with verify_data, every object reads back and matches its checksum
     (invariant 2).
Any error makes `ok` false; `tierd fsck` then exits non-zero.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tierd.errors import ChecksumError, NotFound, TierdError
from tierd_daemon.store.allocator import ExtentAllocator, OverlapError
from tierd_daemon.store.catalog import ENC_RAW, Record, decode_key


@dataclass
class FsckReport:
    objects: int = 0
    logical_bytes: int = 0
    referenced_pages: int = 0
    verified: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {"ok": self.ok, "objects": self.objects, "logical_bytes": self.logical_bytes,
                "referenced_pages": self.referenced_pages, "verified": self.verified,
                "errors": self.errors, "warnings": self.warnings}


def fsck(store, verify_data: bool = True, progress=None) -> FsckReport:
    rep = FsckReport()
    page = store.page
    file_pages = [s // page for s in store._files.sizes]
    extents = []
    records: list[tuple[str, bytes, Record]] = []

    for ckey, raw in store._catalog.items():
        ns, key = decode_key(ckey)
        try:
            rec = Record.unpack(raw)
        except ValueError as e:
            rep.errors.append(f"{ns}/{key!r}: damaged catalog record: {e}")
            continue
        rep.objects += 1
        rep.logical_bytes += rec.logical_size
        if ns not in store.config.namespaces:
            rep.warnings.append(f"{ns}/{key!r}: namespace {ns!r} is not configured "
                                "(its objects are kept but unreachable)")
        need = (rec.stored_size + page - 1) // page
        if rec.npages != need:
            rep.errors.append(f"{ns}/{key!r}: extents hold {rec.npages} pages, "
                              f"stored size {rec.stored_size} needs {need}")
        if rec.encoding == ENC_RAW and rec.stored_size != rec.logical_size:
            rep.errors.append(f"{ns}/{key!r}: raw object with stored size {rec.stored_size} "
                              f"!= logical size {rec.logical_size}")
        for e in rec.extents:
            if not (0 <= e.file < len(file_pages)) or e.page + e.npages > file_pages[e.file]:
                rep.errors.append(f"{ns}/{key!r}: extent {tuple(e)} lies outside the data files")
        extents.extend(rec.extents)
        records.append((ns, key, rec))
    rep.referenced_pages = sum(e.npages for e in extents)

    try:
        derived = ExtentAllocator.from_used(file_pages, extents)
    except OverlapError as e:
        rep.errors.append(f"catalog: {e} (two objects claim the same pages)")
        derived = None

    if store.damage:
        # Opened read-only for diagnosis: there is no live allocator to
        # compare; the checks above name the damage, the data is still read.
        rep.warnings.append("store opened read-only: " + "; ".join(store.damage))
    else:
        _check_accounting(store, rep, derived)

    if verify_data:
        for i, (ns, key, rec) in enumerate(records):
            if ns not in store.config.namespaces:
                continue
            try:
                store.get(ns, key)
                rep.verified += 1
            except ChecksumError as e:
                rep.errors.append(str(e))
            except NotFound:
                # A cache namespace drops a damaged object on read: report it.
                rep.warnings.append(f"{ns}/{key!r}: damaged cache object dropped")
            except (OSError, TierdError) as e:
                rep.errors.append(f"{ns}/{key!r}: read failed: {e}")
            if progress is not None:
                progress(i + 1, len(records))
    return rep


def _check_accounting(store, rep: FsckReport, derived) -> None:
    """Invariant 5 against the live allocator (see the module docstring)."""
    with store._lock:
        live = store._alloc
        try:
            live.check()
        except AssertionError as e:
            rep.errors.append(f"allocator: internal invariant broken: {e}")
        inflight = store._inflight_pages
        deferred = sum(e.npages for e in store._deferred)
        if live.used_pages != rep.referenced_pages + inflight + deferred:
            rep.errors.append(
                f"accounting: allocator uses {live.used_pages} pages, catalog references "
                f"{rep.referenced_pages} + {inflight} in flight + {deferred} pinned-freed")
        if derived is not None and inflight == 0 and deferred == 0 \
                and sorted(live.free_extents()) != sorted(derived.free_extents()):
            rep.errors.append("accounting: the allocator's free space differs from the space "
                              "the catalog leaves free (a leak or a double use)")

"""Page-granular extent allocator over one or more data files.

Free space is never persisted: it is derived at open from the extents the
catalog references (`from_used`). So a crash cannot leak space or corrupt a
free list, and fsck proves accounting by deriving it again (invariant 5).

Policy: an object gets one contiguous extent when any free extent is large
enough (best fit: the smallest that fits, lowest address on ties); only when
the store is fragmented does it get several extents, largest first. Freed
extents coalesce with their neighbours at once.
"""
from __future__ import annotations

from typing import Iterable, NamedTuple

from sortedcontainers import SortedDict, SortedList

from tierd.errors import StoreFull


class Extent(NamedTuple):
    file: int
    page: int    # first page, in units of the store's page size
    npages: int

    @property
    def end(self) -> int:
        return self.page + self.npages


class OverlapError(Exception):
    """Two referenced extents share pages, or one lies outside its file."""


class ExtentAllocator:
    def __init__(self, file_pages: list[int]) -> None:
        assert file_pages and all(n > 0 for n in file_pages)
        self.file_pages = list(file_pages)
        self.total_pages = sum(file_pages)
        # Per file: start page -> length, for coalescing on free.
        self._by_start = [SortedDict() for _ in file_pages]
        # Global: (length, file, start), for best fit.
        self._by_size = SortedList()
        self.free_pages = 0
        for f, n in enumerate(file_pages):
            self._insert(f, 0, n)

    # ---- construction from the catalog -------------------------------------------

    @classmethod
    def from_used(cls, file_pages: list[int], used: Iterable[Extent]) -> "ExtentAllocator":
        """Allocator whose free space is everything `used` does not cover.

        Raises OverlapError if two used extents overlap or one is out of
        bounds: the catalog is inconsistent and fsck must say so.
        """
        alloc = cls.__new__(cls)
        alloc.file_pages = list(file_pages)
        alloc.total_pages = sum(file_pages)
        alloc._by_start = [SortedDict() for _ in file_pages]
        alloc._by_size = SortedList()
        alloc.free_pages = 0
        for f, gaps in enumerate(_gaps(file_pages, used)):
            for start, length in gaps:
                alloc._insert(f, start, length)
        return alloc

    # ---- allocate / free ----------------------------------------------------------

    def allocate(self, npages: int) -> list[Extent]:
        """Extents covering exactly npages pages; StoreFull if they don't exist."""
        assert npages > 0
        if npages > self.free_pages:
            raise StoreFull(
                f"store full: need {npages} pages, {self.free_pages} free of {self.total_pages}; "
                "delete objects or raise store.capacity")
        i = self._by_size.bisect_left((npages, -1, -1))
        if i < len(self._by_size):
            length, f, start = self._by_size[i]
            return [self._take(f, start, length, npages)]
        # Fragmented: gather the largest extents until the request is covered.
        out: list[Extent] = []
        need = npages
        while need:
            length, f, start = self._by_size[-1]
            take = min(length, need)
            out.append(self._take(f, start, length, take))
            need -= take
        return out

    def allocate_contiguous(self, npages: int) -> Extent | None:
        """One extent of exactly npages (best fit), or None if no run is that long."""
        assert npages > 0
        i = self._by_size.bisect_left((npages, -1, -1))
        if i == len(self._by_size):
            return None
        length, f, start = self._by_size[i]
        return self._take(f, start, length, npages)

    def free(self, extents: Iterable[Extent]) -> None:
        for e in extents:
            self._free_one(e)

    # ---- introspection -------------------------------------------------------------

    @property
    def used_pages(self) -> int:
        return self.total_pages - self.free_pages

    @property
    def largest_free(self) -> int:
        return self._by_size[-1][0] if self._by_size else 0

    def free_extents(self) -> list[Extent]:
        return [Extent(f, s, n) for f, d in enumerate(self._by_start) for s, n in d.items()]

    def check(self) -> None:
        """Assert the allocator's own invariants (tests and fsck call this)."""
        total = 0
        for f, d in enumerate(self._by_start):
            prev_end = -1
            for s, n in d.items():
                assert n > 0, f"empty free extent at file {f} page {s}"
                assert s > prev_end, f"free extents not coalesced/ordered at file {f} page {s}"
                assert s + n <= self.file_pages[f], f"free extent past end of file {f}"
                assert (n, f, s) in self._by_size, "size index out of step"
                prev_end = s + n
                total += n
        assert total == self.free_pages == sum(x[0] for x in self._by_size)
        assert len(self._by_size) == sum(len(d) for d in self._by_start)

    # ---- internals -----------------------------------------------------------------

    def _insert(self, f: int, start: int, length: int) -> None:
        self._by_start[f][start] = length
        self._by_size.add((length, f, start))
        self.free_pages += length

    def _remove(self, f: int, start: int, length: int) -> None:
        del self._by_start[f][start]
        self._by_size.remove((length, f, start))
        self.free_pages -= length

    def _take(self, f: int, start: int, length: int, npages: int) -> Extent:
        self._remove(f, start, length)
        if length > npages:
            self._insert(f, start + npages, length - npages)
        return Extent(f, start, npages)

    def _free_one(self, e: Extent) -> None:
        f, start, n = e
        assert 0 <= f < len(self.file_pages) and n > 0 and 0 <= start
        assert start + n <= self.file_pages[f], f"free past end of file: {e}"
        d = self._by_start[f]
        # Refuse a double free or a free overlapping free space: it would
        # hand the same pages to two objects later.
        i = d.bisect_right(start)
        if i > 0:
            ps, pn = d.peekitem(i - 1)
            assert ps + pn <= start, f"double free: {e} overlaps free extent ({ps}, {pn})"
        if i < len(d):
            ns, _ = d.peekitem(i)
            assert start + n <= ns, f"double free: {e} overlaps free extent at {ns}"
        # Coalesce with the neighbours.
        if i > 0:
            ps, pn = d.peekitem(i - 1)
            if ps + pn == start:
                self._remove(f, ps, pn)
                start, n = ps, pn + n
        nxt = d.get(start + n)
        if nxt is not None:
            self._remove(f, start + n, nxt)
            n += nxt
        self._insert(f, start, n)


def _gaps(file_pages: list[int], used: Iterable[Extent]):
    """Per file, the (start, length) runs not covered by `used`."""
    per_file: list[list[tuple[int, int]]] = [[] for _ in file_pages]
    for e in used:
        if not (0 <= e.file < len(file_pages)) or e.npages <= 0 or e.page < 0 \
                or e.page + e.npages > file_pages[e.file]:
            raise OverlapError(f"extent {tuple(e)} lies outside the data files")
        per_file[e.file].append((e.page, e.npages))
    out = []
    for f, runs in enumerate(per_file):
        runs.sort()
        gaps = []
        pos = 0
        for start, n in runs:
            if start < pos:
                raise OverlapError(f"extents overlap in file {f} at page {start}")
            if start > pos:
                gaps.append((pos, start - pos))
            pos = start + n
        if pos < file_pages[f]:
            gaps.append((pos, file_pages[f] - pos))
        out.append(gaps)
    return out

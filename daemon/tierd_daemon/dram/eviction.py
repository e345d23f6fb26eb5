"""Eviction policies for the DRAM tier.

Choice: DEFAULT_POLICY = "s3fifo" (see "Why" below; numbers from
`python perf/eviction_sim.py --record perf/RESULTS.md`).

Why: S3-FIFO had the best byte-hit ratio of the three policies in every
trace and cache size measured (perf/RESULTS.md, 2026-11-23 03:49 UTC run,
400k requests per trace). Its lead over LRU is largest where DRAM is
scarce: Zipf 1.0 at 1% of the working set gives 52.7% byte hits against
41.7% for LRU, and Zipf 0.8 at 1% gives 23.9% against 13.6%. Scans: with
one-time 1 MiB checkpoint-restore scans mixed in, S3-FIFO keeps 53.8% at 10%
where LRU drops to 46.4%. LLM prefix chains (the KV-cache shape): 57.1% at 5%
against LRU's 43.9% and ARC's 54.3%. A loop 11% larger than the cache gives
LRU and ARC 0% and S3-FIFO 67.9%. ARC comes within about 1 point of S3-FIFO
on Zipf but is never better. It is slower (0.5-2.1 M req/s against 0.65-2.3 M
for S3-FIFO) and has more state to get right with variable sizes. LRU's
plain Python loop is about 2x faster (0.9-3.8 M req/s), but even S3-FIFO's
slowest case costs under 2 us per request, which is negligible next to
moving one 4 KiB block. S3-FIFO is also plain FIFOs plus a 2-bit counter,
so a hit only bumps a counter and never reorders a queue. That suits a
tier whose index may later move to shared memory.

Contract (the DRAM tier calls exactly this; all operations are O(1)
amortised, nothing here is thread-safe: the caller holds the tier lock):

    pol = make_policy("s3fifo", capacity_bytes)
    pol.insert(key, nbytes)      # new resident object (KeyError if already resident)
    pol.access(key)              # a hit on a resident key (KeyError if not resident)
    pol.remove(key)              # left DRAM for another reason; no-op if absent
    for key in pol.victims():    # candidates, best first
        if evictable(key):       # not leased, not dirty, ...
            ...free it...
            pol.evicted(key)     # KeyError if not resident
        if enough_space(): break
    len(pol), key in pol, pol.resident_bytes

victims() never evicts anything itself and never forgets a key. A key the
caller skips (does not pass to evicted() before asking for the next
candidate) stays resident; it is treated as "in use": S3-FIFO and ARC move
it to their protected queue, LRU makes it most recent. One call offers each
resident key at most once, so it terminates even when the caller refuses
everything. The caller may drop the iterator at any point; the
policy is consistent at every yield.

Capacity is used only to size the policies' internal queues (S3-FIFO's
small queue and ghost, ARC's target and ghosts); deciding when to evict is
the caller's job, so resident_bytes may exceed capacity_bytes transiently.
"""
from __future__ import annotations

import abc
from collections import OrderedDict
from typing import Hashable, Iterator

__all__ = [
    "ARCPolicy", "DEFAULT_POLICY", "EvictionPolicy", "LRUPolicy", "POLICIES",
    "S3FIFOPolicy", "make_policy",
]


class EvictionPolicy(abc.ABC):
    """Bookkeeping of which resident objects to evict first (see module doc)."""

    name: str = ""

    def __init__(self, capacity_bytes: int) -> None:
        capacity_bytes = int(capacity_bytes)
        if capacity_bytes <= 0:
            raise ValueError(f"capacity_bytes must be > 0, got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self.resident_bytes = 0

    @abc.abstractmethod
    def insert(self, key: Hashable, nbytes: int) -> None: ...

    @abc.abstractmethod
    def access(self, key: Hashable) -> None: ...

    @abc.abstractmethod
    def remove(self, key: Hashable) -> None: ...

    @abc.abstractmethod
    def victims(self) -> Iterator[Hashable]: ...

    @abc.abstractmethod
    def evicted(self, key: Hashable) -> None: ...

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __contains__(self, key: object) -> bool: ...

    # Ghost (history of evicted keys) introspection, for tests and stats.
    @property
    def ghost_len(self) -> int:
        return 0

    @property
    def ghost_bytes(self) -> int:
        return 0

    @property
    def ghost_limit_bytes(self) -> int:
        return 0

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {len(self)} keys, {self.resident_bytes}/"
                f"{self.capacity_bytes} bytes>")


def _check_nbytes(nbytes: int) -> int:
    nbytes = int(nbytes)
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
    return nbytes


# --------------------------------------------------------------------------- LRU

class LRUPolicy(EvictionPolicy):
    """Least recently used; OrderedDict with the LRU end first."""

    name = "lru"

    def __init__(self, capacity_bytes: int) -> None:
        super().__init__(capacity_bytes)
        self._d: OrderedDict = OrderedDict()   # key -> nbytes, LRU first

    def insert(self, key, nbytes):
        if key in self._d:
            raise KeyError(f"{key!r} is already resident")
        nbytes = _check_nbytes(nbytes)
        self._d[key] = nbytes
        self.resident_bytes += nbytes

    def access(self, key):
        self._d.move_to_end(key)               # KeyError if absent

    def remove(self, key):
        nbytes = self._d.pop(key, None)
        if nbytes is not None:
            self.resident_bytes -= nbytes

    def evicted(self, key):
        self.resident_bytes -= self._d.pop(key)

    def victims(self):
        d = self._d
        for _ in range(len(d)):
            if not d:
                return
            key = next(iter(d))
            yield key
            if key in d:                       # refused: in use, make it recent
                d.move_to_end(key)

    def __len__(self):
        return len(self._d)

    def __contains__(self, key):
        return key in self._d


# ----------------------------------------------------------------------- S3-FIFO

class S3FIFOPolicy(EvictionPolicy):
    """S3-FIFO (Yang et al., SOSP'23) with byte sizes.

    New keys enter the small FIFO S (target 10% of capacity bytes). When S is
    over target its oldest key is promoted to the main FIFO M if it was hit
    since insertion, else offered for eviction and, once evicted, remembered
    in the ghost FIFO G (keys only; bounded by M's target bytes, each entry
    charged its object's size). A key inserted while in G goes straight to M.
    M is a FIFO with 2-bit frequencies: its oldest key is reinserted with
    freq-1 while freq > 0, else offered for eviction.
    """

    name = "s3fifo"
    SMALL_FRACTION = 0.10
    MAX_FREQ = 3
    PROMOTE_FREQ = 1          # hits while in S needed to be promoted to M

    def __init__(self, capacity_bytes: int) -> None:
        super().__init__(capacity_bytes)
        self._small_target = max(1, int(capacity_bytes * self.SMALL_FRACTION))
        self._ghost_limit = max(1, capacity_bytes - self._small_target)
        self._size: dict = {}                  # resident key -> nbytes
        self._freq: dict = {}                  # resident key -> 0..MAX_FREQ
        self._small: OrderedDict = OrderedDict()   # oldest first; values unused
        self._main: OrderedDict = OrderedDict()
        self._ghost: OrderedDict = OrderedDict()   # key -> charged bytes, oldest first
        self._small_bytes = 0
        self._main_bytes = 0
        self._ghost_bytes = 0

    # -- ghost
    def _ghost_add(self, key, nbytes):
        charge = max(1, nbytes)
        ghost = self._ghost
        old = ghost.pop(key, None)
        if old is not None:
            self._ghost_bytes -= old
        ghost[key] = charge
        self._ghost_bytes += charge
        while self._ghost_bytes > self._ghost_limit and ghost:
            self._ghost_bytes -= ghost.popitem(last=False)[1]

    def _ghost_discard(self, key):
        old = self._ghost.pop(key, None)
        if old is not None:
            self._ghost_bytes -= old
            return True
        return False

    # -- moves
    def _small_to_main(self, key):
        del self._small[key]
        nbytes = self._size[key]
        self._small_bytes -= nbytes
        self._main[key] = None
        self._main_bytes += nbytes

    # -- interface
    def insert(self, key, nbytes):
        if key in self._size:
            raise KeyError(f"{key!r} is already resident")
        nbytes = _check_nbytes(nbytes)
        self._size[key] = nbytes
        self._freq[key] = 0
        self.resident_bytes += nbytes
        if self._ghost_discard(key):
            self._main[key] = None
            self._main_bytes += nbytes
        else:
            self._small[key] = None
            self._small_bytes += nbytes

    def access(self, key):
        f = self._freq[key]                    # KeyError if absent
        if f < self.MAX_FREQ:
            self._freq[key] = f + 1

    def _drop(self, key):
        nbytes = self._size.pop(key)
        del self._freq[key]
        self.resident_bytes -= nbytes
        if key in self._small:
            del self._small[key]
            self._small_bytes -= nbytes
            return True, nbytes
        del self._main[key]
        self._main_bytes -= nbytes
        return False, nbytes

    def remove(self, key):
        if key in self._size:
            self._drop(key)
        else:
            self._ghost_discard(key)

    def evicted(self, key):
        if key not in self._size:
            raise KeyError(f"{key!r} is not resident")
        was_small, nbytes = self._drop(key)
        if was_small:
            self._ghost_add(key, nbytes)

    def victims(self):
        small, main, freq = self._small, self._main, self._freq
        n = len(self._size)
        refused: set = set()                   # keys the caller skipped in this call
        # Bounds: each key is offered at most once (a refused key goes to the
        # back of M and the walk stops when it comes round again); internal
        # moves (promotions <= n, freq decrements <= MAX_FREQ * n) are bounded
        # too unless the caller calls access() while iterating: steps_left.
        yields_left = n + 1
        steps_left = (self.MAX_FREQ + 4) * n + 16
        while yields_left > 0 and steps_left > 0:
            steps_left -= 1
            if small and (self._small_bytes >= self._small_target or not main
                          or next(iter(main)) in refused):
                key = next(iter(small))
                if key in refused:
                    return
                if freq[key] >= self.PROMOTE_FREQ:
                    self._small_to_main(key)
                    freq[key] = 0
                    continue
                yields_left -= 1
                yield key
                if key in small:               # refused: in use, protect it in M
                    refused.add(key)
                    self._small_to_main(key)
            elif main:
                key = next(iter(main))
                if key in refused:             # all of M went round; S is empty
                    return
                f = freq[key]
                if f > 0:
                    freq[key] = f - 1
                    main.move_to_end(key)
                    continue
                yields_left -= 1
                yield key
                if key in main:                # refused: reinsert
                    refused.add(key)
                    main.move_to_end(key)
            else:
                return

    def __len__(self):
        return len(self._size)

    def __contains__(self, key):
        return key in self._size

    @property
    def ghost_len(self):
        return len(self._ghost)

    @property
    def ghost_bytes(self):
        return self._ghost_bytes

    @property
    def ghost_limit_bytes(self):
        return self._ghost_limit


# --------------------------------------------------------------------------- ARC

class ARCPolicy(EvictionPolicy):
    """ARC (Megiddo & Modha, FAST'03) with byte sizes.

    T1 (seen once) and T2 (seen twice or more) are LRU lists of resident
    keys; B1/B2 are their ghosts. p is T1's target in bytes: a ghost hit in
    B1 grows it, in B2 shrinks it, by the object's size times the usual ratio.
    Ghosts are trimmed so that T1+B1 <= capacity and T1+T2+B1+B2 <= 2*capacity
    (bytes, each ghost charged its object's size).
    """

    name = "arc"

    def __init__(self, capacity_bytes: int) -> None:
        super().__init__(capacity_bytes)
        self._p = 0.0
        self._t1: OrderedDict = OrderedDict()  # key -> nbytes, LRU first
        self._t2: OrderedDict = OrderedDict()
        self._b1: OrderedDict = OrderedDict()  # key -> charged bytes
        self._b2: OrderedDict = OrderedDict()
        self._t1b = self._t2b = self._b1b = self._b2b = 0

    def _trim_ghosts(self):
        c = self.capacity_bytes
        while self._b1 and self._t1b + self._b1b > c:
            self._b1b -= self._b1.popitem(last=False)[1]
        while (self._b1 or self._b2) and (
                self.resident_bytes + self._b1b + self._b2b > 2 * c):
            if self._b2:
                self._b2b -= self._b2.popitem(last=False)[1]
            else:
                self._b1b -= self._b1.popitem(last=False)[1]

    def insert(self, key, nbytes):
        if key in self._t1 or key in self._t2:
            raise KeyError(f"{key!r} is already resident")
        nbytes = _check_nbytes(nbytes)
        charge = max(1, nbytes)
        c = self.capacity_bytes
        if key in self._b1:
            self._b1b -= self._b1.pop(key)
            self._p = min(c, self._p + charge * max(1.0, self._b2b / max(1, self._b1b)))
            self._t2[key] = nbytes
            self._t2b += nbytes
        elif key in self._b2:
            self._b2b -= self._b2.pop(key)
            self._p = max(0.0, self._p - charge * max(1.0, self._b1b / max(1, self._b2b)))
            self._t2[key] = nbytes
            self._t2b += nbytes
        else:
            self._t1[key] = nbytes
            self._t1b += nbytes
        self.resident_bytes += nbytes
        self._trim_ghosts()

    def access(self, key):
        t1 = self._t1
        if key in t1:
            nbytes = t1.pop(key)
            self._t1b -= nbytes
            self._t2[key] = nbytes
            self._t2b += nbytes
        else:
            self._t2.move_to_end(key)          # KeyError if absent

    def _drop(self, key):
        if key in self._t1:
            nbytes = self._t1.pop(key)
            self._t1b -= nbytes
            self.resident_bytes -= nbytes
            return 1, nbytes
        nbytes = self._t2.pop(key)             # KeyError if absent
        self._t2b -= nbytes
        self.resident_bytes -= nbytes
        return 2, nbytes

    def remove(self, key):
        if key in self._t1 or key in self._t2:
            self._drop(key)
        elif key in self._b1:
            self._b1b -= self._b1.pop(key)
        elif key in self._b2:
            self._b2b -= self._b2.pop(key)

    def evicted(self, key):
        if key not in self._t1 and key not in self._t2:
            raise KeyError(f"{key!r} is not resident")
        which, nbytes = self._drop(key)
        charge = max(1, nbytes)
        if which == 1:
            self._b1[key] = charge
            self._b1b += charge
        else:
            self._b2[key] = charge
            self._b2b += charge
        self._trim_ghosts()

    def victims(self):
        t1, t2 = self._t1, self._t2
        refused: set = set()                   # keys the caller skipped in this call
        yields_left = len(t1) + len(t2) + 1    # each key is offered at most once
        while yields_left > 0:
            yields_left -= 1
            t1_ok = bool(t1) and next(iter(t1)) not in refused
            t2_ok = bool(t2) and next(iter(t2)) not in refused
            if t1_ok and (self._t1b > self._p or not t2_ok):
                key = next(iter(t1))
                yield key
                if key in t1:                  # refused: in use, promote to T2
                    refused.add(key)
                    nbytes = t1.pop(key)
                    self._t1b -= nbytes
                    t2[key] = nbytes
                    self._t2b += nbytes
            elif t2_ok:
                key = next(iter(t2))
                yield key
                if key in t2:
                    refused.add(key)
                    t2.move_to_end(key)
            else:
                return

    def __len__(self):
        return len(self._t1) + len(self._t2)

    def __contains__(self, key):
        return key in self._t1 or key in self._t2

    @property
    def ghost_len(self):
        return len(self._b1) + len(self._b2)

    @property
    def ghost_bytes(self):
        return self._b1b + self._b2b

    @property
    def ghost_limit_bytes(self):
        return 2 * self.capacity_bytes


# ------------------------------------------------------------------------ factory

POLICIES: dict[str, type[EvictionPolicy]] = {
    S3FIFOPolicy.name: S3FIFOPolicy,
    LRUPolicy.name: LRUPolicy,
    ARCPolicy.name: ARCPolicy,
}

DEFAULT_POLICY: str = "s3fifo"


def make_policy(name: str, capacity_bytes: int) -> EvictionPolicy:
    """A new, empty policy of the given name ("s3fifo", "lru", "arc")."""
    try:
        cls = POLICIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown eviction policy {name!r}; choose one of: "
                         f"{', '.join(sorted(POLICIES))}") from None
    return cls(capacity_bytes)

"""Arena space reserved for objects that are written in place, then committed.

    with c.reserve("default", [n1, n2]) as r:      # one alloc request
        produce_into(r.views[0]); r.views[1][:] = blob   # writable uint8 views
        stored = r.commit([k1, k2], if_absent=True)      # one commit request
    # leaving the block without commit() aborts: the pages are freed

The views are the shared arena itself, so a producer (a copy loop, a
decoder, a GPU copy) writes the object exactly once, and a writer that
learns the name from the bytes (a content hash) names it at commit. With
if_absent, an object whose key already exists is dropped instead of
written: stored[i] is False (content-addressed deduplication).

    digests, stored = r.commit_by_content("blobs/", if_absent=True)

has the daemon name each object "blobs/" + the xxh3-128 of its bytes (32
hex digits): it hashes them once, and that pass is also the checksum the
store keeps, where a name hashed here would be a second pass over the bytes.

A reservation belongs to one connection: if the daemon restarts in between,
commit raises DaemonUnavailable and the space is gone; reserve and write
again.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tierd import protocol
from tierd.errors import DaemonUnavailable, InvalidArgument, ProtocolError, TierdError

if TYPE_CHECKING:
    from tierd.client import Client


class Reservation:
    """Pending objects: `views[i]` is a writable uint8 view of object i's bytes."""

    def __init__(self, client: "Client", ns: str, gen: int, tokens: list[int],
                 views: list[np.ndarray]) -> None:
        assert len(tokens) == len(views)
        self._client, self.ns, self._gen = client, ns, gen
        self._tokens = tokens
        self.views = views
        self.nbytes = sum(int(v.size) for v in views)
        self._open = True

    def __len__(self) -> int:
        return len(self.views)

    def _commit(self, keys, durability: str, if_absent: bool, atomic: bool,
                name_prefix=None):
        """commit() raising the client's internal _ConnectionLost (retry-able);
        with name_prefix, commit_by_content()'s (digests, stored)."""
        if not self._open:
            raise InvalidArgument("this reservation was already committed or aborted")
        if durability not in protocol.DURABILITIES:
            raise InvalidArgument(f"durability must be one of {', '.join(protocol.DURABILITIES)}, "
                                  f"not {durability!r}")
        args: dict = {"ns": self.ns, "tokens": self._tokens, "durability": durability}
        if keys is not None:
            keys = [protocol.as_key(k) for k in keys]
            if len(keys) != len(self._tokens):
                raise InvalidArgument(f"commit: {len(keys)} keys for {len(self._tokens)} "
                                      "reserved objects; give one key per object")
            args["keys"] = keys
        if name_prefix is not None:
            if keys is not None:
                raise InvalidArgument("commit: give keys or a name prefix, not both")
            args["name_prefix"] = protocol.as_key(name_prefix)
            args["name_by"] = protocol.CONTENT_DIGEST
        if if_absent:
            args["if_absent"] = True
        if atomic:
            args["atomic"] = True
        try:
            result = self._client._call("commit", args, self._gen)
        except TierdError:
            self.abort()   # e.g. a bad key: free the pages now, not at disconnect
            raise
        self._open = False
        self.views = []
        n = len(self._tokens)
        digests = None
        if name_prefix is not None:
            digests = result.get("digests") if isinstance(result, dict) else None
            if not (isinstance(digests, list) and len(digests) == n and all(
                    isinstance(d, str) and len(d) == 32 for d in digests)):
                raise ProtocolError(f"commit: expected {n} digests, got {result!r}")
            result = result.get("stored")
        if not if_absent:
            stored = [True] * n
        elif isinstance(result, list) and len(result) == n:
            stored = [bool(x) for x in result]
        else:
            raise ProtocolError(f"commit: expected {n} stored flags, got {result!r}")
        return stored if digests is None else (digests, stored)

    def commit(self, keys=None, durability: str = "staged", *, if_absent: bool = False,
               atomic: bool = False) -> list[bool]:
        """Make the objects visible under `keys` (one per object; None: the
        keys given to reserve). Returns, per object, whether it was stored
        (always True without if_absent)."""
        return self._commit_or_void(keys, durability, if_absent, atomic)

    def commit_by_content(self, name_prefix="", durability: str = "staged", *,
                          if_absent: bool = False, atomic: bool = False
                          ) -> tuple[list[str], list[bool]]:
        """Name each object name_prefix + the xxh3-128 of its bytes (32 hex
        digits), computed by the daemon, and make them visible. Returns the
        digests and, per object, whether it was stored (with if_absent, an
        object whose name exists is dropped: deduplication)."""
        return self._commit_or_void(None, durability, if_absent, atomic, name_prefix)

    def _commit_or_void(self, *args):
        """_commit, a lost connection made the public DaemonUnavailable."""
        from tierd.client import _ConnectionLost
        try:
            return self._commit(*args)
        except _ConnectionLost as e:
            self._open = False
            raise DaemonUnavailable(f"lost the connection to tierd before commit ({e}); the "
                                    "reservation is void: reserve and write again") from None

    def abort(self) -> None:
        """Free the reserved pages (idempotent; best effort on a dead connection)."""
        if not self._open:
            return
        self._open = False
        self.views = []
        self._client._abort(self.ns, self._tokens, self._gen)

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, *exc) -> None:
        self.abort()

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<tierd.Reservation {self.ns} {len(self._tokens)} objects ({state})>"

"""Request ids (``X-Request-Id``): unguessable, revealing nothing, and read without a table.

An id is ``<worker tag>-<32 hex digits>``: the worker's tag (8 random hex digits drawn when it
starts; no pid) and the position of the request's first row in that worker's window (see
:mod:`.window`) under deterministic authenticated encryption, SIV (Rogaway and Shrimpton, 2006)
with keyed BLAKE2b as its pseudorandom function and a key only the service's workers hold: the
first 64 bits are ``F1(position)``, the last ``position XOR F2(F1(position))``. Without the key an
id is 128 random-looking bits that never repeat (positions do not): it tells nothing of the
traffic, and a forged or altered one fails the check ``F1(position) == first half`` (probability
2**-64 of passing) and is refused at once, by any worker, with no lookup and no wait. A worker
reads another worker's ids the same way (the key is shared, the tag names the worker), so
feedback finds the worker that answered without trusting a pid in the id. Two keyed hashes an
id (a six-round Feistel network before, issue 24: the ids were the largest part of monitoring's
cost per request).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

PURPOSES = ("check", "mask")
"""The two pseudorandom functions, each keyed from the service's key and the worker's tag."""
_MASK = (1 << 64) - 1
TAG = re.compile(r"[0-9a-f]{8}")
BODY = re.compile(r"[0-9a-f]{32}")


def new_tag() -> str:
    """A worker's tag: 8 random hex digits."""
    return secrets.token_hex(4)


class RequestIds:
    """The ids of the worker tagged ``tag``, under the service's ``key``."""

    def __init__(self, key: bytes, tag: str) -> None:
        if not TAG.fullmatch(tag):
            raise ValueError(f"a worker tag is 8 hex digits, not {tag!r}")
        self.tag = tag
        self.keys = [
            hashlib.blake2b(f"{tag}/{purpose}".encode(), key=key, digest_size=32).digest()
            for purpose in PURPOSES
        ]
        # Keyed BLAKE2b hashes its key as a first block: each function's state after that
        # block, copied per call, saves a compression.
        self.check, self.mask = (hashlib.blake2b(key=k, digest_size=8) for k in self.keys)

    @staticmethod
    def _f(keyed: Any, value: int) -> int:
        digest = keyed.copy()
        digest.update(value.to_bytes(8, "big"))
        return int.from_bytes(digest.digest(), "big")

    def id_of(self, position: int) -> str:
        """The id of the request whose first row is at ``position`` (0 <= position < 2**64)."""
        position &= _MASK
        digest = self.check.copy()
        digest.update(position.to_bytes(8, "big"))
        check = digest.digest()
        mask = self.mask.copy()
        mask.update(check)
        return f"{self.tag}-{check.hex()}{position ^ int.from_bytes(mask.digest(), 'big'):016x}"

    def position_of(self, request_id: str) -> int | None:
        """The position an id of this worker names; None for anything else (not an id, another
        worker's, forged or altered)."""
        tag, _, body = request_id.partition("-")
        if tag != self.tag or not BODY.fullmatch(body):
            return None
        check = int(body[:16], 16)
        position = int(body[16:], 16) ^ self._f(self.mask, check)
        return position if self._f(self.check, position) == check else None


def tag_of(request_id: str) -> str | None:
    """The worker tag an id names, if it is shaped like one (never a path or a number)."""
    tag, dash, body = request_id.partition("-")
    return tag if dash and TAG.fullmatch(tag) and BODY.fullmatch(body) else None


def blank_id(tag: str) -> str:
    """The id of a request with no rows: shaped like the others, naming no position."""
    return f"{tag}-{secrets.token_hex(16)}"


__all__ = ["RequestIds", "blank_id", "new_tag", "tag_of"]

"""Client keys: ``Authorization: Bearer <key>`` checked against SHA-256 digests in constant time.

The presented key is hashed and compared with every configured digest (no early exit), so neither a
key's length nor which key matched shows in the response time; the keys themselves are never kept.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["KeyChecker"]

_MAX_KEY_CHARS = 4096  # longer headers are refused before hashing


class KeyChecker:
    def __init__(self, digests: tuple[bytes, ...]) -> None:
        self._digests = digests

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def allows(self, authorization: str | None) -> bool:
        """True when no keys are configured, or the header carries one of them as a Bearer token."""
        if not self._digests:
            return True
        if not authorization or len(authorization) > _MAX_KEY_CHARS:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        presented = hashlib.sha256(token.strip().encode("utf-8", "surrogateescape")).digest()
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(presented, digest)
        return matched

"""Secrets at rest: CalDAV app passwords and ICS feed secrets are sealed with Fernet.

The keys come from `CALENDAR_ENCRYPTION_KEY` (comma-separated Fernet keys, newest first); unset,
one key is derived from SECRET_KEY, so a development machine needs no set-up. A MultiFernet
seals with the first key and opens with any, so a key can be rotated without losing a calendar.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SealError(Exception):
    """A sealed value no configured key opens (the keys changed without keeping the old one)."""


def derived_key(secret_key: str) -> bytes:
    """A Fernet key from SECRET_KEY, labelled so it is not the key any other feature derives."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"retainers.calendar-encryption:" + secret_key.encode()).digest())


@functools.cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys] if keys else [Fernet(derived_key(secret_key))])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.CALENDAR_ENCRYPTION_KEYS), settings.SECRET_KEY)


def seal(plain: str) -> str:
    return _current().encrypt(plain.encode()).decode()


def unseal(sealed: str) -> str:
    try:
        return _current().decrypt(sealed.encode()).decode()
    except InvalidToken as exc:
        raise SealError("This secret was sealed with a key that is no longer configured.") from exc

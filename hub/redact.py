"""Secrets out of messages: credentials embedded in URLs are masked before anything shows them."""

from __future__ import annotations

import re

# scheme://user:password@  (the password part, up to the last "@" before the host)
_URL_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/@:]*:)[^\s/]*@")
MASK = "***"


def redact_credentials(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URL masked."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group('head')}{MASK}@", text)

"""Remove credentials from URLs and free text before they reach a log line or an API answer."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"

# scheme://user:password@host. Greedy up to the last '@' before the path, so a password that
# itself holds an '@' is redacted whole. A lone user name (no ':') is kept: it is not a secret.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s]+)@")


def redact_url(url: str) -> str:
    """Return `url` with its password replaced by ``***`` (the user name is kept)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = f"{user}:{REDACTED}@{host}"
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:  # e.g. a non-numeric port: fall back to the textual rule
        return redact_text(url)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """Redact every ``scheme://user:password@`` found in free text (error messages, logs)."""

    def _sub(match: re.Match[str]) -> str:
        userinfo = match.group("userinfo")
        if ":" not in userinfo:
            return match.group(0)
        user = userinfo.split(":", 1)[0]
        return f"{match.group('scheme')}{user}:{REDACTED}@"

    return _USERINFO.sub(_sub, text)

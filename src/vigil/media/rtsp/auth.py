"""RTSP authentication: Basic and Digest (RFC 2617 / RFC 7616), from the URL's credentials.

Pure logic, no I/O: `Authenticator` reads a 401's ``WWW-Authenticate`` challenges and builds
the ``Authorization`` header for each following request (Digest counts nonces itself).
Written here rather than borrowed: the HTTP libraries' digest code is tied to their request
objects, and RTSP needs its own methods and request URIs.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

# Strongest first: a camera that offers several gets the first one found here.
_DIGEST_ALGORITHMS = {
    "SHA-512-256": "sha512_256",
    "SHA-256": "sha256",
    "MD5": "md5",
}
_TOKEN_OR_QUOTED = re.compile(
    r'\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?'
)


@dataclass(frozen=True)
class Credentials:
    """A user name and password, percent-decoded. The password never shows in repr()."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: scheme (lower case) and parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def stale(self) -> bool:
        """True when the server says only the nonce was stale, not the credentials wrong."""
        return self.params.get("stale", "").lower() == "true"


def credentials_from_url(url: str) -> Credentials | None:
    """The URL's ``user:password@`` userinfo, percent-decoded; None when it has no user."""
    parts = urlsplit(url)
    if parts.username is None:
        return None
    return Credentials(unquote(parts.username), unquote(parts.password or ""))


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Every challenge in the given ``WWW-Authenticate`` header values, in order."""
    challenges: list[Challenge] = []
    for header in headers:
        rest = header.strip()
        while rest:
            scheme, _, rest = rest.partition(" ")
            scheme = scheme.strip().rstrip(",")
            params: dict[str, str] = {}
            while True:
                match = _TOKEN_OR_QUOTED.match(rest)
                if match is None:
                    break
                params[match.group(1).lower()] = _unquote(match.group(2))
                rest = rest[match.end() :]
            if scheme:
                challenges.append(Challenge(scheme.lower(), params))
            rest = rest.strip().lstrip(",").strip()
    return challenges


def digest_response(
    *,
    algorithm: str,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str = "",
    cnonce: str = "",
) -> str:
    """The ``response`` value of a Digest Authorization (RFC 7616 §3.4.1, RFC 2069 without qop).

    `algorithm` is one of MD5, SHA-256, SHA-512-256, optionally with ``-sess``. Requests this
    client sends have no body, so qop=auth-int hashes the empty entity.
    """
    name = algorithm.upper()
    session = name.endswith("-SESS")
    hash_name = _DIGEST_ALGORITHMS[name.removesuffix("-SESS")]

    def digest(text: str) -> str:
        return hashlib.new(hash_name, text.encode("utf-8")).hexdigest()

    ha1 = digest(f"{username}:{realm}:{password}")
    if session:
        ha1 = digest(f"{ha1}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + digest("")
    ha2 = digest(a2)
    if qop:
        return digest(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return digest(f"{ha1}:{nonce}:{ha2}")


def supported(challenge: Challenge) -> bool:
    """True for Basic, and for Digest with an algorithm this module computes."""
    if challenge.scheme == "basic":
        return True
    if challenge.scheme != "digest" or "nonce" not in challenge.params:
        return False
    algorithm = challenge.params.get("algorithm", "MD5").upper().removesuffix("-SESS")
    return algorithm in _DIGEST_ALGORITHMS and _hash_available(_DIGEST_ALGORITHMS[algorithm])


class Authenticator:
    """Builds Authorization headers for one RTSP connection. Not thread-safe: callers lock.

    Nothing is sent until the server challenges (Basic never goes to a server that did not
    ask for it). `accept` takes the strongest supported challenge of a 401; `authorization`
    then answers it for each request, counting the nonce (nc) as RFC 7616 requires.
    """

    def __init__(
        self,
        credentials: Credentials | None,
        *,
        cnonce: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self.credentials = credentials
        self._cnonce = cnonce
        self._challenge: Challenge | None = None
        self._nonce_count = 0

    @property
    def challenged(self) -> bool:
        """True once a challenge was accepted: requests now carry Authorization."""
        return self._challenge is not None

    def accept(self, challenges: Iterable[Challenge]) -> Challenge | None:
        """Answer the strongest supported challenge from now on; None when none is usable."""
        usable = [c for c in challenges if supported(c)]
        if not usable:
            return None
        best = min(usable, key=_strength)
        if self._challenge is None or best.params.get("nonce") != self._challenge.params.get(
            "nonce"
        ):
            self._nonce_count = 0
        self._challenge = best
        return best

    def authorization(self, method: str, uri: str) -> str | None:
        """The Authorization header value for this request, or None (no challenge yet)."""
        challenge = self._challenge
        if challenge is None or self.credentials is None:
            return None
        username, password = self.credentials.username, self.credentials.password
        if challenge.scheme == "basic":
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            return f"Basic {token}"
        params = challenge.params
        algorithm = params.get("algorithm", "MD5")
        realm, nonce = params.get("realm", ""), params["nonce"]
        qop = _choose_qop(params.get("qop"))
        self._nonce_count += 1
        nc = f"{self._nonce_count:08x}"
        cnonce = self._cnonce() if qop or algorithm.upper().endswith("-SESS") else ""
        response = digest_response(
            algorithm=algorithm,
            username=username,
            password=password,
            realm=realm,
            nonce=nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
        )
        userhash = params.get("userhash", "").lower() == "true"
        if userhash:  # RFC 7616 §3.4.4: the name is hidden; the response still uses it
            hash_name = _DIGEST_ALGORITHMS[algorithm.upper().removesuffix("-SESS")]
            username = hashlib.new(hash_name, f"{username}:{realm}".encode()).hexdigest()
        fields = [
            f"username={_quote(username)}",
            f"realm={_quote(realm)}",
            f"nonce={_quote(nonce)}",
            f"uri={_quote(uri)}",
            f"response={_quote(response)}",
        ]
        # Echo the algorithm only when the server named it: some cameras compare strictly.
        if "algorithm" in params:
            fields.append(f"algorithm={algorithm}")
        if "opaque" in params:
            fields.append(f"opaque={_quote(params['opaque'])}")
        if qop:
            fields += [f"qop={qop}", f"nc={nc}", f"cnonce={_quote(cnonce)}"]
        elif cnonce:
            fields.append(f"cnonce={_quote(cnonce)}")
        if userhash:
            fields.append("userhash=true")
        return "Digest " + ", ".join(fields)


def _strength(challenge: Challenge) -> int:
    if challenge.scheme == "basic":
        return len(_DIGEST_ALGORITHMS)
    algorithm = challenge.params.get("algorithm", "MD5").upper().removesuffix("-SESS")
    return list(_DIGEST_ALGORITHMS).index(algorithm)


def _choose_qop(offered: str | None) -> str | None:
    if offered is None:
        return None
    options = {option.strip().lower() for option in offered.split(",")}
    if "auth" in options:
        return "auth"
    return "auth-int" if "auth-int" in options else None


def _hash_available(name: str) -> bool:
    try:
        hashlib.new(name)
    except ValueError:
        return False
    return True


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value

"""Who may read or publish which stream over RTSP: Basic and Digest, decided in pure Python.

Three kinds of credential: `rtsp.users` (Basic or Digest, per-stream `read`/`publish` lists);
the API's bearer tokens as the Basic password with any user name (viewer+ reads every stream,
operator+ also publishes; checked live, so a token created or revoked at run time counts within
a second); and `rtsp.anonymous_read` for streams anyone may play. With no credential at all (no
user, no token anywhere) access is open, as for the API (the server then binds loopback only).

GstRtspServer's own RTSPAuth keeps static user tables and cannot check a token whose hash alone
is known, nor tell a read from a publish on the same path: so the decision is made here, and the
server's glue (`rtsp_server.py`) only asks and sends the answer. Digest nonces are stateless
(a time stamp and its HMAC): nothing to store or expire, valid for `NONCE_LIFETIME_S`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vigil.config.rtsp import ALL_STREAMS, RtspAuthMethod, RtspUserConfig
from vigil.serve.rtsp_requests import Access
from vigil.store.tokens import Role, hash_token

logger = logging.getLogger(__name__)

REALM = "Vigil"
# A Digest challenge answered later than this is refused as stale (the client retries at once).
NONCE_LIFETIME_S = 600.0
# Tokens created or revoked while Vigil runs take effect within this time (as in the API).
TOKEN_CACHE_S = 1.0

TokenMap = dict[str, tuple[str, Role]]  # token sha256 -> (token name, role)

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^,\s]*)\s*,?')


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to one request: allowed or not, who asked (for sessions and logs), and why."""

    allowed: bool
    user: str | None
    reason: str
    # True when the client should be challenged (401); False when it is known and not allowed.
    challenge: bool = True


def _covers(names: Iterable[str], stream: str) -> bool:
    wanted = stream.casefold()
    return any(name == ALL_STREAMS or name.casefold() == wanted for name in names)


def parse_authorization(header: str) -> tuple[str, str | dict[str, str]]:
    """Split an Authorization header into its scheme (lower case) and its payload: the decoded
    ``user:password`` for Basic, the parameters for Digest. ``ValueError`` if malformed."""
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        try:
            return scheme, base64.b64decode(rest.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError("malformed Basic credentials") from None
    if scheme == "digest":
        params: dict[str, str] = {}
        for match in _PARAM.finditer(rest):
            key, raw, quoted = match.group(1), match.group(2), match.group(3)
            params[key.lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else raw
        return scheme, params
    raise ValueError(f"unsupported authorization scheme {scheme!r}")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def digest_response(
    *, user: str, password: str, realm: str, method: str, uri: str, nonce: str,
    qop: str | None = None, nc: str = "", cnonce: str = "",
) -> str:  # fmt: skip
    """RFC 2617's Digest response (MD5; with ``qop=auth`` when the client used it)."""
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


class RtspAuthPolicy:
    """Decides RTSP requests; thread-safe enough for one caller thread (the GLib thread)."""

    def __init__(
        self,
        *,
        users: Iterable[RtspUserConfig] = (),
        anonymous_read: Iterable[str] = (),
        methods: Iterable[RtspAuthMethod] = ("basic", "digest"),
        tokens: Callable[[], TokenMap] = dict,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        realm: str = REALM,
    ) -> None:
        self._users = {user.name: user for user in users}
        self._anonymous = tuple(anonymous_read)
        self._methods = frozenset(methods)
        self._tokens = tokens
        self._clock = clock  # wall clock: Digest nonces carry their time of issue
        self._monotonic = monotonic  # for the token cache
        self.realm = realm
        self._secret = secrets.token_bytes(32)
        self._token_cache: TokenMap = {}
        self._token_cache_at = float("-inf")

    # -- what exists ----------------------------------------------------------------------

    def tokens(self) -> TokenMap:
        """The API tokens now valid (hash → name, role), re-read at most every second."""
        now = self._monotonic()
        if now - self._token_cache_at >= TOKEN_CACHE_S:
            try:
                self._token_cache = dict(self._tokens())
            except Exception:  # a DB hiccup keeps the last known tokens rather than opening up
                logger.exception("cannot read the API tokens; keeping the last known ones")
            self._token_cache_at = now
        return self._token_cache

    @property
    def open(self) -> bool:
        """True while no credential exists at all: everyone may read and publish."""
        return not self._users and not self.tokens()

    def challenges(self) -> list[str]:
        """WWW-Authenticate values for a 401, strongest first (clients pick the first they know).
        Digest only while users exist: a token can answer Basic alone."""
        offered = []
        if "digest" in self._methods and self._users:
            offered.append(f'Digest realm="{self.realm}", nonce="{self._nonce()}"')
        if "basic" in self._methods or not offered:
            offered.append(f'Basic realm="{self.realm}"')
        return offered

    # -- deciding -------------------------------------------------------------------------

    def decide(
        self, authorization: str | None, *, method: str, uri: str, stream: str, access: Access
    ) -> Verdict:
        """May this request (`method` on `uri`, its Authorization header) do `access` on
        `stream`? `uri` is the request URI as sent (Digest hashes it)."""
        if self.open:
            return Verdict(True, None, "open access (no credential is configured)")
        anonymous = access is Access.READ and _covers(self._anonymous, stream)
        if not authorization:
            if anonymous:
                return Verdict(True, None, "anonymous read")
            return Verdict(False, None, "credentials required")
        try:
            scheme, payload = parse_authorization(authorization)
        except ValueError as exc:
            return Verdict(False, None, str(exc))
        if scheme == "basic" and "basic" in self._methods:
            assert isinstance(payload, str)
            name, _, password = payload.partition(":")
            who, role = self._basic(name, password)
        elif scheme == "digest" and "digest" in self._methods:
            assert isinstance(payload, dict)
            who, role, stale = self._digest(payload, method)
            if stale:
                return Verdict(False, None, "stale Digest nonce")
        else:
            return Verdict(False, None, f"{scheme} authentication is not offered")
        if who is None:
            return Verdict(False, None, "wrong credentials")
        if self._may(who, role, stream, access) or anonymous:
            return Verdict(True, who, f"{access.value} allowed")
        return Verdict(False, who, f"{who} may not {access.value} {stream}", challenge=False)

    def _basic(self, name: str, password: str) -> tuple[str | None, Role | None]:
        user = self._users.get(name)
        if user is not None and hmac.compare_digest(
            user.password.get_secret_value().encode(), password.encode()
        ):
            return name, None
        token = self.tokens().get(hash_token(password))
        if token is not None:
            return f"token:{token[0]}", token[1]
        return None, None

    def _digest(self, params: dict[str, str], method: str) -> tuple[str | None, None, bool]:
        """(user or None, no role, stale nonce?)."""
        user = self._users.get(params.get("username", ""))
        nonce, response = params.get("nonce", ""), params.get("response", "")
        if user is None or not response or params.get("realm") != self.realm:
            return None, None, False
        expected = digest_response(
            user=user.name, password=user.password.get_secret_value(), realm=self.realm,
            method=method, uri=params.get("uri", ""), nonce=nonce, qop=params.get("qop"),
            nc=params.get("nc", ""), cnonce=params.get("cnonce", ""),
        )  # fmt: skip
        if not hmac.compare_digest(expected, response.lower()):
            return None, None, False
        if not self._nonce_valid(nonce):
            return None, None, True
        return user.name, None, False

    def _may(self, who: str, role: Role | None, stream: str, access: Access) -> bool:
        if role is not None:  # an API token
            return role.allows(Role.OPERATOR if access is Access.PUBLISH else Role.VIEWER)
        user = self._users[who]
        return _covers(user.publish if access is Access.PUBLISH else user.read, stream)

    def _nonce(self) -> str:
        stamp = f"{int(self._clock()):x}"
        return stamp + hmac.new(self._secret, stamp.encode(), "sha256").hexdigest()[:24]

    def _nonce_valid(self, nonce: str) -> bool:
        stamp, mac = nonce[:-24], nonce[-24:]
        expected = hmac.new(self._secret, stamp.encode(), "sha256").hexdigest()[:24]
        if not stamp or not hmac.compare_digest(mac, expected):
            return False
        try:
            issued = int(stamp, 16)
        except ValueError:
            return False
        return 0 <= self._clock() - issued <= NONCE_LIFETIME_S

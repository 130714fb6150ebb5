#!/usr/bin/env python3
"""Stand-in for Fastmail's OAuth authorization server, for tests (stdlib only).

Fastmail is not reachable from the test machines, so mailconnect's upstream OAuth
client is tested against this server instead. It issues access tokens that the
testbed's Cyrus (scripts/testbed) accepts as `Authorization: Bearer`: HS256 JWTs
with only `sub` and `iat`, exactly as mint-jwt.py makes them. Access tokens are
therefore checked by the real JMAP server, and when Cyrus runs with
TESTBED_JWT_MAX_AGE their expiry is real too.

Usage:
  standin-upstream.py --jwt-key-b64 KEY --subject alice@example.test
      [--port 0] [--host 127.0.0.1]
      [--issuer URL]             default http://127.0.0.1:<bound port>
      [--access-ttl 3600]        expires_in of token responses (Cyrus enforces
                                 its own http_jwt_max_age, not this value)
      [--client ID[:SECRET]]...  pre-registered clients; with SECRET: confidential
      [--allow-any-client]       any unknown client_id is a public client

  KEY is $JMAP_JWT_HMAC_KEY_B64 from target/testbed/env. Once it listens, it
  prints exactly one line, STANDIN_URL=http://127.0.0.1:PORT, to stdout. Logs go
  to stderr and never show more than the first 6 characters of a token or code.
  SIGTERM or SIGINT stops it (exit 0).

Endpoints (Fastmail's paths; ISSUER is --issuer):
  GET  /.well-known/oauth-authorization-server   RFC 8414 metadata (and the same
  GET  /.well-known/openid-configuration         document here)
  POST /oauth/register    RFC 7591 dynamic registration (public clients only)
  GET  /oauth/authorize   auto-approves: 302 to redirect_uri with code, state, iss
                          (with --resource URI: any other resource, or none, gets
                          invalid_target "Unknown resource indicator", as a strict
                          provider answers)
  POST /oauth/refresh     the token endpoint (yes, Fastmail calls it that):
                          authorization_code (PKCE S256 required) and
                          refresh_token (rotation; reuse revokes the family)
  POST /oauth/revoke      RFC 7009; revokes a refresh token's family; always 200

Test control (JSON, loopback peers only):
  POST /_control/faults   {"grant_type": "refresh_token"|"authorization_code"|"any",
                           "kind": "invalid_grant"|"server_error"|"rate_limited"|
                                   "slow"|"drop", "count": 1, "delay_ms": 2000}
                          The next `count` matching token requests get the fault.
                          Faults are queued; a request takes the oldest matching.
                          `drop` does the work for real, then closes the
                          connection without a response (a lost response).
  POST /_control/expired_access_tokens  {"count": N[, "backdate_secs": S]}: the next N
                          access tokens have iat backdated by S seconds (default 24 h;
                          max_age - 2 makes a token that expires 2 s after it is issued)
                          (sets, does not add)
  GET  /_control/stats    counters, the last 20 authorize queries, live refresh
                          tokens, revoked families, pending faults
  POST /_control/reset    clears faults and counters; clients and tokens stay
  POST /_control/subject  {"subject": "bob@example.test"}: tokens minted from now on
                          (new sign-ins and refreshes) are for this Cyrus user

scripts/testbed.d/standin-upstream-selftest.py exercises all of it against the
running testbed.
"""

from __future__ import annotations

import argparse
import base64
import collections
import dataclasses
import hashlib
import hmac
import http.server
import ipaddress
import json
import re
import secrets
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.parse

MAIL_SCOPE = "urn:ietf:params:oauth:scope:mail"
SUPPORTED_SCOPES = (MAIL_SCOPE, "offline_access")
GRANT_TYPES = ("authorization_code", "refresh_token")
FAULT_KINDS = ("invalid_grant", "server_error", "rate_limited", "slow", "drop")
CODE_TTL_SECS = 600
EXPIRED_BACKDATE_SECS = 24 * 3600
MAX_BODY_BYTES = 64 * 1024
AUTHORIZE_HISTORY = 20
# RFC 7636 §4.1: 43..128 unreserved characters. S256 of anything is 43 base64url chars.
VERIFIER_RE = re.compile(r"[A-Za-z0-9._~-]{43,128}")
CHALLENGE_RE = re.compile(r"[A-Za-z0-9_-]{43}")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def log(msg: str) -> None:
    sys.stderr.write(f"[standin-upstream] {msg}\n")
    sys.stderr.flush()


def redact(token: str | None) -> str:
    """The first 6 chars only: enough to correlate log lines, useless as a credential."""
    return "-" if not token else token[:6] + "…"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def mint_jwt(key: bytes, sub: str, iat: int) -> str:
    """Same token shape as mint-jwt.py. Cyrus 3.6 answers 401 to any claim besides
    sub and iat, so there is no exp/jti/aud: two tokens minted in the same second
    for the same subject are identical."""
    compact = dict(separators=(",", ":"))
    h = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, **compact).encode())
    p = b64url(json.dumps({"sub": sub, "iat": iat}, **compact).encode())
    sig = hmac.new(key, f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64url(sig)}"


def redirect_uri_problem(uri: str) -> str | None:
    """Why `uri` may not be a redirect URI, or None. Loopback http (RFC 8252 §7.3) or https."""
    try:
        p = urllib.parse.urlsplit(uri)
        p.port  # raises ValueError on a malformed port
    except ValueError:
        return "malformed URI"
    if "#" in uri:
        return "redirect URIs must not have a fragment"
    if p.username is not None or p.password is not None:
        return "redirect URIs must not have userinfo"
    if p.scheme == "https" and p.hostname:
        return None
    if p.scheme == "http" and p.hostname in LOOPBACK_HOSTS:
        return None
    return "only https or loopback http (127.0.0.1, [::1], localhost) redirect URIs are accepted"


def with_query(uri: str, params: dict[str, str]) -> str:
    sep = "&" if urllib.parse.urlsplit(uri).query else ("" if uri.endswith("?") else "?")
    return uri + sep + urllib.parse.urlencode(params)


# ----------------------------------------------------------------- responses ---

@dataclasses.dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


# Returned instead of a Response: close the connection without answering.
DROP = object()
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_response(status: int, obj, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(obj, indent=None).encode()
    return Response(status, body, "application/json", dict(headers or {}))


class OAuthError(Exception):
    """A JSON error response (RFC 6749 §5.2 shape); raised anywhere in a handler."""

    def __init__(self, status: int, error: str, description: str = "",
                 headers: dict[str, str] | None = None):
        super().__init__(f"{error}: {description}")
        self.status, self.error, self.description = status, error, description
        self.headers = headers or {}

    def response(self) -> Response:
        obj = {"error": self.error}
        if self.description:
            obj["error_description"] = self.description
        return json_response(self.status, obj, {**NO_STORE, **self.headers})


def bad_request(description: str) -> OAuthError:
    return OAuthError(400, "invalid_request", description)


def invalid_client(description: str) -> OAuthError:
    # RFC 6749 §5.2: 401 must carry WWW-Authenticate for the scheme the client may use.
    return OAuthError(401, "invalid_client", description,
                      {"WWW-Authenticate": 'Basic realm="standin-upstream"'})


def invalid_grant(description: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", description)


class AuthorizeRejected(Exception):
    """An authorize error with no redirect URI we may trust: plain 400, no redirect
    (RFC 6749 §4.1.2.1 - redirecting would make us an open redirector)."""


# --------------------------------------------------------------------- state ---

@dataclasses.dataclass
class Client:
    client_id: str
    secret: str | None          # None: public client (token_endpoint_auth_method none)
    redirect_uris: list[str]    # empty: any acceptable redirect URI (CLI/any clients)
    scope: str | None           # DCR clients: what they registered; None: anything supported


@dataclasses.dataclass
class Code:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    resource: str | None
    expires_at: float
    used: bool = False
    family: int | None = None   # set on redemption, so a replay can revoke what it issued


@dataclasses.dataclass
class Family:
    """Everything descended from one authorization: the unit Fastmail revokes."""
    client_id: str
    scope: str
    resource: str | None
    revoked: bool = False


@dataclasses.dataclass
class RefreshToken:
    family: int
    used: bool = False


@dataclasses.dataclass
class Fault:
    grant_type: str
    kind: str
    remaining: int
    delay_ms: int

    def public(self) -> dict:
        return {"grant_type": self.grant_type, "kind": self.kind,
                "count": self.remaining, "delay_ms": self.delay_ms}


class Standin:
    """All mutable state, behind one lock. Handlers never sleep or do I/O holding it."""

    def __init__(self, key: bytes, subject: str, issuer: str, access_ttl: int,
                 clients: list[Client], allow_any_client: bool,
                 required_resource: str | None = None):
        self.required_resource = required_resource
        self.key, self.subject, self.issuer = key, subject, issuer
        self.access_ttl, self.allow_any_client = access_ttl, allow_any_client
        self.lock = threading.Lock()
        self.clients = {c.client_id: c for c in clients}
        self.codes: dict[str, Code] = {}
        self.families: dict[int, Family] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.next_family = 1
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.faults: collections.deque[Fault] = collections.deque()
        self.expired_pending = 0
        self.expired_backdate = EXPIRED_BACKDATE_SECS
        self.token_requests = {g: 0 for g in GRANT_TYPES}
        self.token_errors = 0
        self.revocations = 0
        self.registrations = 0
        self.authorize_requests: collections.deque[dict] = collections.deque(
            maxlen=AUTHORIZE_HISTORY)

    # -- helpers; callers hold self.lock --

    def _client(self, client_id: str) -> Client | None:
        known = self.clients.get(client_id)
        if known is None and self.allow_any_client:
            return Client(client_id, None, [], None)
        return known

    def _revoke_family(self, fam_id: int | None, why: str) -> None:
        fam = self.families.get(fam_id) if fam_id is not None else None
        if fam is not None and not fam.revoked:
            fam.revoked = True
            log(f"family {fam_id} revoked: {why}")

    def _issue_tokens(self, fam_id: int, scope: str) -> dict:
        rt = secrets.token_urlsafe(32)
        self.refresh_tokens[rt] = RefreshToken(fam_id)
        iat = int(time.time())
        if self.expired_pending > 0:
            self.expired_pending -= 1
            iat -= self.expired_backdate
        else:
            # A second in the past: a token minted at the turn of a second must not look
            # issued in the future to a server that read its clock a moment earlier (Cyrus
            # refused such tokens now and then under load).
            iat -= 1
        at = mint_jwt(self.key, self.subject, iat)
        # Every JWT starts with the same header bytes, so a prefix of one says nothing: log iat.
        log(f"issued access token (iat {iat}) and refresh {redact(rt)} in family {fam_id}")
        return {"access_token": at, "token_type": "Bearer", "expires_in": self.access_ttl,
                "refresh_token": rt, "scope": scope}

    # -- metadata --

    def metadata(self) -> dict:
        i = self.issuer
        return {
            "issuer": i,
            "authorization_endpoint": f"{i}/oauth/authorize",
            "token_endpoint": f"{i}/oauth/refresh",
            "revocation_endpoint": f"{i}/oauth/revoke",
            "registration_endpoint": f"{i}/oauth/register",
            "response_types_supported": ["code"],
            "grant_types_supported": list(GRANT_TYPES),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported":
                ["none", "client_secret_basic", "client_secret_post"],
            "scopes_supported": list(SUPPORTED_SCOPES),
            "authorization_response_iss_parameter_supported": True,
        }

    # -- RFC 7591 registration --

    def register(self, meta) -> dict:
        def bad_meta(desc: str) -> OAuthError:
            return OAuthError(400, "invalid_client_metadata", desc)

        if not isinstance(meta, dict):
            raise bad_request("the body must be a JSON object")
        uris = meta.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
            raise OAuthError(400, "invalid_redirect_uri",
                             "redirect_uris must be a non-empty array of strings")
        for u in uris:
            problem = redirect_uri_problem(u)
            if problem:
                raise OAuthError(400, "invalid_redirect_uri", f"{u}: {problem}")
        method = meta.get("token_endpoint_auth_method", "none")
        if method != "none":
            raise bad_meta("only public clients (token_endpoint_auth_method none) can register")
        grant_types = meta.get("grant_types", list(GRANT_TYPES))
        if not isinstance(grant_types, list) or not set(grant_types) <= set(GRANT_TYPES):
            raise bad_meta(f"grant_types must be a subset of {list(GRANT_TYPES)}")
        response_types = meta.get("response_types", ["code"])
        if not isinstance(response_types, list) or not set(response_types) <= {"code"}:
            raise bad_meta('response_types must be ["code"]')
        # Like Fastmail: no default scope. A client registered without one can
        # complete no authorization (authorize answers invalid_scope).
        scope = meta.get("scope", "")
        if not isinstance(scope, str):
            raise bad_meta("scope must be a space-separated string")
        unknown = [s for s in scope.split() if s not in SUPPORTED_SCOPES]
        if unknown:
            raise bad_meta(f"unsupported scope values {unknown}; supported: {list(SUPPORTED_SCOPES)}")
        scope = " ".join(dict.fromkeys(scope.split()))

        client_id = secrets.token_urlsafe(12)
        out = {
            "client_id": client_id,
            "client_id_issued_at": int(time.time()),
            "redirect_uris": uris,
            "scope": scope,
            "token_endpoint_auth_method": "none",
            "grant_types": grant_types,
            "response_types": response_types,
        }
        for k in ("client_name", "client_uri", "logo_uri", "software_id", "software_version"):
            if isinstance(meta.get(k), str):
                out[k] = meta[k]
        with self.lock:
            self.clients[client_id] = Client(client_id, None, list(uris), scope)
            self.registrations += 1
        log(f"registered client {client_id} redirect_uris={uris} scope={scope!r}")
        return out

    # -- authorization endpoint --

    def authorize(self, query: str) -> str:
        """The Location to redirect to; raises AuthorizeRejected for a plain 400."""
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        params = dict(pairs)
        duplicated = {k for k, _ in pairs if sum(1 for k2, _ in pairs if k2 == k) > 1}
        with self.lock:
            self.authorize_requests.append(params)
            client = self._client(params.get("client_id", ""))

        # First establish whether the redirect URI can be trusted (RFC 6749 §4.1.2.1).
        if duplicated & {"client_id", "redirect_uri"}:
            raise AuthorizeRejected("client_id and redirect_uri must not be repeated")
        if not params.get("client_id"):
            raise AuthorizeRejected("missing client_id")
        if client is None:
            raise AuthorizeRejected(f"unknown client_id {params['client_id']!r}")
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri:
            raise AuthorizeRejected("missing redirect_uri")
        if client.redirect_uris:
            if redirect_uri not in client.redirect_uris:  # exact string match
                raise AuthorizeRejected("redirect_uri is not one the client registered")
        elif problem := redirect_uri_problem(redirect_uri):
            raise AuthorizeRejected(f"redirect_uri: {problem}")

        # From here on errors go back to the client through the redirect URI.
        state = params.get("state", "")

        def error(code: str, desc: str) -> str:
            out = {"error": code, "error_description": desc}
            if state:
                out["state"] = state
            out["iss"] = self.issuer
            log(f"authorize error {code}: {desc}")
            return with_query(redirect_uri, out)

        if duplicated:
            return error("invalid_request", f"repeated parameters: {sorted(duplicated)}")
        response_type = params.get("response_type", "")
        if not response_type:
            return error("invalid_request", "missing response_type")
        if response_type != "code":
            return error("unsupported_response_type", "only response_type=code is supported")
        challenge = params.get("code_challenge", "")
        if not challenge:
            return error("invalid_request", "PKCE is required: missing code_challenge")
        if params.get("code_challenge_method") != "S256":
            return error("invalid_request", "code_challenge_method must be S256")
        if not CHALLENGE_RE.fullmatch(challenge):
            return error("invalid_request", "code_challenge is not a base64url SHA-256 digest")
        if not state:
            return error("invalid_request", "missing state")

        requested = params.get("scope", "").split()
        if not requested:
            requested = (client.scope if client.scope is not None else MAIL_SCOPE).split()
        unknown = [s for s in requested if s not in SUPPORTED_SCOPES]
        if unknown:
            return error("invalid_scope", f"unsupported scope values {unknown}")
        if client.scope is not None and not set(requested) <= set(client.scope.split()):
            return error("invalid_scope",
                         f"client registered scope {client.scope!r}; requested {' '.join(requested)!r}")
        if not requested:
            return error("invalid_scope", "no scope requested and none registered")
        scope = " ".join(dict.fromkeys(requested))

        resource = params.get("resource") or None
        if resource is not None:
            r = urllib.parse.urlsplit(resource)
            if not r.scheme or "#" in resource:
                return error("invalid_target", "resource must be an absolute URI without fragment")
        if self.required_resource is not None and resource != self.required_resource:
            return error("invalid_target", "Unknown resource indicator")

        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = Code(client.client_id, redirect_uri, challenge, scope, resource,
                                    time.time() + CODE_TTL_SECS)
        log(f"authorize ok: client {client.client_id} code {redact(code)} scope {scope!r}")
        return with_query(redirect_uri, {"code": code, "state": state, "iss": self.issuer})

    # -- token endpoint --

    def take_fault(self, grant_type: str) -> Fault | None:
        with self.lock:
            if grant_type in self.token_requests:
                self.token_requests[grant_type] += 1
            for fault in self.faults:
                if fault.grant_type in ("any", grant_type):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def count_token_error(self) -> None:
        with self.lock:
            self.token_errors += 1

    def authenticate_client(self, form: dict[str, str], authorization: str | None) -> Client:
        basic_id = basic_secret = None
        if authorization:
            scheme, _, param = authorization.strip().partition(" ")
            if scheme.lower() != "basic":
                raise invalid_client(f"unsupported Authorization scheme {scheme!r}")
            try:
                decoded = base64.b64decode(param.strip(), validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise invalid_client("malformed Basic credentials") from None
            if ":" not in decoded:
                raise invalid_client("malformed Basic credentials")
            # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
            i, s = decoded.split(":", 1)
            basic_id, basic_secret = urllib.parse.unquote_plus(i), urllib.parse.unquote_plus(s)
        body_id, body_secret = form.get("client_id"), form.get("client_secret")
        if basic_id is not None and body_secret is not None:
            raise bad_request("use one client authentication method, not Basic and client_secret")
        if basic_id is not None and body_id is not None and body_id != basic_id:
            raise bad_request("client_id in the body differs from the Basic credentials")
        client_id = basic_id if basic_id is not None else body_id
        secret = basic_secret if basic_id is not None else body_secret
        if not client_id:
            raise invalid_client("no client_id")
        with self.lock:
            client = self._client(client_id)
        if client is None:
            raise invalid_client(f"unknown client {client_id!r}")
        if client.secret is None:
            # An empty Basic password is how some libraries say "public client".
            if secret:
                raise invalid_client("this is a public client: it must not send a secret")
        elif secret is None or not hmac.compare_digest(secret.encode(), client.secret.encode()):
            raise invalid_client("wrong or missing client secret")
        return client

    def token(self, form: dict[str, str], authorization: str | None) -> dict:
        grant_type = form.get("grant_type")
        if not grant_type:
            raise bad_request("missing grant_type")
        if grant_type not in GRANT_TYPES:
            raise OAuthError(400, "unsupported_grant_type", f"grant_type {grant_type!r}")
        client = self.authenticate_client(form, authorization)
        if grant_type == "authorization_code":
            return self._redeem_code(client, form)
        return self._refresh(client, form)

    def _redeem_code(self, client: Client, form: dict[str, str]) -> dict:
        code = form.get("code")
        redirect_uri = form.get("redirect_uri")
        verifier = form.get("code_verifier")
        if not code:
            raise bad_request("missing code")
        if not verifier:
            raise bad_request("missing code_verifier (PKCE is required)")
        with self.lock:
            rec = self.codes.get(code)
            if rec is None:
                raise invalid_grant("unknown authorization code")
            if rec.used:
                # RFC 6749 §4.1.2: a replayed code should revoke what it issued.
                self._revoke_family(rec.family, f"code {redact(code)} replayed")
                raise invalid_grant("authorization code already used; its tokens are revoked")
            if time.time() > rec.expires_at:
                raise invalid_grant("authorization code expired")
            if rec.client_id != client.client_id:
                raise invalid_grant("authorization code was issued to another client")
            if redirect_uri != rec.redirect_uri:
                raise invalid_grant("redirect_uri differs from the authorization request")
            # Failed checks leave the code unused, so a client can retry a botched
            # request; only a successful redemption consumes it.
            if not VERIFIER_RE.fullmatch(verifier) or s256(verifier) != rec.challenge:
                raise invalid_grant("code_verifier does not match code_challenge")
            resource = form.get("resource")
            if resource is not None and resource != rec.resource:
                raise OAuthError(400, "invalid_target", "resource differs from the authorization request")
            fam_id = self.next_family
            self.next_family += 1
            self.families[fam_id] = Family(client.client_id, rec.scope, rec.resource)
            rec.used, rec.family = True, fam_id
            return self._issue_tokens(fam_id, rec.scope)

    def _refresh(self, client: Client, form: dict[str, str]) -> dict:
        rt = form.get("refresh_token")
        if not rt:
            raise bad_request("missing refresh_token")
        with self.lock:
            rec = self.refresh_tokens.get(rt)
            if rec is None:
                raise invalid_grant("unknown refresh token")
            fam = self.families[rec.family]
            if fam.client_id != client.client_id:
                raise invalid_grant("refresh token was issued to another client")
            if fam.revoked:
                raise invalid_grant("refresh token revoked")
            if rec.used:
                # Like Fastmail: refresh tokens are single-use, and reuse of one means
                # two parties hold the chain, so the whole chain dies.
                self._revoke_family(rec.family, f"refresh token {redact(rt)} reused")
                raise invalid_grant("refresh token already used; all its descendants are revoked")
            scope = fam.scope
            if form.get("scope"):
                asked = form["scope"].split()
                if not set(asked) <= set(fam.scope.split()):
                    raise OAuthError(400, "invalid_scope", f"the grant's scope is {fam.scope!r}")
                scope = " ".join(dict.fromkeys(asked))
            rec.used = True
            return self._issue_tokens(rec.family, scope)

    # -- RFC 7009 revocation --

    def revoke(self, form: dict[str, str]) -> None:
        token = form.get("token", "")
        with self.lock:
            self.revocations += 1
            rec = self.refresh_tokens.get(token)
            if rec is None:
                # Unknown tokens and access tokens: 200 per RFC 7009 §2.2. Access tokens
                # are stateless JWTs that Cyrus checks itself; nothing here can revoke them.
                log(f"revoke: {redact(token)} is not a known refresh token (ignored)")
                return
            fam = self.families[rec.family]
            if form.get("client_id") and form["client_id"] != fam.client_id:
                log(f"revoke: {redact(token)} belongs to another client (ignored)")
                return
            self._revoke_family(rec.family, f"revoked via /oauth/revoke ({redact(token)})")

    # -- test control --

    def add_fault(self, spec) -> list[dict]:
        if not isinstance(spec, dict):
            raise bad_request("the body must be a JSON object")
        extra = set(spec) - {"grant_type", "kind", "count", "delay_ms"}
        if extra:
            raise bad_request(f"unknown fields {sorted(extra)}")
        grant_type = spec.get("grant_type", "any")
        kind = spec.get("kind")
        count = spec.get("count", 1)
        delay_ms = spec.get("delay_ms", 2000)
        if grant_type not in (*GRANT_TYPES, "any"):
            raise bad_request("grant_type must be authorization_code, refresh_token or any")
        if kind not in FAULT_KINDS:
            raise bad_request(f"kind must be one of {list(FAULT_KINDS)}")
        # bool is an int subclass; reject it so {"count": true} is not a 1.
        for name, v in (("count", count), ("delay_ms", delay_ms)):
            if not isinstance(v, int) or isinstance(v, bool) or v < (1 if name == "count" else 0):
                raise bad_request(f"{name} must be an integer >= {1 if name == 'count' else 0}")
        with self.lock:
            self.faults.append(Fault(grant_type, kind, count, delay_ms))
            log(f"fault queued: {kind} x{count} on {grant_type}")
            return [f.public() for f in self.faults]

    def set_expired(self, spec) -> int:
        count = spec.get("count") if isinstance(spec, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise bad_request('body must be {"count": N} with an integer N >= 0')
        backdate = spec.get("backdate_secs", EXPIRED_BACKDATE_SECS)
        if not isinstance(backdate, int) or isinstance(backdate, bool) or backdate < 0:
            raise bad_request("backdate_secs must be an integer >= 0")
        with self.lock:
            self.expired_pending = count
            self.expired_backdate = backdate
        return count

    def stats(self) -> dict:
        with self.lock:
            live = sum(1 for r in self.refresh_tokens.values()
                       if not r.used and not self.families[r.family].revoked)
            return {
                "token_requests": dict(self.token_requests),
                "token_errors": self.token_errors,
                "revocations": self.revocations,
                "registrations": self.registrations,
                "authorize_requests": list(self.authorize_requests),
                "live_refresh_tokens": live,
                "revoked_families": sum(1 for f in self.families.values() if f.revoked),
                "pending_faults": [f.public() for f in self.faults],
                "pending_expired_access_tokens": self.expired_pending,
            }

    def reset(self) -> None:
        with self.lock:
            self._reset_counters()
        log("control: faults and counters reset")


# ---------------------------------------------------------------------- HTTP ---

def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise bad_request("the body must be application/x-www-form-urlencoded")
    try:
        pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise bad_request("malformed form body") from None
    names = [k for k, _ in pairs]
    repeated = sorted({k for k in names if names.count(k) > 1})
    if repeated:  # RFC 6749 §3.1: parameters must not be included more than once
        raise bad_request(f"repeated parameters: {repeated}")
    # RFC 6749 §3.1: a parameter sent without a value is treated as omitted.
    return {k: v for k, v in pairs if v != ""}


def parse_json(body: bytes):
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad_request("the body must be JSON") from None


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive, so that clients with connection pools (reqwest) behave as
    # they would against Fastmail, including a dropped response on a reused connection.
    protocol_version = "HTTP/1.1"
    server_version = "standin-upstream/1"
    standin: Standin  # set on the class by main()

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    # ---- routes: (method, path) -> handler(query, body) -> Response | DROP

    def _metadata(self, query, body):
        return json_response(200, self.standin.metadata())

    def _register(self, query, body):
        return json_response(201, self.standin.register(parse_json(body)), NO_STORE)

    def _authorize(self, query, body):
        try:
            location = self.standin.authorize(query)
        except AuthorizeRejected as e:
            log(f"authorize rejected (400, no redirect): {e}")
            return Response(400, f"invalid authorization request: {e}\n".encode(),
                            "text/plain; charset=utf-8", dict(NO_STORE))
        return Response(302, b"", None, {"Location": location, **NO_STORE})

    def _token(self, query, body):
        st = self.standin
        form = parse_form(body, self.headers.get("Content-Type"))
        grant_type = form.get("grant_type", "")
        fault = st.take_fault(grant_type)
        if fault is not None:
            log(f"fault {fault.kind} on {grant_type or '-'} request")
            injected = {
                "invalid_grant": invalid_grant("injected fault"),
                "server_error": OAuthError(500, "server_error", "injected fault"),
                "rate_limited": OAuthError(429, "temporarily_unavailable", "rate limited (injected)",
                                           {"Retry-After": "1"}),
            }.get(fault.kind)
            if injected is not None:
                st.count_token_error()
                return injected.response()
            if fault.kind == "slow":
                time.sleep(fault.delay_ms / 1000)  # outside the lock: others proceed
        try:
            resp = json_response(200, st.token(form, self.headers.get("Authorization")), NO_STORE)
        except OAuthError as e:
            st.count_token_error()
            resp = e.response()
        # A drop still did the work above (the code is consumed, the refresh token
        # rotated): this is the "response lost in transit" case clients must survive.
        return DROP if fault is not None and fault.kind == "drop" else resp

    def _revoke(self, query, body):
        self.standin.revoke(parse_form(body, self.headers.get("Content-Type")))
        return Response(200, b"", None, dict(NO_STORE))

    def _faults(self, query, body):
        return json_response(200, {"pending_faults": self.standin.add_fault(parse_json(body))})

    def _expired(self, query, body):
        return json_response(200, {"pending_expired_access_tokens":
                                   self.standin.set_expired(parse_json(body))})

    def _stats(self, query, body):
        return json_response(200, self.standin.stats())

    def _subject(self, query, body):
        subject = parse_json(body).get("subject")
        if not isinstance(subject, str) or not subject:
            raise OAuthError(400, "invalid_request", "subject must be a non-empty string")
        self.standin.subject = subject
        return json_response(200, {"subject": subject})

    def _reset(self, query, body):
        self.standin.reset()
        return json_response(200, {"reset": True})

    ROUTES = {
        "/.well-known/oauth-authorization-server": {"GET": _metadata},
        "/.well-known/openid-configuration": {"GET": _metadata},
        "/oauth/register": {"POST": _register},
        "/oauth/authorize": {"GET": _authorize},
        "/oauth/refresh": {"POST": _token},
        "/oauth/revoke": {"POST": _revoke},
        "/_control/faults": {"POST": _faults},
        "/_control/expired_access_tokens": {"POST": _expired},
        "/_control/stats": {"GET": _stats},
        "/_control/reset": {"POST": _reset},
        "/_control/subject": {"POST": _subject},
    }

    # ---- plumbing

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # we cannot find the end of the body
            raise bad_request("chunked request bodies are not supported; send Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            n = int(raw)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise bad_request("malformed Content-Length") from None
        if n > MAX_BODY_BYTES:
            self.close_connection = True
            raise bad_request(f"body larger than {MAX_BODY_BYTES} bytes")
        body = self.rfile.read(n)
        if len(body) != n:
            self.close_connection = True
            raise bad_request("body shorter than Content-Length")
        return body

    def _is_loopback_peer(self) -> bool:
        try:
            ip = ipaddress.ip_address(self.client_address[0])
        except ValueError:
            return False
        mapped = getattr(ip, "ipv4_mapped", None)
        return (mapped or ip).is_loopback

    def _dispatch(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        try:
            body = self._read_body()
            routes = self.ROUTES.get(path)
            if routes is None:
                resp = json_response(404, {"error": "not_found", "error_description": path})
            elif method not in routes:
                resp = json_response(405, {"error": "method_not_allowed"},
                                     {"Allow": ", ".join(routes)})
            elif path.startswith("/_control/") and not self._is_loopback_peer():
                resp = json_response(403, {"error": "forbidden",
                                           "error_description": "control is loopback-only"})
            else:
                resp = routes[method](self, query, body)
        except OAuthError as e:
            if path == "/oauth/refresh":  # e.g. a malformed form: still a token error
                self.standin.count_token_error()
            resp = e.response()
        except Exception:  # a bug here must not hand a traceback to the client
            log(f"internal error on {method} {path}:\n{traceback.format_exc()}")
            resp = json_response(500, {"error": "server_error"})
            self.close_connection = True
        if resp is DROP:
            log(f"{method} {path} -> dropped (connection closed, no response)")
            self.close_connection = True
            return
        self._send(method, path, resp)

    def _send(self, method: str, path: str, resp: Response) -> None:
        self.send_response(resp.status)
        if resp.content_type:
            self.send_header("Content-Type", resp.content_type)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(resp.body)
        log(f"{method} {path} -> {resp.status}")

    def log_request(self, code="-", size="-"):
        # The default logs the full request line; we log method, path and status in
        # _send instead, so nothing from query strings ever reaches the log.
        pass

    def log_message(self, format, *args):
        log(f"{self.client_address[0]} {format % args}")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a "slow" fault in flight must not delay shutdown
    request_queue_size = 64  # concurrent-refresh tests open many connections at once


class Server6(Server):
    address_family = socket.AF_INET6


def parse_client(spec: str) -> Client:
    client_id, _, secret = spec.partition(":")
    if not client_id:
        raise argparse.ArgumentTypeError(f"--client {spec!r}: empty client id")
    return Client(client_id, secret or None, [], None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Stand-in for Fastmail's OAuth server, issuing JWTs the Cyrus testbed accepts.",
        epilog="See the module docstring (head of this file) for endpoints and test control.")
    ap.add_argument("--jwt-key-b64", required=True, help="$JMAP_JWT_HMAC_KEY_B64 (base64 HMAC key)")
    ap.add_argument("--subject", required=True, help="Cyrus userid for the sub claim")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    ap.add_argument("--issuer", help="default http://127.0.0.1:<bound port>")
    ap.add_argument("--access-ttl", type=int, default=3600, help="expires_in in token responses")
    ap.add_argument("--client", type=parse_client, action="append", default=[],
                    metavar="ID[:SECRET]", help="pre-registered client (repeatable)")
    ap.add_argument("--allow-any-client", action="store_true",
                    help="accept any client_id as a public client")
    ap.add_argument("--resource", help="the only resource indicator accepted (RFC 8707)")
    args = ap.parse_args(argv)
    try:
        key = base64.b64decode(args.jwt_key_b64, validate=True)
    except ValueError:
        ap.error("--jwt-key-b64 is not valid base64")
    if not key:
        ap.error("--jwt-key-b64 is empty")
    if args.access_ttl <= 0:
        ap.error("--access-ttl must be positive")

    server_cls = Server6 if ":" in args.host else Server
    server = server_cls((args.host, args.port), Handler)
    port = server.server_address[1]
    if args.host in ("0.0.0.0", ""):
        url_host = "127.0.0.1"
    elif args.host in ("::", "::0"):
        url_host = "[::1]"
    else:
        url_host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{url_host}:{port}"
    issuer = (args.issuer or f"http://127.0.0.1:{port}").rstrip("/")
    Handler.standin = Standin(key, args.subject, issuer, args.access_ttl, args.client,
                              args.allow_any_client, args.resource)

    # serve_forever runs in a thread and the main thread only waits for a signal:
    # server.shutdown() blocks until serve_forever returns, so it must never be
    # called from the thread that runs it.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                               name="serve_forever", daemon=True)
    serving.start()
    print(f"STANDIN_URL={url}", flush=True)
    log(f"listening on {url}, issuer {issuer}, subject {args.subject}, "
        f"clients {[c.client_id for c in args.client]}, allow-any-client {args.allow_any_client}")
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

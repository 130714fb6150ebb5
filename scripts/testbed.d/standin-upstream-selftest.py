#!/usr/bin/env python3
"""Self-test of standin-upstream.py against the running Cyrus testbed (stdlib only).

Usage: scripts/testbed.d/standin-upstream-selftest.py [-v]
  Needs the testbed up (scripts/testbed up): reads target/testbed/env, starts two
  stand-ins as subprocesses, and checks every endpoint, fault and control knob.
  Access tokens are checked against the real Cyrus JMAP session endpoint.
  Prints one PASS/FAIL/SKIP line per check and exits 1 if any check failed.
  -v prints the stand-ins' stderr logs at the end (they are shown anyway on failure).
"""
import base64
import hashlib
import http.client
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STANDIN = os.path.join(HERE, "standin-upstream.py")
MAIL = "urn:ietf:params:oauth:scope:mail"
REDIRECT = "http://127.0.0.1:8765/callback"

failures = 0
secrets_seen: list[str] = []  # every token/code handed out: none may appear in a log


def report(status: str, name: str, detail: str = "") -> None:
    print(f"{status} {name}" + (f" -- {detail}" if detail else ""), flush=True)


def check(name: str, ok: bool, detail="") -> bool:
    global failures
    if not ok:
        failures += 1
    report("PASS" if ok else "FAIL", name, "" if ok else str(detail))
    return ok


def read_env() -> dict:
    path = os.path.join(ROOT, "target", "testbed", "env")
    try:
        with open(path) as f:
            return dict(l.rstrip("\n").split("=", 1) for l in f if "=" in l)
    except FileNotFoundError:
        sys.exit(f"{path} not found: start the testbed first (scripts/testbed up)")


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# ------------------------------------------------------------------ HTTP ---

class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def header(self, name):
        return self.headers.get(name.lower())


def request(method, url, body=None, headers=None, form=None, jsonbody=None, timeout=15) -> Resp:
    """One request on a fresh connection, no redirect following, errors as Resp."""
    headers = dict(headers or {})
    if form is not None:
        body = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif jsonbody is not None:
        body = json.dumps(jsonbody).encode()
        headers["Content-Type"] = "application/json"
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        path = u.path + (f"?{u.query}" if u.query else "")
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


class Standin:
    def __init__(self, name, env, *extra):
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"standin-{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, STANDIN, "--jwt-key-b64", env["JMAP_JWT_HMAC_KEY_B64"],
             "--subject", env["JMAP_USERNAME"], "--port", "0", *extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("STANDIN_URL="):
            self.stop()
            sys.exit(f"stand-in {name} did not start (got {line!r}):\n{self.log_text()}")
        self.url = line.split("=", 1)[1]
        self.first_line = line

    def log_text(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    # --- OAuth steps

    def authorize(self, client_id, redirect_uri=REDIRECT, challenge=None, state="st-1", **extra):
        q = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
             "code_challenge": challenge, "code_challenge_method": "S256", "state": state,
             "scope": f"{MAIL} offline_access", **extra}
        q = {k: v for k, v in q.items() if v is not None}
        r = request("GET", f"{self.url}/oauth/authorize?{urllib.parse.urlencode(q)}")
        loc = r.header("location") or ""
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
        return r, loc, params

    def code(self, client_id, redirect_uri=REDIRECT, scope=None):
        """A fresh code with its verifier, or (None, None)."""
        verifier = secrets.token_urlsafe(48)
        extra = {"scope": scope} if scope else {}
        _, _, p = self.authorize(client_id, redirect_uri, s256(verifier), **extra)
        if p.get("code"):
            secrets_seen.append(p["code"])
        return p.get("code"), verifier

    def token(self, form, auth=None) -> Resp:
        headers = {}
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        r = request("POST", f"{self.url}/oauth/refresh", form=form, headers=headers)
        j = r.json() or {}
        for k in ("access_token", "refresh_token"):
            if isinstance(j.get(k), str):
                secrets_seen.append(j[k])
        return r

    def exchange(self, client_id, code, verifier, redirect_uri=REDIRECT, **extra):
        return self.token({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                           "code_verifier": verifier, "client_id": client_id, **extra})

    def refresh(self, client_id, rt):
        return self.token({"grant_type": "refresh_token", "refresh_token": rt, "client_id": client_id})

    def login(self, client_id, redirect_uri=REDIRECT):
        """authorize + exchange -> the token response JSON (or {})."""
        code, verifier = self.code(client_id, redirect_uri)
        if not code:
            return {}
        return self.exchange(client_id, code, verifier, redirect_uri).json() or {}

    def control(self, method, what, body=None) -> Resp:
        return request(method, f"{self.url}/_control/{what}", jsonbody=body)

    def fault(self, **spec):
        r = self.control("POST", "faults", spec)
        assert r.status == 200, (r.status, r.body)

    def stats(self) -> dict:
        return self.control("GET", "stats").json()


def error_of(r: Resp):
    return (r.json() or {}).get("error")


def cyrus_session(env, access_token) -> Resp:
    return request("GET", env["JMAP_SESSION_URL"], headers={"Authorization": f"Bearer {access_token}"})


def cyrus_max_age(env) -> str:
    """http_jwt_max_age of the running Cyrus ("0s" when unknown or not set)."""
    try:
        with open(os.path.join(env["CYRUS_DIR"], "imapd.conf")) as f:
            for line in f:
                if line.startswith("http_jwt_max_age:"):
                    return line.split(":", 1)[1].strip()
    except (OSError, KeyError):
        pass
    return "0s"


# ----------------------------------------------------------------- tests ---

def test_metadata(s: Standin):
    check("startup prints STANDIN_URL=http://127.0.0.1:PORT",
          s.first_line.startswith("STANDIN_URL=http://127.0.0.1:"), s.first_line)
    r = request("GET", f"{s.url}/.well-known/oauth-authorization-server")
    m = r.json() or {}
    i = s.url
    check("metadata: 200 JSON", r.status == 200 and r.header("content-type") == "application/json", r.status)
    want = {
        "issuer": i, "authorization_endpoint": f"{i}/oauth/authorize",
        "token_endpoint": f"{i}/oauth/refresh", "revocation_endpoint": f"{i}/oauth/revoke",
        "registration_endpoint": f"{i}/oauth/register", "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "scopes_supported": [MAIL, "offline_access"],
        "authorization_response_iss_parameter_supported": True,
    }
    check("metadata: every field as specified", m == want, json.dumps(m))
    r2 = request("GET", f"{s.url}/.well-known/openid-configuration")
    check("metadata: same document at /.well-known/openid-configuration", r2.json() == m, r2.body[:200])


def test_registration(s: Standin):
    r = request("POST", f"{s.url}/oauth/register", jsonbody={
        "redirect_uris": [REDIRECT, "http://[::1]:9000/cb", "https://app.example/cb"],
        "scope": f"{MAIL} offline_access", "client_name": "selftest"})
    j = r.json() or {}
    ok = (r.status == 201 and j.get("client_id") and isinstance(j.get("client_id_issued_at"), int)
          and j.get("redirect_uris") == [REDIRECT, "http://[::1]:9000/cb", "https://app.example/cb"]
          and j.get("scope") == f"{MAIL} offline_access" and j.get("token_endpoint_auth_method") == "none")
    check("DCR: 201 with client_id, issued_at, redirect_uris, scope, auth method none", ok, f"{r.status} {j}")
    dcr = j.get("client_id")

    r = request("POST", f"{s.url}/oauth/register", jsonbody={"redirect_uris": ["http://evil.example/cb"],
                                                             "scope": MAIL})
    check("DCR: non-loopback http redirect -> 400 invalid_redirect_uri",
          r.status == 400 and error_of(r) == "invalid_redirect_uri", f"{r.status} {r.body[:200]}")
    r = request("POST", f"{s.url}/oauth/register", jsonbody={"redirect_uris": []})
    check("DCR: no redirect_uris -> 400 invalid_redirect_uri",
          r.status == 400 and error_of(r) == "invalid_redirect_uri", r.status)
    r = request("POST", f"{s.url}/oauth/register", jsonbody={"redirect_uris": [REDIRECT], "scope": MAIL,
                                                             "token_endpoint_auth_method": "client_secret_basic"})
    check("DCR: confidential client -> 400 invalid_client_metadata",
          r.status == 400 and error_of(r) == "invalid_client_metadata", r.status)
    r = request("POST", f"{s.url}/oauth/register", body=b"redirect_uris=x",
                headers={"Content-Type": "application/json"})
    check("DCR: non-JSON body -> 400 invalid_request (no traceback)",
          r.status == 400 and error_of(r) == "invalid_request" and b"Traceback" not in r.body, r.body[:200])

    r = request("POST", f"{s.url}/oauth/register", jsonbody={"redirect_uris": [REDIRECT]})
    noscope = (r.json() or {}).get("client_id")
    check("DCR: without scope registers with empty scope",
          r.status == 201 and (r.json() or {}).get("scope") == "", r.body[:200])
    _, _, p = s.authorize(noscope, challenge=s256("x" * 43))
    check("DCR: client with empty scope -> authorize invalid_scope", p.get("error") == "invalid_scope", p)
    return dcr


def test_authorize(s: Standin, dcr: str):
    verifier = secrets.token_urlsafe(48)
    r, loc, p = s.authorize(dcr, challenge=s256(verifier), state="abc 123/+")
    ok = (r.status == 302 and loc.startswith(REDIRECT + "?") and p.get("code")
          and p.get("state") == "abc 123/+" and p.get("iss") == s.url
          and r.header("cache-control") == "no-store")
    check("authorize: 302 to redirect_uri with code, state, iss", ok, f"{r.status} {loc}")
    if p.get("code"):
        secrets_seen.append(p["code"])
    rec = (s.stats().get("authorize_requests") or [{}])[-1]
    check("authorize: query recorded in stats", rec.get("state") == "abc 123/+" and rec.get("client_id") == dcr, rec)

    def redirected_error(name, want, **kw):
        r, loc, p = s.authorize(dcr, challenge=kw.pop("challenge", s256(verifier)), state="s9", **kw)
        ok = (r.status == 302 and loc.startswith(REDIRECT) and p.get("error") == want
              and p.get("state") == "s9" and p.get("iss") == s.url and "code" not in p)
        check(f"authorize: {name} -> 302 error={want} with state and iss", ok, f"{r.status} {loc}")

    redirected_error("code_challenge_method=plain", "invalid_request", code_challenge_method="plain")
    redirected_error("no code_challenge_method", "invalid_request", code_challenge_method=None)
    redirected_error("no code_challenge", "invalid_request", challenge=None)
    redirected_error("response_type=token", "unsupported_response_type", response_type="token")
    redirected_error("unknown scope", "invalid_scope", scope="urn:example:other")

    def plain_400(name, client_id, redirect_uri):
        r, loc, _ = s.authorize(client_id, redirect_uri, s256(verifier))
        ok = r.status == 400 and not loc and (r.header("content-type") or "").startswith("text/plain")
        check(f"authorize: {name} -> 400 text/plain, no redirect", ok, f"{r.status} {loc} {r.body[:120]}")

    plain_400("redirect_uri not registered (other port)", dcr, "http://127.0.0.1:8766/callback")
    plain_400("unknown client_id", "nobody", REDIRECT)
    plain_400("non-loopback http redirect for a CLI client", "selftest", "http://evil.example/cb")


def test_code_exchange(s: Standin, env, dcr: str):
    code, verifier = s.code(dcr)
    r = s.exchange(dcr, code, verifier)
    j = r.json() or {}
    ok = (r.status == 200 and r.header("content-type") == "application/json"
          and r.header("cache-control") == "no-store" and j.get("token_type") == "Bearer"
          and j.get("expires_in") == 3600 and j.get("scope") == f"{MAIL} offline_access"
          and len(base64.urlsafe_b64decode(j.get("refresh_token", "") + "=")) == 32)
    check("code exchange: 200, no-store, Bearer, expires_in, 32-byte refresh token, scope", ok, f"{r.status} {j}")
    at = j.get("access_token", "")
    header = json.loads(base64.urlsafe_b64decode(at.split(".")[0] + "==")) if at.count(".") == 2 else {}
    claims = jwt_claims(at) if at.count(".") == 2 else {}
    check("access token: HS256 JWT with only sub and iat",
          header == {"alg": "HS256", "typ": "JWT"} and set(claims) == {"sub", "iat"}
          and claims["sub"] == env["JMAP_USERNAME"] and abs(claims["iat"] - time.time()) < 10, (header, claims))
    c = cyrus_session(env, at)
    check("access token works against Cyrus: session 200, username alice",
          c.status == 200 and (c.json() or {}).get("username") == env["JMAP_USERNAME"], f"{c.status} {c.body[:120]}")

    # wrong verifier, then the right one: a failed check does not consume the code
    code2, verifier2 = s.code(dcr)
    r = s.exchange(dcr, code2, secrets.token_urlsafe(48))
    check("wrong code_verifier -> 400 invalid_grant", r.status == 400 and error_of(r) == "invalid_grant", r.body)
    r = s.exchange(dcr, code2, verifier2, redirect_uri="http://[::1]:9000/cb")
    check("code with another redirect_uri -> 400 invalid_grant",
          r.status == 400 and error_of(r) == "invalid_grant", r.body)
    r = s.exchange("selftest", code2, verifier2)
    check("code presented by another client -> 400 invalid_grant",
          r.status == 400 and error_of(r) == "invalid_grant", r.body)
    r = s.exchange(dcr, code2, verifier2)
    check("the right verifier afterwards -> 200", r.status == 200, r.body)
    rt2 = (r.json() or {}).get("refresh_token")

    # replay: invalid_grant and everything issued from the code is revoked
    r = s.exchange(dcr, code2, verifier2)
    check("code replay -> 400 invalid_grant", r.status == 400 and error_of(r) == "invalid_grant", r.body)
    r = s.refresh(dcr, rt2)
    check("code replay revoked the refresh token issued from it",
          r.status == 400 and error_of(r) == "invalid_grant", r.body)
    r = s.exchange(dcr, "no-such-code", verifier2)
    check("unknown code -> 400 invalid_grant", r.status == 400 and error_of(r) == "invalid_grant", r.body)
    return j.get("refresh_token")


def test_refresh(s: Standin, env, dcr: str, rt1: str):
    r = s.refresh(dcr, rt1)
    j = r.json() or {}
    rt2 = j.get("refresh_token")
    check("refresh: 200 with a NEW refresh token", r.status == 200 and rt2 and rt2 != rt1, j)
    c = cyrus_session(env, j.get("access_token", ""))
    check("refreshed access token works against Cyrus", c.status == 200, c.status)
    r = s.refresh(dcr, rt2)
    rt3 = (r.json() or {}).get("refresh_token")
    check("refresh again with the new one -> 200", r.status == 200 and rt3, r.body)
    r = s.refresh(dcr, rt1)
    check("reuse of a used refresh token -> 400 invalid_grant",
          r.status == 400 and error_of(r) == "invalid_grant", r.body)
    r = s.refresh(dcr, rt3)
    check("...and the newest refresh token of that family is dead too",
          r.status == 400 and error_of(r) == "invalid_grant", r.body)

    rt = s.login(dcr).get("refresh_token")
    r = s.refresh("selftest", rt)
    check("refresh token presented by another client -> 400 invalid_grant",
          r.status == 400 and error_of(r) == "invalid_grant", r.body)
    r = s.token({"grant_type": "refresh_token", "refresh_token": rt, "client_id": dcr, "scope": MAIL})
    check("refresh with a narrower scope -> 200 with that scope",
          r.status == 200 and (r.json() or {}).get("scope") == MAIL, r.body)
    rt = (r.json() or {}).get("refresh_token")
    r = s.token({"grant_type": "refresh_token", "refresh_token": rt, "client_id": dcr,
                 "scope": "urn:example:more"})
    check("refresh with a wider scope -> 400 invalid_scope",
          r.status == 400 and error_of(r) == "invalid_scope", r.body)


def test_concurrent_refresh(s: Standin, dcr: str):
    """Many simultaneous presentations of one refresh token: exactly one wins (the
    state lock makes check-and-rotate atomic), and the losers' reuse kills the family."""
    rt = s.login(dcr).get("refresh_token")
    results = []
    barrier = threading.Barrier(16)

    def go():
        barrier.wait()
        results.append(s.refresh(dcr, rt))

    threads = [threading.Thread(target=go) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [r for r in results if r.status == 200]
    losses = [r for r in results if r.status == 400 and error_of(r) == "invalid_grant"]
    check("16 concurrent refreshes of one token: exactly 1 x 200, 15 x invalid_grant",
          len(wins) == 1 and len(losses) == 15, [r.status for r in results])
    if wins:
        r = s.refresh(dcr, wins[0].json()["refresh_token"])
        check("...and the winner's new refresh token was revoked by the reuse",
              r.status == 400 and error_of(r) == "invalid_grant", r.body)


def test_client_auth(s: Standin, dcr: str):
    code, verifier = s.code("conf")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    r = s.token(form, auth=("conf", "wrong"))
    check("confidential client, wrong secret (Basic) -> 401 invalid_client with WWW-Authenticate",
          r.status == 401 and error_of(r) == "invalid_client" and r.header("www-authenticate"), r.body)
    r = s.token({**form, "client_id": "conf"})
    check("confidential client, no secret -> 401 invalid_client",
          r.status == 401 and error_of(r) == "invalid_client", r.body)
    r = s.token(form, auth=("conf", "s3cret"))
    check("confidential client, client_secret_basic -> 200", r.status == 200, r.body)
    rt = (r.json() or {}).get("refresh_token")
    r = s.token({"grant_type": "refresh_token", "refresh_token": rt, "client_id": "conf",
                 "client_secret": "s3cret"})
    check("confidential client, client_secret_post -> 200", r.status == 200, r.body)
    r = s.token({"grant_type": "refresh_token", "refresh_token": "x", "client_id": dcr, "client_secret": "x"})
    check("public client sending a secret -> 401 invalid_client",
          r.status == 401 and error_of(r) == "invalid_client", r.body)
    r = s.token({"grant_type": "refresh_token", "refresh_token": "x", "client_id": "stranger"})
    check("unknown client (no --allow-any-client) -> 401 invalid_client",
          r.status == 401 and error_of(r) == "invalid_client", r.body)
    r = s.token({"grant_type": "password", "client_id": dcr})
    check("unsupported grant_type -> 400 unsupported_grant_type",
          r.status == 400 and error_of(r) == "unsupported_grant_type", r.body)
    r = request("POST", f"{s.url}/oauth/refresh", jsonbody={"grant_type": "refresh_token"})
    check("JSON body at the token endpoint -> 400 invalid_request",
          r.status == 400 and error_of(r) == "invalid_request", r.body)
    r = request("POST", f"{s.url}/oauth/refresh", body=b"grant_type=refresh_token&grant_type=x",
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    check("repeated form parameter -> 400 invalid_request",
          r.status == 400 and error_of(r) == "invalid_request", r.body)


def test_faults(s: Standin, dcr: str):
    rt = s.login(dcr).get("refresh_token")

    s.fault(grant_type="refresh_token", kind="invalid_grant")
    r = s.refresh(dcr, rt)
    check("fault invalid_grant -> 400 invalid_grant", r.status == 400 and error_of(r) == "invalid_grant", r.body)
    s.fault(grant_type="refresh_token", kind="server_error")
    r = s.refresh(dcr, rt)
    check("fault server_error -> 500 {\"error\":\"server_error\"}",
          r.status == 500 and error_of(r) == "server_error", r.body)
    s.fault(grant_type="refresh_token", kind="rate_limited")
    r = s.refresh(dcr, rt)
    check("fault rate_limited -> 429 with Retry-After: 1",
          r.status == 429 and r.header("retry-after") == "1", f"{r.status} {r.headers}")
    r = s.refresh(dcr, rt)
    rt = (r.json() or {}).get("refresh_token")
    check("rejecting faults did no work: the refresh token still rotates afterwards", r.status == 200, r.body)

    s.fault(grant_type="refresh_token", kind="slow", delay_ms=1500)
    side = {}

    def during():  # the slow request must not hold the state lock
        time.sleep(0.3)
        t = time.monotonic()
        s.stats()
        side["stats_secs"] = time.monotonic() - t

    t = threading.Thread(target=during)
    t.start()
    t0 = time.monotonic()
    r = s.refresh(dcr, rt)
    took = time.monotonic() - t0
    t.join()
    rt_slow = (r.json() or {}).get("refresh_token")
    check("fault slow -> answered normally after delay_ms", r.status == 200 and took >= 1.5, f"{r.status} {took:.2f}s")
    check("...while other requests are served meanwhile", side.get("stats_secs", 9) < 0.5, side)

    revoked_before = s.stats()["revoked_families"]
    s.fault(grant_type="refresh_token", kind="drop")
    try:
        r = s.refresh(dcr, rt_slow)
        dropped, detail = False, f"got a response {r.status}"
    except (http.client.RemoteDisconnected, ConnectionResetError) as e:
        dropped, detail = True, repr(e)
    check("fault drop -> connection closed without a response", dropped, detail)
    r = s.refresh(dcr, rt_slow)
    check("...the work was done: the presented token is used (reuse -> invalid_grant)",
          r.status == 400 and error_of(r) == "invalid_grant", r.body)
    st = s.stats()
    check("...so the family, including the token in the lost response, is revoked",
          st["revoked_families"] == revoked_before + 1 and st["pending_faults"] == [],
          (revoked_before, st["revoked_families"], st["pending_faults"]))

    code, verifier = s.code(dcr)
    s.fault(grant_type="authorization_code", kind="drop")
    try:
        s.exchange(dcr, code, verifier)
        dropped = False
    except (http.client.RemoteDisconnected, ConnectionResetError):
        dropped = True
    r = s.exchange(dcr, code, verifier)
    check("fault drop on authorization_code: no response, and the code was consumed",
          dropped and r.status == 400 and error_of(r) == "invalid_grant", f"{dropped} {r.body}")

    # queue order, grant_type filter, "any", count
    rt = s.login(dcr).get("refresh_token")
    s.fault(grant_type="refresh_token", kind="rate_limited")
    s.fault(grant_type="any", kind="server_error", count=2)
    code, verifier = s.code(dcr)
    r1 = s.exchange(dcr, code, verifier)         # skips the refresh-only fault
    r2 = s.refresh(dcr, rt)                      # oldest matching: rate_limited
    r3 = s.refresh(dcr, rt)                      # second of the two server_errors
    r4 = s.refresh(dcr, rt)                      # queue empty
    got = [r1.status, r2.status, r3.status, r4.status]
    check("faults queue in order, filtered by grant_type; any matches both; count honoured",
          got == [500, 429, 500, 200], got)
    r = s.exchange(dcr, code, verifier)
    check("...an injected error leaves the code unused", r.status == 200, r.body)

    for bad in ({"kind": "explode"}, {"kind": "slow", "count": 0}, {"kind": "drop", "grant_type": "password"},
                {"kind": "drop", "extra": 1}):
        r = s.control("POST", "faults", bad)
        if not check(f"bad fault {bad} -> 400 invalid_request",
                     r.status == 400 and error_of(r) == "invalid_request", r.body):
            break


def test_expired(s: Standin, env, dcr: str):
    r = s.control("POST", "expired_access_tokens", {"count": 1})
    check("expired_access_tokens accepted", r.status == 200, r.body)
    j = s.login(dcr)
    old = j.get("access_token", "")
    age = time.time() - jwt_claims(old).get("iat", 0) if old else 0
    check("next access token has iat backdated by 24 h", 86390 < age < 86420, f"age {age:.0f}s")
    j2 = s.refresh(dcr, j.get("refresh_token", "")).json() or {}
    age2 = time.time() - jwt_claims(j2.get("access_token", "x.e30.x")).get("iat", 0)
    check("...only the next N: the following one is fresh", age2 < 10, f"age {age2:.0f}s")
    max_age = cyrus_max_age(env)
    if max_age in ("0", "0s", ""):
        report("SKIP", "Cyrus rejects the backdated token",
               "testbed runs with http_jwt_max_age 0s (no expiry); start it with TESTBED_JWT_MAX_AGE=60s")
        c = cyrus_session(env, old)
        check("(without max age Cyrus still accepts the backdated token: the token itself is valid)",
              c.status == 200, c.status)
    else:
        c = cyrus_session(env, old)
        check(f"Cyrus (http_jwt_max_age {max_age}) rejects the backdated token with 401", c.status == 401, c.status)
        c = cyrus_session(env, j2.get("access_token", ""))
        check("...and accepts the fresh one", c.status == 200, c.status)
    r = s.control("POST", "expired_access_tokens", {"count": "many"})
    check("expired_access_tokens with a bad count -> 400", r.status == 400, r.body)


def test_revoke_and_stats(s: Standin, dcr: str):
    r = s.control("POST", "reset")
    check("reset -> 200", r.status == 200, r.body)
    st0 = s.stats()
    ok = (st0["token_requests"] == {"authorization_code": 0, "refresh_token": 0} and st0["token_errors"] == 0
          and st0["revocations"] == 0 and st0["registrations"] == 0 and st0["authorize_requests"] == []
          and st0["pending_faults"] == [])
    check("reset cleared counters and faults", ok, st0)
    check("reset kept the clients", s.login(dcr).get("access_token") is not None)
    s.control("POST", "reset")
    st0 = s.stats()

    request("POST", f"{s.url}/oauth/register", jsonbody={"redirect_uris": [REDIRECT], "scope": MAIL})
    j = s.login(dcr)                                 # 1 authorize, 1 code request
    rt1 = j.get("refresh_token")
    rt2 = (s.refresh(dcr, rt1).json() or {}).get("refresh_token")   # 1 refresh
    s.refresh(dcr, "garbage")                        # 1 refresh, 1 error
    r = request("POST", f"{s.url}/oauth/revoke", form={"token": rt2, "token_type_hint": "refresh_token"})
    check("revoke: 200", r.status == 200, r.status)
    r = s.refresh(dcr, rt2)                          # 1 refresh, 1 error
    check("revoked refresh token -> invalid_grant", r.status == 400 and error_of(r) == "invalid_grant", r.body)
    r = request("POST", f"{s.url}/oauth/revoke", form={"token": "never-issued"})
    check("revoke of an unknown token: 200", r.status == 200, r.status)

    st = s.stats()
    want = {"token_requests": {"authorization_code": 1, "refresh_token": 3}, "token_errors": 2,
            "revocations": 2, "registrations": 1}
    got = {k: st[k] for k in want}
    check("stats: token_requests, token_errors, revocations, registrations", got == want, got)
    check("stats: authorize_requests holds the one authorize query",
          len(st["authorize_requests"]) == 1 and st["authorize_requests"][0].get("client_id") == dcr,
          st["authorize_requests"])
    check("stats: live_refresh_tokens and revoked_families follow the revocation",
          st["live_refresh_tokens"] == st0["live_refresh_tokens"]
          and st["revoked_families"] == st0["revoked_families"] + 1,
          (st0["live_refresh_tokens"], st["live_refresh_tokens"], st0["revoked_families"], st["revoked_families"]))

    for _ in range(25):
        s.authorize(dcr, challenge=s256("y" * 43))
    check("stats: authorize_requests keeps the last 20", len(s.stats()["authorize_requests"]) == 20)


def test_misc(s: Standin):
    r = request("GET", f"{s.url}/nope")
    check("unknown path -> 404 JSON", r.status == 404 and error_of(r) == "not_found", r.body)
    r = request("GET", f"{s.url}/oauth/refresh")
    check("wrong method on a known path -> 405 JSON with Allow",
          r.status == 405 and r.header("allow") == "POST", f"{r.status} {r.headers}")
    r = request("POST", f"{s.url}/oauth/refresh", body=b"x" * 70000,
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    check("oversized body -> 400 invalid_request", r.status == 400 and error_of(r) == "invalid_request", r.status)


def test_any_client(env):
    s = Standin("any", env, "--allow-any-client", "--issuer", "http://issuer.example/", "--access-ttl", "120")
    try:
        m = request("GET", f"{s.url}/.well-known/oauth-authorization-server").json() or {}
        check("--issuer: metadata uses it (trailing slash dropped)",
              m.get("issuer") == "http://issuer.example"
              and m.get("token_endpoint") == "http://issuer.example/oauth/refresh", m)
        code, verifier = s.code("whoever", scope=MAIL)
        _, loc, p = s.authorize("whoever", challenge=s256(verifier))
        check("--allow-any-client: unknown client_id is authorized; iss is --issuer",
              code and p.get("iss") == "http://issuer.example", loc)
        r = s.exchange("whoever", code, verifier)
        j = r.json() or {}
        check("--allow-any-client: code exchange as a public client -> 200, expires_in = --access-ttl",
              r.status == 200 and j.get("expires_in") == 120 and j.get("scope") == MAIL, r.body)
        c = cyrus_session(env, j.get("access_token", ""))
        check("...its access token works against Cyrus", c.status == 200, c.status)
    finally:
        rc = s.stop(signal.SIGINT)
        check("SIGINT -> clean exit 0", rc == 0, rc)
    return s


def main():
    verbose = "-v" in sys.argv[1:]
    env = read_env()
    probe = request("GET", env["JMAP_SESSION_URL"])
    if probe.status != 401:
        sys.exit(f"the testbed does not answer as expected ({probe.status}); run scripts/testbed up")

    s = Standin("main", env, "--client", "selftest", "--client", "conf:s3cret")
    instances = [s]
    try:
        test_metadata(s)
        dcr = test_registration(s)
        test_authorize(s, dcr)
        rt = test_code_exchange(s, env, dcr)
        test_refresh(s, env, dcr, rt)
        test_concurrent_refresh(s, dcr)
        test_client_auth(s, dcr)
        test_faults(s, dcr)
        test_expired(s, env, dcr)
        test_revoke_and_stats(s, dcr)
        test_misc(s)
        instances.append(test_any_client(env))
    except Exception as e:  # a crash in the test itself is a failure, not a hang
        import traceback
        traceback.print_exc()
        check("self-test ran to the end", False, repr(e))
    finally:
        rc = s.stop(signal.SIGTERM)
        check("SIGTERM -> clean exit 0", rc == 0, rc)

    logs = {i.name: i.log_text() for i in instances}
    leaked = [(n, t[:6]) for n, text in logs.items() for t in set(secrets_seen) if t in text]
    check(f"logs never contain a whole token or code ({len(set(secrets_seen))} checked)", not leaked, leaked)
    check("logs contain no traceback", not any("Traceback" in t for t in logs.values()))
    if failures or verbose:
        for n, text in logs.items():
            print(f"----- stand-in {n} stderr -----\n{text}", end="")
    for i in instances:
        os.unlink(i.log.name)
    print(f"{'FAILED' if failures else 'OK'}: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

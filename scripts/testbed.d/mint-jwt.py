#!/usr/bin/env python3
"""Mint a Bearer token that the testbed's Cyrus httpd accepts (http_jwt_key_dir).

scripts/testbed uses it for JMAP_BEARER_TOKEN; tests can call it for more tokens.

Usage: mint-jwt.py KEY_B64 SUB [IAT]
  KEY_B64  $JMAP_JWT_HMAC_KEY_B64 from target/testbed/env
  SUB      Cyrus userid, e.g. alice@example.test
  IAT      issued-at (unix seconds; default now). Only checked when the server runs
           with TESTBED_JWT_MAX_AGE>0s; use an old IAT to get an "expired" token (401).
Cyrus 3.6 accepts only HS256/384/512 or RS256/384/512, header {alg, typ} and
payload claims sub (+ iat); any other claim (exp, aud, ...) -> 401.
"""
import base64, hashlib, hmac, json, sys, time

key = base64.b64decode(sys.argv[1])
sub = sys.argv[2]
iat = int(sys.argv[3]) if len(sys.argv) > 3 else int(time.time())
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
p = b64(json.dumps({"sub": sub, "iat": iat}).encode())
print(f"{h}.{p}." + b64(hmac.new(key, f"{h}.{p}".encode(), hashlib.sha256).digest()))

#!/usr/bin/env python3
"""Fake `sendmail -bs` for Cyrus's smtp_backend: sendmail (stdlib only).

Cyrus forks `<sendmail> -bs` and speaks SMTP over stdin/stdout when a JMAP
EmailSubmission is created. This stub accepts every message and stores it as
OUTBOX/<time>-<pid>-<n>.eml with the SMTP envelope in a sidecar .json file,
so tests can assert on what was "sent". Nothing leaves the machine.
OUTBOX = $FAKE_SENDMAIL_OUTBOX, else ../outbox relative to this script
(scripts/testbed installs it as $CYRUS_DIR/bin/fake-sendmail -> $CYRUS_OUTBOX).
"""
import json
import os
import sys
import time

outbox = os.environ.get("FAKE_SENDMAIL_OUTBOX") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "outbox")
os.makedirs(outbox, exist_ok=True)
inp, out = sys.stdin.buffer, sys.stdout.buffer


def say(line: str):
    out.write(line.encode() + b"\r\n")
    out.flush()


say("220 localhost fake-sendmail ESMTP")
mail_from, rcpts, n = None, [], 0
while True:
    raw = inp.readline()
    if not raw:
        break
    cmd = raw.decode("utf-8", "replace").strip()
    verb = cmd.split(" ", 1)[0].upper()
    if verb in ("EHLO", "HELO"):
        out.write(b"250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE 52428800\r\n250 DSN\r\n")
        out.flush()
    elif verb == "MAIL":
        mail_from, rcpts = cmd[10:].strip(), []
        say("250 2.1.0 Ok")
    elif verb == "RCPT":
        rcpts.append(cmd[8:].strip())
        say("250 2.1.5 Ok")
    elif verb == "DATA":
        say("354 End data with <CR><LF>.<CR><LF>")
        lines = []
        while True:
            l = inp.readline()
            if not l or l.rstrip(b"\r\n") == b".":
                break
            lines.append(l[1:] if l.startswith(b"..") else l)
        n += 1
        base = os.path.join(outbox, f"{time.time():.6f}-{os.getpid()}-{n}")
        with open(base + ".eml", "wb") as f:
            f.write(b"".join(lines))
        with open(base + ".json", "w") as f:
            json.dump({"mailFrom": mail_from, "rcptTo": rcpts}, f)
        say("250 2.0.0 Ok: queued")
    elif verb == "RSET":
        mail_from, rcpts = None, []
        say("250 2.0.0 Ok")
    elif verb == "NOOP":
        say("250 2.0.0 Ok")
    elif verb == "QUIT":
        say("221 2.0.0 Bye")
        break
    else:
        say("502 5.5.2 Command not recognized")

#!/usr/bin/env python3
"""Fake `sendmail -bs` for Cyrus's smtp_backend: sendmail (stdlib only).

Cyrus forks `<sendmail> -bs` and speaks SMTP over stdin/stdout when a JMAP
EmailSubmission is created. This stub accepts every message and stores it as
OUTBOX/<time>-<pid>-<n>.eml with the SMTP envelope in a sidecar .json file,
so tests can assert on what was "sent". Nothing leaves the machine.

Scripted refusals: if OUTBOX/.reject-<sender> exists (sender = the MAIL FROM address,
lower-case), else OUTBOX/.reject, its first line "VERB CODE TEXT" (VERB = MAIL, RCPT or DATA)
answers that SMTP command with "CODE TEXT" instead of success. Cyrus turns an X.3.0 refusal whose
text holds "[jmapError:<type>]" into a SetError of that type, the way a submission server such
as Fastmail's reports forbiddenFrom or rateLimit. EHLO advertises ENHANCEDSTATUSCODES (so
Cyrus maps enhanced codes) and FUTURERELEASE (delayed send).
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


def rejection(sender):
    names = [f".reject-{sender}"] if sender else []
    for name in names + [".reject"]:
        try:
            with open(os.path.join(outbox, name)) as f:
                verb, code, text = f.readline().strip().split(" ", 2)
            return verb.upper(), code, text
        except (OSError, ValueError):
            continue
    return None


def say(line: str):
    out.write(line.encode() + b"\r\n")
    out.flush()


def refused(verb):
    if reject and reject[0] == verb:
        say(f"{reject[1]} {reject[2]}")
        return True
    return False


say("220 localhost fake-sendmail ESMTP")
mail_from, rcpts, n, reject = None, [], 0, None
while True:
    raw = inp.readline()
    if not raw:
        break
    cmd = raw.decode("utf-8", "replace").strip()
    verb = cmd.split(" ", 1)[0].upper()
    if verb in ("EHLO", "HELO"):
        out.write(b"250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE 52428800\r\n"
                  b"250-ENHANCEDSTATUSCODES\r\n250-FUTURERELEASE 44236800 2027-12-31T00:00:00Z\r\n"
                  b"250 DSN\r\n")
        out.flush()
    elif verb == "MAIL":
        mail_from, rcpts = cmd[10:].strip(), []
        sender = mail_from.split(">", 1)[0].lstrip("<").lower()
        reject = rejection(sender)
        if refused("MAIL"):
            continue
        say("250 2.1.0 Ok")
    elif verb == "RCPT":
        if refused("RCPT"):
            continue
        rcpts.append(cmd[8:].strip())
        say("250 2.1.5 Ok")
    elif verb == "DATA":
        if refused("DATA"):
            continue
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

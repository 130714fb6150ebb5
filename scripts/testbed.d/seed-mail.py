#!/usr/bin/env python3
"""Seed the testbed mailbox over IMAP (stdlib only, deterministic).

Usage: seed-mail.py HOST PORT ADMIN ADMINPW USER USERPW [SAME_TIME_COUNT]

With SAME_TIME_COUNT (the writer user gets 300), a folder "Same Time" also gets that many
messages that all have the same INTERNALDATE (so the same JMAP receivedAt): the paging test's
worst case, since JMAP has no total order among equal dates.

As ADMIN, creates the user's mailbox; as USER, creates the folders (RFC 6154
CREATE-SPECIAL-USE, so JMAP sees the roles) and APPENDs a fixed set of messages.

Determinism: every message has fixed headers, bodies, MIME boundaries and a fixed
INTERNALDATE, and they are appended in a fixed order. So the raw bytes (and with
them the JMAP `size`, `receivedAt`, blob ids and email ids, which Cyrus derives
from the message GUID = SHA-1 of the bytes) are the same on every run.
docs/testbed.md lists the contents; keep it in sync when changing anything here.

Refuses to seed twice: exits 0 without changes when INBOX is not empty.
"""
import imaplib
import socket
import sys
from datetime import datetime, timedelta, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

host, port, admin, adminpw, user, userpw = sys.argv[1:7]
port = int(port)
same_time = int(sys.argv[7]) if len(sys.argv) > 7 else 0


def tiny_pdf() -> bytes:
    """A minimal valid one-page PDF showing 'Hello PDF' (589 bytes)."""
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        None,  # content stream, filled below
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    stream = b"BT /F1 18 Tf 20 40 Td (Hello PDF) Tj ET"
    objs[3] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


# Known content of the text attachment, exactly as a JMAP blob download returns it
# (134 bytes). CRLF on purpose: MIME text is CRLF on the wire, so that is what the
# server stores and serves back whatever we write here.
NOTES_TXT = (
    "Invoice notes 2024\r\n"
    "==================\r\n"
    "INV-2024-017  Hosting        120.00 EUR  paid\r\n"
    "INV-2024-018  Domain renewal  15.00 EUR  open\r\n"
)


def dt(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


ME = Address("Alice Example", addr_spec=user if "@" in user else f"{user}@example.test")
BOB = Address("Bob Builder", addr_spec="bob@example.com")
CAROL = Address("Carol Müller", addr_spec="carol@example.de")
NEWS = Address("Example Newsletter", addr_spec="news@newsletter.example.org")
DAVE = Address("Dave Accounts", addr_spec="accounts@vendor.example.com")
BULK = Address("Bulk Updates", addr_spec="updates@bulk.example.net")


def msg(frm, to, subject, date, msgid, text=None, html=None, attach=None, extra=None):
    m = EmailMessage()
    m["From"] = frm
    m["To"] = to
    m["Subject"] = subject
    m["Date"] = format_datetime(date)
    m["Message-ID"] = msgid
    for k, v in (extra or {}).items():
        m[k] = v
    if text is not None:
        m.set_content(text)
        if html is not None:
            m.add_alternative(html, subtype="html")
    elif html is not None:
        m.set_content(html, subtype="html")
    if attach:
        data, maintype, subtype, filename = attach
        if maintype == "text":  # str content API: no maintype argument, charset instead
            m.add_attachment(data, subtype=subtype, filename=filename)
        else:
            m.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    # The email package picks random MIME boundaries; fix them so the bytes (and so
    # the Cyrus GUIDs / JMAP ids and sizes) are identical on every run.
    tag = msgid.strip("<>").split("@")[0]
    for i, part in enumerate(m.walk()):
        if part.is_multipart():
            part.set_boundary(f"=_testbed_{tag}_{i}")
    return m.as_bytes(policy=m.policy.clone(linesep="\r\n"))


# (folder, flags, internaldate, raw message). Keep docs/testbed.md in sync.
MESSAGES = [
    # $HasAttachment: Cyrus's Email/query {"hasAttachment": true} filter only looks at this
    # keyword (Email/get computes the property from the MIME structure); Fastmail sets it.
    ("INBOX", "$HasAttachment", dt("2024-03-01T09:00:00Z"), msg(
        BOB, ME, "Quarterly report Q1", dt("2024-03-01T09:00:00Z"), "<q1-report@example.com>",
        text="Hi Alice,\n\nplease find the quarterly report attached.\nThe budget looks fine.\n\nBob\n",
        attach=(tiny_pdf(), "application", "pdf", "report-q1.pdf"))),
    ("INBOX", "", dt("2024-03-02T10:30:00Z"), msg(
        NEWS, ME, "Your weekly newsletter", dt("2024-03-02T10:30:00Z"), "<news-42@newsletter.example.org>",
        html="<html><body><h1>Weekly news</h1><p>Rust 2024 edition is <b>coming</b>.</p>"
             "<p><a href=\"https://example.org/unsub\">Unsubscribe</a></p></body></html>")),
    ("INBOX", "\\Seen", dt("2024-03-03T08:15:00Z"), msg(
        CAROL, ME, "Grüße aus München – Überraschung 🎉", dt("2024-03-03T08:15:00Z"), "<gruesse@example.de>",
        text="Hallo Alice,\n\nviele Grüße aus München! Schöne Straße, größte Überraschung.\n日本語のテキストも。\n\nCarol\n")),
    ("INBOX", "", dt("2024-03-04T12:00:00Z"), msg(
        BOB, ME, "Re: Quarterly report Q1", dt("2024-03-04T12:00:00Z"), "<q1-report-re@example.com>",
        text="One more thing: the meeting is moved to Friday.\n\nBob\n",
        html="<p>One more thing: the meeting is moved to <b>Friday</b>.</p><p>Bob</p>",
        extra={"In-Reply-To": "<q1-report@example.com>", "References": "<q1-report@example.com>"})),
    ("Archive", "\\Seen", dt("2023-12-24T18:00:00Z"), msg(
        BOB, ME, "Holiday plans", dt("2023-12-24T18:00:00Z"), "<holiday@example.com>",
        text="Merry Christmas! Archived message about holiday plans.\n")),
    ("Sent", "\\Seen", dt("2024-03-01T11:00:00Z"), msg(
        ME, BOB, "Re: Quarterly report Q1", dt("2024-03-01T11:00:00Z"), "<alice-reply@example.test>",
        text="Thanks Bob, got the report.\n\nAlice\n",
        extra={"In-Reply-To": "<q1-report@example.com>", "References": "<q1-report@example.com>"})),
    ("Project Alpha", "\\Flagged", dt("2024-02-15T14:45:00Z"), msg(
        CAROL, ME, "Project Alpha kickoff", dt("2024-02-15T14:45:00Z"), "<alpha-kickoff@example.de>",
        text="Kickoff for Project Alpha is on Monday. Agenda: scope, budget, timeline.\n")),
    # A text/plain attachment (not part of textBody: Content-Disposition is attachment).
    ("Project Alpha/Invoices 2024", "$HasAttachment", dt("2024-02-20T16:00:00Z"), msg(
        DAVE, ME, "Invoice notes 2024", dt("2024-02-20T16:00:00Z"), "<invoice-notes-2024@vendor.example.com>",
        text="Hi Alice,\n\nthe invoice notes for 2024 are attached as notes.txt.\n\nDave\n",
        attach=(NOTES_TXT, "text", "plain", "notes.txt"))),
]

# "Bulk": 60 small messages, 12 h apart through January 2024 (01: Jan 1 08:00Z ...
# 60: Jan 30 20:00Z), odd numbers \Seen. More than the 50-item hard cap, for paging.
BULK_START = dt("2024-01-01T08:00:00Z")
for n in range(1, 61):
    when = BULK_START + timedelta(hours=12 * (n - 1))
    MESSAGES.append(("Bulk", "\\Seen" if n % 2 else "", when, msg(
        BULK, ME, f"Bulk message {n:02d}", when, f"<bulk-{n:02d}@bulk.example.net>",
        text=f"This is bulk message {n:02d} of 60.\n")))

SAME_TIME = dt("2024-02-01T12:00:00Z")
for n in range(1, same_time + 1):
    MESSAGES.append(("Same Time", "", SAME_TIME, msg(
        BULK, ME, f"Same time {n:03d}", SAME_TIME, f"<same-{n:03d}@bulk.example.net>",
        text=f"Message {n:03d} of {same_time}, all received at the same second.\n")))

# Folder name -> special-use attribute (None = no role). Parents before children;
# "/" is the hierarchy separator (Cyrus 3.x default unixhierarchysep: yes).
FOLDERS = [("Archive", "\\Archive"), ("Sent", "\\Sent"), ("Drafts", "\\Drafts"),
           ("Trash", "\\Trash"), ("Junk", "\\Junk"), ("Project Alpha", None),
           ("Project Alpha/Invoices 2024", None), ("Bulk", None)] + (
              [("Same Time", None)] if same_time else [])


def q(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check(resp, what):
    typ, data = resp
    if typ != "OK":
        sys.exit(f"seed: {what} failed: {typ} {data}")
    return data


# 1. the admin creates the user's INBOX (user/NAME: unixhierarchysep is on)
a = imaplib.IMAP4(host, port)
check(a.login(admin, adminpw), "admin login")
typ, data = a.create(q("user/" + user))
if typ != "OK" and b"exists" not in b" ".join(d or b"" for d in data).lower():
    sys.exit(f"seed: create user/{user} failed: {data}")
a.logout()

# 2. the user creates the folders and appends the messages
c = imaplib.IMAP4(host, port)
# APPEND sends the command, waits for "+", then the literal: with Nagle on, each one
# stalls ~40 ms on delayed ACKs (68 appends: 3 s instead of 0.2 s)
c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
check(c.login(user, userpw), "user login")
typ, data = c.select("INBOX")
if typ == "OK" and int(data[0]) > 0:
    print("seed: INBOX not empty, assuming already seeded")
    sys.exit(0)
c.close()
for name, use in FOLDERS:
    args = (q(name), f"(USE ({use}))") if use else (q(name),)
    check(c._simple_command("CREATE", *args), f"CREATE {name}")
    check(c.subscribe(q(name)), f"SUBSCRIBE {name}")
for folder, flags, when, raw in MESSAGES:
    check(c.append(q(folder), f"({flags})" if flags else None,
                   imaplib.Time2Internaldate(when), raw), f"APPEND to {folder}")
c.logout()
print(f"seed: created {len(FOLDERS)} folders, appended {len(MESSAGES)} messages for {user}")

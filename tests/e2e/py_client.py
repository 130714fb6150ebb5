#!/usr/bin/env python3
"""End-to-end check of a running mailconnect server with the official MCP Python SDK.

Reads MCP_URL (e.g. http://127.0.0.1:8911/mcp) and MCP_TOKEN (the Bearer token)
from the environment, calls every tool over streamable HTTP with the SDK's
high-level ``mcp.Client`` and compares the answers with the seeded testbed
mailbox (docs/testbed.md). Prints one line per check ("ok - ..." /
"not ok - ...") and exits 1 if any check failed.

The client runs in the SDK's default ``mode="auto"``: it probes the 2026-07-28
``server/discover`` first and falls back to the 2025-11-25 ``initialize``
handshake only if the server does not answer it. ``MCP_PY_MODE=legacy`` forces
the handshake instead (handy for comparing the two eras); anything else is an
error.

Ids are never hard-coded: mailboxes are looked up by name/role, emails by
subject, so the checks survive testbed restarts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sys
import traceback
from typing import Any

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

URL = os.environ.get("MCP_URL")
TOKEN = os.environ.get("MCP_TOKEN")
MODE = os.environ.get("MCP_PY_MODE", "auto")
EXPECTED_VERSION = {"auto": "2026-07-28", "legacy": "2025-11-25"}

EXPECTED_TOOLS = ["get_identity", "list_mailboxes", "search_email", "get_email", "get_thread", "get_attachment"]
NOTES_TXT = (
    "Invoice notes 2024\r\n==================\r\n"
    "INV-2024-017  Hosting        120.00 EUR  paid\r\n"
    "INV-2024-018  Domain renewal  15.00 EUR  open\r\n"
)
NONASCII_SUBJECT = "Grüße aus München – Überraschung 🎉"

# ---------------------------------------------------------------- reporting

passed = 0
failed = 0


def show(value: Any) -> str:
    try:
        s = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        s = repr(value)
    return s if len(s) <= 600 else s[:600] + "…"


def ok(name: str) -> None:
    global passed
    passed += 1
    print(f"ok - {name}", flush=True)


def not_ok(name: str, expected: str, got: Any) -> None:
    global failed
    failed += 1
    got_s = got if isinstance(got, str) else show(got)
    print(f"not ok - {name}\n    expected: {expected}\n    got:      {got_s}", flush=True)


def check(name: str, cond: Any, expected: str, got: Any) -> bool:
    """One check: `cond` true → ok; otherwise print what was expected and what came back."""
    if cond:
        ok(name)
        return True
    not_ok(name, expected, got)
    return False


def eq(name: str, got: Any, want: Any) -> bool:
    return check(name, got == want, show(want), got)


def describe(exc: BaseException) -> str:
    """A short account of an exception: the leaf errors of exception groups, with MCP error codes."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    if isinstance(exc, MCPError):
        text = f"MCPError {exc.code}: {exc.message}"
        if exc.data is not None:
            text += f" (data: {show(exc.data)})"
    else:
        text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return f"{text} [after {describe(cause)}]" if cause is not None else text


def text_of(result: dict[str, Any]) -> str:
    return "\n".join(c.get("text", "") for c in result.get("content") or [] if c.get("type") == "text")


def subjects(emails: list[dict[str, Any]] | None) -> list[str]:
    return [e.get("subject") for e in emails or []]


def newest_first(emails: list[dict[str, Any]]) -> bool:
    return all(emails[i - 1]["received_at"] >= emails[i]["received_at"] for i in range(1, len(emails)))


def oldest_first(emails: list[dict[str, Any]]) -> bool:
    return all(emails[i - 1]["received_at"] <= emails[i]["received_at"] for i in range(1, len(emails)))


# ---------------------------------------------------------------- checker


class Checker:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, name: str, args: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """Calls a tool; returns (result as wire-shaped dict, None) or (None, error text).

        Protocol errors (JSON-RPC errors, or the SDK rejecting structuredContent that does
        not match the tool's outputSchema) come back as the error text.
        """
        try:
            result = await self.client.call_tool(name, args)
        except Exception as e:  # noqa: BLE001 - any failure is reported as a failed check
            return None, describe(e)
        return result.model_dump(by_alias=True, mode="json"), None

    async def call_ok(self, label: str, name: str, args: dict[str, Any]) -> dict[str, Any] | None:
        """A call that must succeed: isError false, structuredContent, a non-empty text block."""
        title = f"{label}: {name} {show(args)} succeeds"
        result, error = await self.call(name, args)
        if error is not None:
            not_ok(title, "a tool result (no protocol error)", error)
            return None
        if not check(title, result.get("isError") is not True, "isError false", result):
            return None
        sc = result.get("structuredContent")
        texts = [
            c for c in result.get("content") or []
            if c.get("type") == "text" and isinstance(c.get("text"), str) and c["text"].strip()
        ]
        check(
            f"{label}: result has structuredContent and a non-empty text block",
            isinstance(sc, dict) and texts,
            'structuredContent object + content[] with a non-empty {type:"text"} block',
            {"structuredContent": "(present)" if sc is not None else None, "content": result.get("content")},
        )
        return sc if isinstance(sc, dict) else None

    async def call_err(self, label: str, name: str, args: dict[str, Any], must_mention: list[str]) -> None:
        """A call that must fail with a tool error: isError true and a helpful text."""
        result, error = await self.call(name, args)
        if error is not None:
            not_ok(f"{label}: {name} {show(args)} gives isError", "a tool result with isError true (not a protocol error)", error)
            return
        text = text_of(result)
        check(f"{label}: {name} {show(args)} gives isError true", result.get("isError") is True, "isError true", result)
        missing = [m for m in must_mention if m not in text]
        check(
            f"{label}: error text is helpful (mentions {', '.join(json.dumps(m, ensure_ascii=False) for m in must_mention)})",
            text.strip() and not missing,
            f"non-empty text mentioning {show(must_mention)}",
            text,
        )

    async def find_email(self, subject: str, words: str | None = None, **extra: Any) -> dict[str, Any] | None:
        """search_email {subject: words, **extra}; the summary whose subject is exactly `subject`."""
        result, error = await self.call("search_email", {"subject": words or subject, **extra})
        emails = ((result or {}).get("structuredContent") or {}).get("emails") or []
        hit = next((e for e in emails if e.get("subject") == subject), None)
        if hit is None:
            not_ok(f"lookup: an email with subject {json.dumps(subject, ensure_ascii=False)} exists", "a search hit", error or result)
        return hit

    # ------------------------------------------------------------ the checks

    async def run(self) -> None:
        c = self.client
        info = c.server_info
        check("connect: serverInfo.name is mailconnect", info is not None and info.name == "mailconnect", '"mailconnect"', info and info.model_dump())
        version = c.protocol_version
        check(
            f"connect: negotiated protocol version {version} (mode={MODE})",
            version == EXPECTED_VERSION[MODE],
            json.dumps(EXPECTED_VERSION[MODE]),
            version,
        )

        # --- tools/list
        tools: list[dict[str, Any]] = []
        try:
            tools = [t.model_dump(by_alias=True, mode="json") for t in (await c.list_tools()).tools]
        except Exception as e:  # noqa: BLE001
            not_ok("tools/list succeeds", "a tool list", describe(e))
        eq("tools/list: exactly the six tools", sorted(t["name"] for t in tools), sorted(EXPECTED_TOOLS))
        for t in tools:
            problems = []
            if not isinstance(t.get("title"), str) or not t["title"].strip():
                problems.append("title")
            ins = t.get("inputSchema") or {}
            if ins.get("type") != "object":
                problems.append("inputSchema.type")
            if ins.get("additionalProperties") is not False:
                problems.append("inputSchema.additionalProperties")
            outs = t.get("outputSchema")
            if not isinstance(outs, dict) or outs.get("type") != "object":
                problems.append("outputSchema")
            if ((t.get("annotations") or {}).get("readOnlyHint")) is not True:
                problems.append("annotations.readOnlyHint")
            check(
                f"tools/list: {t['name']} has title, inputSchema {{type object, additionalProperties false}}, outputSchema, readOnlyHint true",
                not problems,
                f"all present (wrong: {', '.join(problems)})",
                {"title": t.get("title"), "inputSchema": ins, "outputSchema": "(present)" if outs else outs, "annotations": t.get("annotations")},
            )

        # --- get_identity
        ident = await self.call_ok("get_identity", "get_identity", {})
        if ident:
            eq("get_identity: username", ident.get("username"), "alice@example.test")
            eq("get_identity: granted_capabilities", ident.get("granted_capabilities"), ["read"])
            eq("get_identity: limits.max_search_page_size", (ident.get("limits") or {}).get("max_search_page_size"), 50)

        # --- list_mailboxes
        mbx = await self.call_ok("list_mailboxes", "list_mailboxes", {})
        mailboxes = (mbx or {}).get("mailboxes") or []
        by_path = {m["path"]: m for m in mailboxes}
        if mbx:
            eq(
                "list_mailboxes: all nine seeded mailboxes (by path)",
                sorted(by_path),
                sorted(["Archive", "Bulk", "Drafts", "Inbox", "Junk", "Project Alpha", "Project Alpha/Invoices 2024", "Sent", "Trash"]),
            )
            first = mailboxes[0] if mailboxes else None
            check("list_mailboxes: Inbox (role inbox) comes first", first and first["name"] == "Inbox" and first["role"] == "inbox", 'first = {name: "Inbox", role: "inbox"}', first)
            inbox = by_path.get("Inbox") or {}
            check("list_mailboxes: Inbox total 4, unread 3", inbox.get("total_emails") == 4 and inbox.get("unread_emails") == 3, "total_emails 4, unread_emails 3", inbox)
            alpha = by_path.get("Project Alpha") or {}
            check(
                'list_mailboxes: "Project Alpha" is a top-level folder with no role',
                alpha.get("name") == "Project Alpha" and "parent_id" in alpha and alpha["parent_id"] is None and alpha.get("role", "x") is None,
                "parent_id null, role null",
                alpha,
            )
            inv = by_path.get("Project Alpha/Invoices 2024") or {}
            check(
                'list_mailboxes: "Project Alpha/Invoices 2024" is named "Invoices 2024" under Project Alpha',
                inv.get("name") == "Invoices 2024" and alpha.get("id") and inv.get("parent_id") == alpha.get("id"),
                f'name "Invoices 2024", parent_id {show(alpha.get("id"))}',
                inv,
            )
            bulk = by_path.get("Bulk") or {}
            check("list_mailboxes: Bulk total 60, unread 30", bulk.get("total_emails") == 60 and bulk.get("unread_emails") == 30, "total_emails 60, unread_emails 30", bulk)

        # --- search_email
        s = await self.call_ok("search text", "search_email", {"text": "budget"})
        if s:
            eq('search text "budget": subjects, newest first', subjects(s["emails"]), ["Quarterly report Q1", "Project Alpha kickoff"])
            check('search text "budget": total 2, next_cursor null', s.get("total") == 2 and s.get("next_cursor", "x") is None, "total 2, next_cursor null", {"total": s.get("total"), "next_cursor": s.get("next_cursor")})

        s = await self.call_ok("search mailbox by name", "search_email", {"mailbox": "Project Alpha"})
        if s:
            eq('search mailbox "Project Alpha": one email', subjects(s["emails"]), ["Project Alpha kickoff"])

        s = await self.call_ok("search mailbox by path", "search_email", {"mailbox": "Project Alpha/Invoices 2024"})
        if s:
            eq('search mailbox "Project Alpha/Invoices 2024": one email', subjects(s["emails"]), ["Invoice notes 2024"])

        s = await self.call_ok("search mailbox by role", "search_email", {"mailbox": "inbox"})
        if s:
            eq(
                'search mailbox "inbox" (role): the 4 Inbox emails, newest first',
                subjects(s["emails"]),
                ["Re: Quarterly report Q1", NONASCII_SUBJECT, "Your weekly newsletter", "Quarterly report Q1"],
            )
            check('search mailbox "inbox": total 4', s.get("total") == 4, "total 4", s.get("total"))
            check(
                'search mailbox "inbox": every hit is in the inbox',
                all("Inbox" in e["mailboxes"] for e in s["emails"]),
                "mailboxes contain Inbox",
                [e["mailboxes"] for e in s["emails"]],
            )

        # unread in Bulk: 30 (the even-numbered ones), over two pages of the default size 20
        s = await self.call_ok("search unread in Bulk", "search_email", {"mailbox": "Bulk", "unread": True})
        if s:
            check(
                "search unread Bulk: total 30, first page of 20 (default limit)",
                s.get("total") == 30 and len(s["emails"]) == 20 and s.get("limit") == 20,
                "total 30, 20 emails, limit 20",
                {"total": s.get("total"), "n": len(s["emails"]), "limit": s.get("limit")},
            )
            all_unread = list(s["emails"])
            if isinstance(s.get("next_cursor"), str):
                s2 = await self.call_ok("search unread in Bulk, page 2", "search_email", {"mailbox": "Bulk", "unread": True, "cursor": s["next_cursor"]})
                if s2:
                    all_unread += s2["emails"]
                check(
                    "search unread Bulk page 2: the remaining 10, next_cursor null",
                    s2 and len(s2["emails"]) == 10 and s2.get("next_cursor", "x") is None,
                    "10 emails, next_cursor null",
                    s2 and {"n": len(s2["emails"]), "next_cursor": s2.get("next_cursor")},
                )
            else:
                not_ok("search unread Bulk: next_cursor after the first page", "a cursor string", s.get("next_cursor"))
            wrong = [e for e in all_unread if e.get("unread") is not True or int(e["subject"][-2:]) % 2 != 0]
            check(
                "search unread Bulk: 30 distinct emails, all unread and even-numbered",
                len(all_unread) == 30 and len({e["id"] for e in all_unread}) == 30 and not wrong,
                '30 distinct unread "Bulk message <even>"',
                {"n": len(all_unread), "wrong": subjects(wrong)},
            )

        # limit 80 → capped to 50, limit_note, cursor to the remaining 10
        bulk_args = {"mailbox": "Bulk", "limit": 80}
        p1 = await self.call_ok("search Bulk limit 80", "search_email", bulk_args)
        if p1:
            e1 = p1["emails"]
            check("search Bulk limit 80: 50 emails, limit 50, total 60", len(e1) == 50 and p1.get("limit") == 50 and p1.get("total") == 60, "50 emails, limit 50, total 60", {"n": len(e1), "limit": p1.get("limit"), "total": p1.get("total")})
            note = p1.get("limit_note")
            check("search Bulk limit 80: limit_note says the limit was reduced", isinstance(note, str) and "50" in note, "a limit_note mentioning 50", note)
            cursor = p1.get("next_cursor")
            check("search Bulk limit 80: next_cursor is a string", isinstance(cursor, str) and cursor, "a cursor", cursor)
            check(
                "search Bulk limit 80: newest first (Bulk message 60 … 11)",
                newest_first(e1) and len(e1) == 50 and e1[0]["subject"] == "Bulk message 60" and e1[49]["subject"] == "Bulk message 11",
                "Bulk message 60 … Bulk message 11 in date order",
                subjects(e1),
            )
            if isinstance(cursor, str):
                p2 = await self.call_ok("search Bulk limit 80, next page", "search_email", {**bulk_args, "cursor": cursor})
                if p2:
                    e2 = p2["emails"]
                    check("search Bulk page 2: the remaining 10, next_cursor null", len(e2) == 10 and p2.get("next_cursor", "x") is None, "10 emails, next_cursor null", {"n": len(e2), "next_cursor": p2.get("next_cursor"), "subjects": subjects(e2)})
                    ids = [e["id"] for e in e1 + e2]
                    dup = sorted({x for x in ids if ids.count(x) > 1})
                    check("search Bulk pages: no id appears twice, 60 distinct in all", not dup and len(set(ids)) == 60, "60 distinct ids", {"distinct": len(set(ids)), "duplicates": dup})
                    check(
                        "search Bulk page 2: Bulk message 10 … 01, newest first",
                        e2 and e2[0]["subject"] == "Bulk message 10" and e2[-1]["subject"] == "Bulk message 01" and newest_first(e2),
                        "Bulk message 10 … 01",
                        subjects(e2),
                    )
                await self.call_err("search cursor with other arguments", "search_email", {"mailbox": "Inbox", "cursor": cursor}, ["cursor"])

        s = await self.call_ok("search has_attachment", "search_email", {"has_attachment": True})
        if s:
            eq("search has_attachment true: the 2 seeded attachment mails, newest first", subjects(s["emails"]), ["Quarterly report Q1", "Invoice notes 2024"])
            check("search has_attachment true: has_attachment flag set on each", all(e.get("has_attachment") is True for e in s["emails"]), "has_attachment true", [e.get("has_attachment") for e in s["emails"]])

        s = await self.call_ok("search date window (dates)", "search_email", {"after": "2024-03-01", "before": "2024-03-03"})
        if s:
            eq("search after 2024-03-01 before 2024-03-03: 3 emails, newest first", subjects(s["emails"]), ["Your weekly newsletter", "Re: Quarterly report Q1", "Quarterly report Q1"])
            bad = [e for e in s["emails"] if not ("2024-03-01T00:00:00Z" <= e["received_at"] < "2024-03-03T00:00:00Z")]
            check("search date window: every received_at inside [after, before)", not bad, "none outside", bad)
        # RFC 3339 bounds: after is inclusive (09:00 report in), before exclusive (10:30 newsletter out)
        s = await self.call_ok("search date window (RFC 3339)", "search_email", {"after": "2024-03-01T09:00:00Z", "before": "2024-03-02T10:30:00Z"})
        if s:
            eq(
                "search after 2024-03-01T09:00:00Z (inclusive) before 2024-03-02T10:30:00Z (exclusive)",
                [[e["subject"], e["received_at"]] for e in s["emails"]],
                [["Re: Quarterly report Q1", "2024-03-01T11:00:00Z"], ["Quarterly report Q1", "2024-03-01T09:00:00Z"]],
            )

        await self.call_err("search non-existent mailbox", "search_email", {"mailbox": "No Such Folder"}, ["No Such Folder", "Project Alpha"])
        await self.call_err("search unknown argument", "search_email", {"text": "budget", "bogus_argument": 1}, ["bogus_argument"])

        # --- get_email
        newsletter = await self.find_email("Your weekly newsletter")
        if newsletter:
            e = await self.call_ok("get_email HTML-only newsletter", "get_email", {"email_id": newsletter["id"]})
            if e:
                body = e.get("body") or {}
                eq("get_email newsletter: body.source", body.get("source"), "html")
                t = body.get("text") or ""
                check('get_email newsletter: text has "Weekly news" and the unsubscribe URL', "Weekly news" in t and "https://example.org/unsub" in t, "both present", t)
                check("get_email newsletter: no HTML tags in the text", not re.search(r"</?[a-zA-Z][^>]*>", t), "no <tag>", t)

        report = await self.find_email("Quarterly report Q1", mailbox="inbox")
        report_full = None
        if report:
            report_full = await self.call_ok('get_email "Quarterly report Q1"', "get_email", {"email_id": report["id"]})
            if report_full:
                pdf = next((a for a in report_full.get("attachments") or [] if a.get("name") == "report-q1.pdf"), None)
                check(
                    "get_email report: attachments list report-q1.pdf (application/pdf, 589 bytes)",
                    pdf and pdf.get("type") == "application/pdf" and pdf.get("size") == 589 and isinstance(pdf.get("blob_id"), str),
                    "{name: report-q1.pdf, type: application/pdf, size: 589, blob_id}",
                    report_full.get("attachments"),
                )
                frm = report_full.get("from") or [{}]
                check(
                    "get_email report: from Bob Builder, message_id q1-report@example.com",
                    frm[0].get("email") == "bob@example.com" and "q1-report@example.com" in (report_full.get("message_id") or ""),
                    "bob@example.com / q1-report@example.com",
                    {"from": frm, "message_id": report_full.get("message_id")},
                )

        gruss = await self.find_email(NONASCII_SUBJECT, "Überraschung")
        if gruss:
            e = await self.call_ok("get_email non-ASCII subject", "get_email", {"email_id": gruss["id"]})
            if e:
                eq("get_email non-ASCII: subject exactly", e.get("subject"), NONASCII_SUBJECT)
                t = (e.get("body") or {}).get("text") or ""
                check("get_email non-ASCII: body contains 日本語", "日本語" in t, "text with 日本語", t)
                eq("get_email non-ASCII: from name", (e.get("from") or [{}])[0].get("name"), "Carol Müller")

        if report and report_full:
            full = (report_full.get("body") or {}).get("text") or ""
            r = await self.call_ok("get_email max_body_chars 200", "get_email", {"email_id": report["id"], "max_body_chars": 200})
            b = (r or {}).get("body")
            if b:
                if b.get("total_chars", 0) > 200:
                    check(
                        "get_email max_body_chars 200 on a long body: truncated, 200 chars, next_offset 200",
                        b.get("truncated") is True and b.get("next_offset") == 200 and len(b.get("text", "")) == 200,
                        "truncated true, next_offset 200, 200 chars",
                        b,
                    )
                else:
                    check(
                        f"get_email max_body_chars 200 on a {b.get('total_chars')}-char body: whole body, truncated false, next_offset null",
                        b.get("truncated") is False and "next_offset" in b and b["next_offset"] is None and b.get("offset") == 0 and b.get("text") == full,
                        "truncated false, next_offset null, the whole text",
                        b,
                    )
            r = await self.call_ok("get_email body_offset 50", "get_email", {"email_id": report["id"], "body_offset": 50, "max_body_chars": 200})
            o = (r or {}).get("body")
            if o:
                check(
                    "get_email body_offset 50: text is the body from character 50",
                    o.get("offset") == 50 and o.get("text") == full[50:] and o.get("total_chars") == len(full),
                    f"offset 50, text {show(full[50:])}",
                    o,
                )

        await self.call_err("get_email non-existent id", "get_email", {"email_id": "Mdoesnotexist"}, ["Mdoesnotexist"])

        # --- get_thread
        if report and report_full:
            th = await self.call_ok('get_thread "Quarterly report Q1"', "get_thread", {"thread_id": report_full["thread_id"]})
            if th:
                emails = th.get("emails") or []
                eq(
                    "get_thread: 3 emails, oldest first",
                    [[e["subject"], e["received_at"]] for e in emails],
                    [
                        ["Quarterly report Q1", "2024-03-01T09:00:00Z"],
                        ["Re: Quarterly report Q1", "2024-03-01T11:00:00Z"],
                        ["Re: Quarterly report Q1", "2024-03-04T12:00:00Z"],
                    ],
                )
                check(
                    "get_thread: thread_id and member ids match",
                    th.get("thread_id") == report_full["thread_id"]
                    and emails
                    and emails[0]["id"] == report["id"]
                    and all(e["thread_id"] == report_full["thread_id"] for e in emails)
                    and oldest_first(emails),
                    "same thread_id, first id = the report",
                    th,
                )
        await self.call_err("get_thread non-existent id", "get_thread", {"thread_id": "Tdoesnotexist"}, ["Tdoesnotexist"])

        # --- get_attachment
        pdf_att = next((a for a in (report_full or {}).get("attachments") or [] if a.get("name") == "report-q1.pdf"), None)
        if report and pdf_att:
            result, error = await self.call("get_attachment", {"email_id": report["id"], "blob_id": pdf_att["blob_id"]})
            if result is None:
                not_ok("get_attachment report-q1.pdf succeeds", "a tool result", error)
            else:
                sc = result.get("structuredContent")
                check(
                    "get_attachment report-q1.pdf: isError false, structuredContent and a non-empty text block",
                    result.get("isError") is not True and isinstance(sc, dict) and text_of(result).strip(),
                    "success with structuredContent + text",
                    result,
                )
                res = next((c["resource"] for c in result.get("content") or [] if c.get("type") == "resource"), None)
                check(
                    "get_attachment report-q1.pdf: an embedded resource with mimeType application/pdf and a blob",
                    res and res.get("mimeType") == "application/pdf" and isinstance(res.get("blob"), str),
                    "{type: resource, resource: {mimeType: application/pdf, blob}}",
                    result.get("content"),
                )
                if res and isinstance(res.get("blob"), str):
                    data = base64.b64decode(res["blob"])
                    check("get_attachment report-q1.pdf: blob decodes to 589 bytes starting with %PDF", data[:4] == b"%PDF" and len(data) == 589, '589 bytes, "%PDF…"', {"length": len(data), "head": data[:8].decode("latin-1")})
                sc = sc or {}
                check(
                    "get_attachment report-q1.pdf: structuredContent name/type/size/resource_uri",
                    sc.get("name") == "report-q1.pdf" and sc.get("type") == "application/pdf" and sc.get("size") == 589 and res is not None and sc.get("resource_uri") == res.get("uri"),
                    f"name report-q1.pdf, type application/pdf, size 589, resource_uri {show((res or {}).get('uri'))}",
                    sc,
                )
            await self.call_err("get_attachment unknown blob", "get_attachment", {"email_id": report["id"], "blob_id": "Gdoesnotexist"}, ["Gdoesnotexist"])

        invoice = await self.find_email("Invoice notes 2024")
        if invoice:
            e = await self.call_ok('get_email "Invoice notes 2024"', "get_email", {"email_id": invoice["id"]})
            notes = next((a for a in (e or {}).get("attachments") or [] if a.get("name") == "notes.txt"), None)
            check(
                "get_email invoice: attachments list notes.txt (text/plain, 134 bytes)",
                notes and notes.get("type") == "text/plain" and notes.get("size") == 134,
                "{name: notes.txt, type: text/plain, size: 134}",
                (e or {}).get("attachments"),
            )
            if notes:
                result, error = await self.call("get_attachment", {"email_id": invoice["id"], "blob_id": notes["blob_id"]})
                if result is None:
                    not_ok("get_attachment notes.txt succeeds", "a tool result", error)
                else:
                    sc = result.get("structuredContent")
                    check(
                        "get_attachment notes.txt: isError false, structuredContent and a non-empty text block",
                        result.get("isError") is not True and isinstance(sc, dict) and text_of(result).strip(),
                        "success with structuredContent + text",
                        result,
                    )
                    sc = sc or {}
                    t = sc.get("text")
                    check(
                        "get_attachment notes.txt: structuredContent.text is the seeded file text",
                        isinstance(t, str)
                        and "INV-2024-017  Hosting        120.00 EUR  paid" in t
                        and "INV-2024-018  Domain renewal  15.00 EUR  open" in t
                        and sc.get("text_truncated") is False,
                        "text with both invoice lines, text_truncated false",
                        sc,
                    )
                    res = next((c["resource"] for c in result.get("content") or [] if c.get("type") == "resource"), None) or {}
                    decoded = base64.b64decode(res["blob"]).decode("utf-8", "replace") if isinstance(res.get("blob"), str) else res.get("text")
                    check(
                        "get_attachment notes.txt: embedded resource (text/plain) holds the exact 134 bytes",
                        res.get("mimeType") == "text/plain" and decoded == NOTES_TXT,
                        show(NOTES_TXT),
                        {"mimeType": res.get("mimeType"), "decoded": decoded},
                    )


async def main() -> int:
    if not URL or not TOKEN:
        print("py_client: set MCP_URL (e.g. http://127.0.0.1:8911/mcp) and MCP_TOKEN (the Bearer token)", file=sys.stderr)
        return 2
    if MODE not in EXPECTED_VERSION:
        print(f"py_client: MCP_PY_MODE must be auto or legacy, not {MODE!r}", file=sys.stderr)
        return 2
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        async with http:
            async with Client(streamable_http_client(URL, http_client=http), mode=MODE) as client:
                try:
                    await Checker(client).run()
                except Exception:  # noqa: BLE001 - a bug in a check: show where
                    not_ok("checker ran to the end", "no exception", traceback.format_exc())
    except Exception as e:  # noqa: BLE001 - connect failures, or errors while closing
        detail = traceback.format_exc() if os.environ.get("MCP_E2E_DEBUG") else describe(e)
        not_ok(f"connect to {URL} (mode={MODE}) and close cleanly", "no exception", detail)
    print(f"py_client: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

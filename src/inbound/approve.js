// The review page: opens the draft's sealed copy with the key from the link's fragment (the
// server never sees it), shows it as text, and only then enables "Approve". The key is kept in
// this tab's sessionStorage across the sign-in (a form post loses the fragment) and removed
// from the address bar.
(() => {
  "use strict";
  let key = new URLSearchParams(location.hash.slice(1)).get("k");
  if (key) history.replaceState(null, "", location.pathname);
  const decided = document.getElementById("decided");
  if (decided) {
    sessionStorage.removeItem("mc-approve-" + decided.dataset.id);
    return;
  }
  const root = document.getElementById("review");
  if (!root) return; // a refusal page: the key only leaves the address bar
  const slot = "mc-approve-" + root.dataset.id;
  if (key) {
    sessionStorage.setItem(slot, key);
  } else {
    key = sessionStorage.getItem(slot);
  }
  const sealed = root.dataset.sealed;
  if (!sealed) return; // signed out: the key waits in sessionStorage

  const fail = (message) => {
    const box = document.getElementById("review-error");
    box.textContent = message;
    box.hidden = false;
  };
  const bytes = (b64url) => {
    const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  };
  const people = (list) =>
    list.length ? list.map((a) => (a.name ? `${a.name} <${a.email}>` : a.email)).join(", ") : "—";
  const set = (id, text) => {
    document.getElementById(id).textContent = text;
  };

  if (!key) {
    fail("This link is incomplete: open the whole link your assistant gave you to see the email.");
    return;
  }
  if (!window.crypto || !crypto.subtle) {
    fail("This browser can't open the email securely here (it needs HTTPS).");
    return;
  }
  (async () => {
    const data = bytes(sealed);
    const aes = await crypto.subtle.importKey("raw", bytes(key), "AES-GCM", false, ["decrypt"]);
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: data.slice(0, 12) },
      aes,
      data.slice(12),
    );
    const d = JSON.parse(new TextDecoder().decode(plain));
    set("f-from", people(d.from));
    set("f-to", people(d.to));
    set("f-cc", people(d.cc));
    set("f-bcc", people(d.bcc));
    set("f-reply-to", people(d.reply_to));
    set("f-subject", d.subject || "(no subject)");
    set("f-send", d.send);
    set(
      "f-attachments",
      d.attachments.length
        ? d.attachments.map((a) => `${a.name || "unnamed"} (${a.type}, ${a.size} bytes)`).join(", ")
        : "none",
    );
    set("f-text", d.text);
    if (d.html_as_text) {
      set("f-html", d.html_as_text);
      document.getElementById("f-html-box").hidden = false;
    }
    document.getElementById("draft").hidden = false;
    document.getElementById("approve").disabled = false;
  })().catch(() => fail("This link's key doesn't open this email: open the whole link your assistant gave you."));
})();

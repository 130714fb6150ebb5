//! Quoted history and signatures collapsed to one line each, for a reply that reads as what its
//! sender wrote.

use super::tidy::tidy;

/// Lines of quoted text kept as they are: shorter quotes are the context of an inline answer.
const MIN_COLLAPSED_QUOTE_LINES: usize = 3;
/// A "signature" longer than this is not one (a `--` used as a divider in a long text).
const MAX_SIGNATURE_LINES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hidden {
    Quote,
    Signature,
}

/// Collapses quoted history and signatures, each to one line: `[quoted text: N lines hidden]`,
/// `[signature: N lines hidden]` (N counts the lines of the text given, blank ones included).
///
/// - **Quoted text:** a run of `>` lines (blank lines inside it included) of at least
///   three quoted lines, with the attribution line(s) before it ("On … wrote:", "Am … schrieb:",
///   "Le … a écrit :"). Shorter quotes stay: in an inline reply they are what is answered.
///   HTML `<blockquote>`s arrive here as `>` lines.
/// - **Outlook-style history:** from a `From:` header block (with `Sent:`/`Date:`, `To:` or
///   `Subject:` in the next lines; also German and French; with the
///   `-----Original Message-----` or `_____` line before it) to the end of the text. A
///   forwarded message ("Forwarded message", "Begin forwarded message") is content and stays.
/// - **Signature:** from a line that is `-- ` (or `--`) to the next hidden part or the end, at
///   most 20 lines.
///
/// Link footnotes (`[n]: url`) at the end stay, except those only hidden text referred to.
/// Nothing is collapsed that would leave no visible text.
#[must_use]
pub fn collapse_quotes(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let body_end = footnote_tail(&lines);
    let mut hidden: Vec<Option<Hidden>> = vec![None; body_end];

    mark_outlook_history(&lines[..body_end], &mut hidden);
    mark_quotes(&lines[..body_end], &mut hidden);
    mark_signatures(&lines[..body_end], &mut hidden);

    let visible_content = lines[..body_end]
        .iter()
        .zip(&hidden)
        .any(|(line, h)| h.is_none() && !line.trim().is_empty());
    if !visible_content {
        return text.to_owned();
    }

    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < body_end {
        match hidden[i] {
            None => {
                out.push(lines[i].to_owned());
                i += 1;
            }
            Some(kind) => {
                let start = i;
                while i < body_end && hidden[i] == Some(kind) {
                    i += 1;
                }
                let n = i - start;
                let label = match kind {
                    Hidden::Quote => "quoted text",
                    Hidden::Signature => "signature",
                };
                let plural = if n == 1 { "line" } else { "lines" };
                out.push(format!("[{label}: {n} {plural} hidden]"));
            }
        }
    }
    let visible = out.join("\n");
    out.push(String::new());
    for line in &lines[body_end..] {
        let referenced =
            footnote_number(line).is_some_and(|n| visible.contains(&format!("][{n}]")));
        if referenced {
            out.push((*line).to_owned());
        }
    }
    tidy(&out.join("\n"))
}

/// The `N` of a link footnote line `[N]: url`.
fn footnote_number(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let (n, after) = rest.split_once("]: ")?;
    (!n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && !after.is_empty()).then_some(n)
}

/// Where the trailing block of link footnotes (and the blank lines among them) starts:
/// `lines.len()` when there is none.
fn footnote_tail(lines: &[&str]) -> usize {
    let mut start = lines.len();
    while start > 0 {
        let line = lines[start - 1];
        let footnote = footnote_number(line).is_some();
        if footnote || (line.trim().is_empty() && start < lines.len()) {
            start -= 1;
        } else {
            break;
        }
    }
    start
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// The last line of an attribution: "On … wrote:", "Am … schrieb:", "Le … a écrit :" and the
/// like.
fn is_attribution_end(line: &str) -> bool {
    let line = line.trim().to_lowercase();
    if !line.ends_with(':') {
        return false;
    }
    [
        "wrote",
        "writes",
        "schrieb",
        "écrit",
        "escribió",
        "scritto",
        "scrisse",
        "skrev",
        "schreef",
        "napisał",
        "kirjoitti",
        "escreveu",
        "написал",
        "寫道",
        "写道",
        "書きました",
    ]
    .iter()
    .any(|w| line.contains(w))
}

fn mark_quotes(lines: &[&str], hidden: &mut [Option<Hidden>]) {
    let mut i = 0;
    while i < lines.len() {
        if !is_quoted(lines[i]) || hidden[i].is_some() {
            i += 1;
            continue;
        }
        // The run: quoted lines and blank lines between them.
        let start = i;
        let mut end = i + 1;
        let mut quoted = 1;
        let mut j = i + 1;
        while j < lines.len() && hidden[j].is_none() {
            if is_quoted(lines[j]) {
                quoted += 1;
                end = j + 1;
            } else if !lines[j].trim().is_empty() {
                break;
            }
            j += 1;
        }
        i = end;
        if quoted < MIN_COLLAPSED_QUOTE_LINES {
            continue;
        }
        // The attribution: up to three lines ending in "wrote:", at most one blank line away.
        let mut first = start;
        let mut k = start;
        if k > 0 && lines[k - 1].trim().is_empty() {
            k -= 1;
        }
        if k > 0 && is_attribution_end(lines[k - 1]) && hidden[k - 1].is_none() {
            first = k - 1;
            // A wrapped attribution ("On …, Name <" / "address> wrote:").
            let opens = |line: &str| {
                let head = line.trim_start();
                ["On ", "Am ", "Le ", "El ", "Il ", "Op "]
                    .iter()
                    .any(|p| head.starts_with(p))
            };
            if !opens(lines[first])
                && first > 0
                && opens(lines[first - 1])
                && hidden[first - 1].is_none()
            {
                first -= 1;
            }
        }
        for h in &mut hidden[first..end] {
            *h = Some(Hidden::Quote);
        }
    }
}

/// A header field line of a quoted message: `From:`, `**Sent:**` (bold in HTML) and the like.
fn header_field(line: &str) -> Option<&'static str> {
    let plain: String = line.trim().chars().filter(|c| *c != '*').collect();
    let (name, value) = plain.split_once(':')?;
    if value.trim().is_empty() {
        return None;
    }
    match name.trim().to_lowercase().as_str() {
        "from" | "von" | "de" => Some("from"),
        "sent" | "date" | "gesendet" | "datum" | "envoyé" | "date d'envoi" => Some("date"),
        "to" | "an" | "à" => Some("to"),
        "subject" | "betreff" | "objet" => Some("subject"),
        "cc" => Some("cc"),
        _ => None,
    }
}

fn is_separator(line: &str) -> bool {
    let t = line.trim();
    let underscores = t.len() >= 10 && t.chars().all(|c| c == '_');
    let original = t.starts_with("---")
        && t.ends_with("---")
        && !t.to_lowercase().contains("forward")
        && t.trim_matches('-').trim().chars().any(char::is_alphabetic);
    underscores || original
}

fn is_forward_marker(line: &str) -> bool {
    let t = line.to_lowercase();
    t.contains("forwarded message")
        || t.contains("weitergeleitete nachricht")
        || t.contains("message transféré")
}

fn mark_outlook_history(lines: &[&str], hidden: &mut [Option<Hidden>]) {
    for i in 0..lines.len() {
        if header_field(lines[i]) != Some("from") {
            continue;
        }
        let next: Vec<&'static str> = lines[i + 1..lines.len().min(i + 6)]
            .iter()
            .map_while(|l| header_field(l))
            .collect();
        let has_date = next.contains(&"date");
        let has_other = next.contains(&"to") || next.contains(&"subject");
        if !(has_date && has_other) {
            continue;
        }
        let mut start = i;
        let mut k = i;
        while k > 0 && lines[k - 1].trim().is_empty() {
            k -= 1;
        }
        if k > 0 && is_forward_marker(lines[k - 1]) {
            continue;
        }
        if k > 0 && is_separator(lines[k - 1]) {
            start = k - 1;
        }
        for h in &mut hidden[start..] {
            *h = Some(Hidden::Quote);
        }
        return;
    }
}

fn mark_signatures(lines: &[&str], hidden: &mut [Option<Hidden>]) {
    let mut i = 0;
    while i < lines.len() {
        if hidden[i].is_some() || lines[i].trim_end() != "--" {
            i += 1;
            continue;
        }
        let mut end = i + 1;
        while end < lines.len() && hidden[end].is_none() {
            end += 1;
        }
        // Blank lines before the next hidden part belong to neither.
        let mut last = end;
        while last > i + 1 && lines[last - 1].trim().is_empty() {
            last -= 1;
        }
        if last - i <= MAX_SIGNATURE_LINES {
            for h in &mut hidden[i..last] {
                *h = Some(Hidden::Signature);
            }
        }
        i = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_inline_quotes_stay() {
        let text = "> Is the server up?\n\nYes.\n\n> And the dashboard\n> access?\n\nDone.";
        assert_eq!(collapse_quotes(text), text);
    }

    #[test]
    fn outlook_history_is_collapsed_but_a_forward_is_not() {
        let outlook = "Figures below.\n\nClaire\n\n________________________________\n\
            **From:** Martin <m@example.org>\n**Sent:** Wednesday, November 11, 2026 4:18 PM\n\
            **To:** Claire <c@example.org>\n**Subject:** RE: Q3\n\nHi Claire,\nsend them.\n\n\
            Martin";
        assert_eq!(
            collapse_quotes(outlook),
            "Figures below.\n\nClaire\n\n[quoted text: 10 lines hidden]"
        );
        let forward = "FYI.\n\n---------- Forwarded message ---------\nFrom: Events <e@example.org>\n\
            Date: Thu, 19 Nov 2026\nSubject: Venue\nTo: Sam <s@example.org>\n\nRoom 2.";
        assert_eq!(collapse_quotes(forward), forward);
    }

    #[test]
    fn nothing_is_collapsed_when_nothing_would_be_left() {
        let only_quote = "> a\n> b\n> c\n> d";
        assert_eq!(collapse_quotes(only_quote), only_quote);
    }

    #[test]
    fn footnotes_only_hidden_text_referred_to_are_dropped() {
        let text = "See [the plan][1].\n\nOn Mon, Bob wrote:\n\n> Read [this][2]\n> and\n> that\n\n\
            [1]: https://a.example/\n[2]: https://b.example/";
        assert_eq!(
            collapse_quotes(text),
            "See [the plan][1].\n\n[quoted text: 5 lines hidden]\n\n[1]: https://a.example/"
        );
    }
}

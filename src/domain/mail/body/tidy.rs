//! The normalising every body text gets, whether from a text part or rendered from HTML.

/// Characters that take room but show nothing: zero-width space and non-joiner, word joiner,
/// BOM, combining grapheme joiner, soft hyphen (newsletters pad preheaders with them). The
/// zero-width *joiner* stays: emoji sequences need it.
pub(super) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{2060}' | '\u{FEFF}' | '\u{034F}' | '\u{00AD}'
    )
}

/// Normalises any body text: CRLF to LF, invisible characters removed, no-break spaces made
/// plain, trailing blanks cut (but for the `-- ` signature delimiter), runs of blank lines
/// collapsed to one, blank lines at the start and the end removed.
#[must_use]
pub fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0usize;
    for line in text.lines() {
        let line: String = line
            .chars()
            .filter(|c| !is_invisible(*c))
            .map(|c| if c == '\u{00A0}' { ' ' } else { c })
            .collect();
        // The signature delimiter keeps its trailing space (RFC 3676 §4.3).
        let line = if line == "-- " {
            line.as_str()
        } else {
            line.trim_end()
        };
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
            if blank_run > 0 {
                out.push('\n');
            }
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_collapses_blank_runs_and_drops_invisible_characters() {
        assert_eq!(
            tidy(
                "\n\nHi\u{00A0}there \r\n\r\n\r\n \u{200B}\n\u{200C}x\u{00AD}y\u{FEFF}\n\n\n👨\u{200D}👩\n\n"
            ),
            "Hi there\n\nxy\n\n👨\u{200D}👩"
        );
    }
}

//! What a pidfile says, both ways: the text a holder writes, and the verdict
//! on the text a file holds.

use std::io::Write as _;

use crate::Pid;

/// How much of a pidfile is read. A process id is at most ten digits, so a
/// file longer than this is not a pidfile.
pub(crate) const HEAD_LEN: usize = 64;

/// The longest text quoted back in an error.
const EXCERPT_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    /// Nothing, or a blank line: no process was recorded.
    Empty,
    /// A process id a process can have here (`1..=i32::MAX` on Unix), in
    /// canonical decimal.
    Pid(Pid),
    /// Anything else: the file may not be a pidfile.
    Invalid,
}

/// Judges the first bytes of a file; `whole` says whether they are all of it.
///
/// A pidfile is one line and nothing after it: optional spaces or tabs, a
/// process id in canonical decimal (no sign, no leading zero), optional
/// spaces or tabs, then at most one `\n` or `\r\n`. A file that is blank in
/// the same way is empty. Anything else, such as a blank line followed by
/// more text or a pid followed by further lines, is not a pidfile: a
/// configuration file given by mistake must never be judged empty and
/// overwritten. `0` and negative numbers are refused above all, because
/// `kill(0, _)` and `kill(-1, _)` address process groups, not a process.
pub(crate) fn parse(head: &[u8], whole: bool) -> Content {
    if !whole {
        return Content::Invalid;
    }
    let line = head
        .strip_suffix(b"\r\n")
        .or_else(|| head.strip_suffix(b"\n"))
        .unwrap_or(head);
    let line = trim_blanks(line);
    if line.is_empty() {
        return Content::Empty;
    }
    if line[0] == b'0' || line.len() > 10 || !line.iter().all(u8::is_ascii_digit) {
        return Content::Invalid;
    }
    let value = line
        .iter()
        .fold(0_i64, |value, digit| value * 10 + i64::from(digit - b'0'));
    match u32::try_from(value) {
        Ok(raw) if Pid::from_raw(raw).is_possible() => Content::Pid(Pid::from_raw(raw)),
        _ => Content::Invalid,
    }
}

fn trim_blanks(mut line: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = line {
        line = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = line {
        line = rest;
    }
    line
}

/// What a holder writes: `"<pid>\n"`, at most 11 bytes for a positive `i32`.
pub(crate) struct Text {
    bytes: [u8; 12],
    len: usize,
}

impl Text {
    pub(crate) fn of(pid: Pid) -> Text {
        let mut bytes = [0_u8; 12];
        let mut cursor = &mut bytes[..];
        writeln!(cursor, "{pid}").expect("a pid and a newline fit in 12 bytes");
        let len = 12 - cursor.len();
        Text { bytes, len }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The start of the content, for an error message.
pub(crate) fn excerpt(head: &[u8]) -> String {
    let text = String::from_utf8_lossy(head);
    let mut excerpt: String = text.chars().take(EXCERPT_LEN).collect();
    if text.chars().nth(EXCERPT_LEN).is_some() {
        excerpt.push('…');
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(raw: u32) -> Content {
        Content::Pid(Pid::from_raw(raw))
    }

    #[test]
    fn canonical_decimal_is_a_pid() {
        assert_eq!(parse(b"4242\n", true), pid(4242));
        assert_eq!(parse(b"4242", true), pid(4242));
        assert_eq!(parse(b"1", true), pid(1));
        assert_eq!(parse(b"2147483647\n", true), pid(2_147_483_647));
    }

    #[test]
    fn blanks_around_the_pid_and_one_line_ending_are_allowed() {
        assert_eq!(parse(b"  4242 \t\n", true), pid(4242));
        assert_eq!(parse(b"4242\r\n", true), pid(4242));
        assert_eq!(parse(b"\t4242", true), pid(4242));
    }

    #[test]
    fn nothing_or_a_blank_line_is_empty() {
        assert_eq!(parse(b"", true), Content::Empty);
        assert_eq!(parse(b"\n", true), Content::Empty);
        assert_eq!(parse(b"\r\n", true), Content::Empty);
        assert_eq!(parse(b" \t \r\n", true), Content::Empty);
    }

    #[test]
    fn anything_after_the_line_makes_it_no_pidfile() {
        for bad in [
            &b"\n# config\nkey = value\n"[..],
            b"\n\n",
            b"\r\n\r\n",
            b"4242\nwhatever follows\n",
            b"4242\n\n",
            b"4242\n ",
            b"4242\r",
            b"4242\r\r\n",
            b"4242\n\r\n",
            b" \n4242\n",
        ] {
            assert_eq!(parse(bad, true), Content::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn group_addresses_and_out_of_range_values_are_invalid() {
        for bad in [
            &b"0"[..],
            b"-1",
            b"-4242",
            b"+5",
            #[cfg(unix)]
            b"2147483648",
            b"4294967296",
            b"99999999999",
            b"18446744073709551616",
        ] {
            assert_eq!(parse(bad, true), Content::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn text_and_non_canonical_numbers_are_invalid() {
        for bad in [
            &b"0042"[..],
            b"42abc",
            b"4 2",
            b"hello",
            b"\0\0\0",
            b"42\0",
            b"\xff\xfe",
            b"0x2a",
            b"4.2",
            b"42\x0b",
        ] {
            assert_eq!(parse(bad, true), Content::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn a_file_longer_than_the_head_is_invalid() {
        let digits = [b'1'; HEAD_LEN];
        assert_eq!(parse(&digits, false), Content::Invalid);
        assert_eq!(parse(b"1\n", false), Content::Invalid);
    }

    #[test]
    fn written_text_is_the_pid_and_a_newline() {
        assert_eq!(Text::of(Pid::from_raw(1)).as_bytes(), b"1\n");
        assert_eq!(
            Text::of(Pid::from_raw(Pid::MAX)).as_bytes(),
            format!("{}\n", Pid::MAX).as_bytes()
        );
    }

    proptest::proptest! {
        /// Whatever the bytes, the parser answers, and a pid it returns is
        /// positive and is exactly the content without blanks and ending.
        #[test]
        fn any_bytes_are_judged_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..=HEAD_LEN + 1)) {
            let whole = bytes.len() <= HEAD_LEN;
            let head = &bytes[..bytes.len().min(HEAD_LEN)];
            if let Content::Pid(pid) = parse(head, whole) {
                proptest::prop_assert!(pid.as_raw() > 0);
                let text = std::str::from_utf8(head).unwrap();
                let text = text.strip_suffix('\n').unwrap_or(text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                proptest::prop_assert_eq!(text.trim_matches([' ', '\t']), pid.to_string());
            }
            let _ = excerpt(head);
        }

        /// Every pid in range survives a write and a read, however it is
        /// padded.
        #[test]
        fn every_pid_round_trips(raw in 1..=Pid::MAX, padding in "[ \t]{0,3}", ending in "(\n|\r\n|)") {
            let text = format!("{padding}{raw}{padding}{ending}");
            proptest::prop_assert_eq!(parse(text.as_bytes(), true), pid(raw));
            proptest::prop_assert_eq!(parse(Text::of(Pid::from_raw(raw)).as_bytes(), true), pid(raw));
        }
    }

    #[test]
    fn excerpt_is_the_start_cut_short() {
        assert_eq!(excerpt(b"hello\nworld"), "hello\nworld");
        assert_eq!(excerpt(&[b'7'; 40]), format!("{}…", "7".repeat(32)));
        assert_eq!(excerpt(b"\xff1"), "\u{fffd}1");
    }
}

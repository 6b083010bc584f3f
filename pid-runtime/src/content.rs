//! What a pidfile says: the first line, trimmed, as a process id.

use nix::unistd::Pid;

/// How much of a pidfile is read. A process id is at most ten digits, so
/// anything whose first line does not end within this is not a pidfile.
pub(crate) const HEAD_LEN: usize = 64;

/// The longest text quoted back in an error.
const EXCERPT_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    /// Nothing but white space on the first line: no process was recorded.
    Empty,
    /// A process id in `1..=i32::MAX`, in canonical decimal.
    Pid(Pid),
    /// Anything else: the file may not be a pidfile.
    Invalid,
}

/// Judges the first `head` bytes of a file; `whole` says whether they are the
/// whole file.
///
/// Only canonical decimal is a process id: no sign, no leading zero, no other
/// text. `0` and negative numbers are refused above all, because `kill(0, _)`
/// and `kill(-1, _)` address process groups, not a process.
pub(crate) fn parse(head: &[u8], whole: bool) -> Content {
    let line = match first_line(head, whole) {
        Some(line) => line.trim_ascii(),
        None => return Content::Invalid,
    };
    if line.is_empty() {
        return Content::Empty;
    }
    if line[0] == b'0' || line.len() > 10 || !line.iter().all(u8::is_ascii_digit) {
        return Content::Invalid;
    }
    let value = line
        .iter()
        .fold(0_i64, |value, digit| value * 10 + i64::from(digit - b'0'));
    match i32::try_from(value) {
        Ok(pid) => Content::Pid(Pid::from_raw(pid)),
        Err(_) => Content::Invalid,
    }
}

/// The start of the first line, for an error message.
pub(crate) fn excerpt(head: &[u8]) -> String {
    let line = head.split(|&byte| byte == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut text: String = line.chars().take(EXCERPT_LEN).collect();
    if line.chars().nth(EXCERPT_LEN).is_some() {
        text.push('…');
    }
    text
}

/// The first line without its newline; `None` when the line does not end
/// within `head` and the file goes on past it.
fn first_line(head: &[u8], whole: bool) -> Option<&[u8]> {
    match head.iter().position(|&byte| byte == b'\n') {
        Some(end) => Some(&head[..end]),
        None if whole => Some(head),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(raw: i32) -> Content {
        Content::Pid(Pid::from_raw(raw))
    }

    #[test]
    fn canonical_decimal_is_a_pid() {
        assert_eq!(parse(b"4242\n", true), pid(4242));
        assert_eq!(parse(b"4242", true), pid(4242));
        assert_eq!(parse(b"1", true), pid(1));
        assert_eq!(parse(b"2147483647\n", true), pid(i32::MAX));
    }

    #[test]
    fn white_space_around_the_first_line_is_trimmed() {
        assert_eq!(parse(b"  4242 \t\n", true), pid(4242));
        assert_eq!(parse(b"4242\r\n", true), pid(4242));
        assert_eq!(parse(b"4242\nwhatever follows\n", true), pid(4242));
    }

    #[test]
    fn blank_first_line_is_empty() {
        assert_eq!(parse(b"", true), Content::Empty);
        assert_eq!(parse(b"\n", true), Content::Empty);
        assert_eq!(parse(b" \t \r\n", true), Content::Empty);
    }

    #[test]
    fn group_addresses_and_out_of_range_values_are_invalid() {
        for bad in [
            &b"0"[..],
            b"-1",
            b"-4242",
            b"+5",
            b"2147483648",
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
        ] {
            assert_eq!(parse(bad, true), Content::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn a_first_line_longer_than_the_head_is_invalid() {
        let digits = [b'1'; HEAD_LEN];
        assert_eq!(parse(&digits, false), Content::Invalid);
        assert_eq!(parse(&digits, true), Content::Invalid);
    }

    proptest::proptest! {
        /// Whatever the bytes, the parser answers, and a pid it returns is
        /// positive and is exactly the trimmed first line.
        #[test]
        fn any_bytes_are_judged_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..=HEAD_LEN + 1)) {
            let whole = bytes.len() <= HEAD_LEN;
            let head = &bytes[..bytes.len().min(HEAD_LEN)];
            if let Content::Pid(pid) = parse(head, whole) {
                proptest::prop_assert!(pid.as_raw() > 0);
                let line = head.split(|&b| b == b'\n').next().unwrap().trim_ascii();
                let written = pid.to_string();
                proptest::prop_assert_eq!(line, written.as_bytes());
            }
            let _ = excerpt(head);
        }

        /// Every pid in range survives a write and a read, however it is
        /// padded.
        #[test]
        fn every_pid_round_trips(raw in 1..=i32::MAX, padding in "[ \t]{0,3}", ending in "(\n|\r\n|)") {
            let text = format!("{padding}{raw}{padding}{ending}");
            proptest::prop_assert_eq!(parse(text.as_bytes(), true), pid(raw));
        }
    }

    #[test]
    fn excerpt_is_the_first_line_cut_short() {
        assert_eq!(excerpt(b"hello\nworld"), "hello");
        assert_eq!(excerpt(&[b'7'; 40]), format!("{}…", "7".repeat(32)));
        assert_eq!(excerpt(b"\xff1"), "\u{fffd}1");
    }
}

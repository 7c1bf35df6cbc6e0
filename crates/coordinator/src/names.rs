//! Naming rules and "did you mean" suggestions shared by validation and the CLI, and the checks
//! of identifiers that come from outside ([`key_problem`], [`quoted`]).

/// `snake_case`: starts with a lowercase ASCII letter, then lowercase letters, digits and single
/// underscores, not ending with an underscore.
pub(crate) fn is_snake_case(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some(first) = bytes.first() else {
        return false;
    };
    if !first.is_ascii_lowercase() || s.ends_with('_') || s.contains("__") {
        return false;
    }
    bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

/// Why `value`, an identifier that came from outside (an event id, an order number), cannot be
/// a key, if it cannot: it must be 1 to `max` characters, none of them a control character
/// (which some databases refuse and every log line would have to escape).
///
/// ```
/// use coordinator::names::{key_problem, quoted};
///
/// assert_eq!(key_problem("EDX-1", 64), None);
/// assert_eq!(key_problem("EDX\u{0}1", 64), Some("it holds a control character"));
/// assert_eq!(quoted("EDX\n1"), "\"EDX\\n1\"");
/// ```
pub fn key_problem(value: &str, max: usize) -> Option<&'static str> {
    if value.is_empty() {
        Some("it is empty")
    } else if value.chars().count() > max {
        Some("it is too long")
    } else if value.chars().any(char::is_control) {
        Some("it holds a control character")
    } else {
        None
    }
}

/// `value` quoted on one line, for a message: control characters escaped, cut after 80
/// characters.
pub fn quoted(value: &str) -> String {
    let mut shown: String = value
        .chars()
        .take(80)
        .collect::<String>()
        .escape_debug()
        .collect();
    if value.chars().count() > 80 {
        shown.push('…');
    }
    format!("\"{shown}\"")
}

/// Why a dotted name (`<extension>.<snake_case>`) is not acceptable for `extension`, if it is not.
pub(crate) fn dotted_name_problem(name: &str, extension: &str) -> Option<String> {
    let Some((prefix, rest)) = name.split_once('.') else {
        return Some(format!(
            "it has no extension prefix; write \"{extension}.{}\"",
            to_snake_case(name)
        ));
    };
    if prefix != extension {
        return Some(format!(
            "its prefix \"{prefix}\" is not the declaring extension \"{extension}\"; write \"{extension}.{}\"",
            to_snake_case(rest)
        ));
    }
    if !is_snake_case(rest) {
        return Some(format!(
            "\"{rest}\" is not snake_case; write \"{extension}.{}\"",
            to_snake_case(rest)
        ));
    }
    None
}

/// A best-effort snake_case spelling of `s`, used only to suggest a fix.
pub(crate) fn to_snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    let trimmed = out.trim_matches('_');
    if trimmed.is_empty() {
        "event".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Levenshtein distance between two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `name`, if it is close enough to be a plausible typo.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// `; did you mean "x"?` or nothing.
pub(crate) fn hint<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(name, candidates)
        .map(|c| format!("; did you mean \"{c}\"?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_rules() {
        assert!(is_snake_case("order_placed"));
        assert!(is_snake_case("v2_refund"));
        for bad in ["", "Order", "order-placed", "_x", "x_", "a__b", "2x", "a.b"] {
            assert!(!is_snake_case(bad), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn dotted_names_need_the_declaring_extension_as_prefix() {
        assert_eq!(dotted_name_problem("demo.order_placed", "demo"), None);
        assert!(
            dotted_name_problem("other.order_placed", "demo")
                .unwrap()
                .contains("\"demo.order_placed\"")
        );
        assert!(
            dotted_name_problem("demo.OrderPlaced", "demo")
                .unwrap()
                .contains("\"demo.order_placed\"")
        );
        assert!(
            dotted_name_problem("order_placed", "demo")
                .unwrap()
                .contains("no extension prefix")
        );
    }

    #[test]
    fn suggestions_pick_the_nearest_plausible_name() {
        let names = ["demo.order_placed", "demo.payment_refunded"];
        assert_eq!(
            did_you_mean("demo.order_plcaed", names),
            Some("demo.order_placed")
        );
        assert_eq!(did_you_mean("something.else_entirely", names), None);
    }
}

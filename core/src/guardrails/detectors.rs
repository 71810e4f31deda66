//! The built-in PII and secret detectors: a regular expression over the folded text (see
//! `normalize`) finds candidates, and a validator rejects the ones that only look right (card
//! numbers failing Luhn, IBANs failing mod 97, impossible SSNs, octets over 255...).
//!
//! Patterns are written for folded text: lowercase, one space for any whitespace run. They run
//! in the `regex` crate, whose matching is linear in the input whatever the pattern.

use std::ops::Range;

/// Checks a candidate: the folded text, the candidate's range in it, and the original
/// characters it came from.
pub type Validator = fn(&str, Range<usize>, &str) -> bool;

/// A built-in detector.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub id: &'static str,
    pub pattern: &'static str,
    pub validate: Validator,
}

fn always(_: &str, _: Range<usize>, _: &str) -> bool {
    true
}

/// Every built-in detector. The order matters where two overlap: the earlier wins (an
/// Anthropic key is also shaped like an OpenAI one).
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        id: "private_key",
        pattern: r"-----begin (?:[a-z0-9]+ )*private key-----[a-z0-9+/= :,-]*?(?:-----end (?:[a-z0-9]+ )*private key-----|$)",
        validate: always,
    },
    Builtin {
        id: "jwt",
        pattern: r"(?-u:\b)eyj[a-z0-9_-]{8,}\.eyj[a-z0-9_-]{4,}\.[a-z0-9_-]{8,}",
        validate: jwt,
    },
    Builtin {
        id: "anthropic_key",
        pattern: r"(?-u:\b)sk-ant-[a-z0-9]{2,}[a-z0-9_-]{20,}",
        validate: always,
    },
    Builtin {
        id: "openai_key",
        pattern: r"(?-u:\b)sk-(?:proj-|svcacct-|admin-|none-)?[a-z0-9_-]{20,}",
        validate: openai_key,
    },
    Builtin {
        id: "aws_access_key",
        pattern: r"(?-u:\b)(?:akia|asia|abia|acca)[a-z0-9]{16}(?-u:\b)",
        validate: aws_key,
    },
    Builtin {
        id: "github_token",
        pattern: r"(?-u:\b)(?:gh[pousr]_[a-z0-9]{36,}|github_pat_[a-z0-9]{22}_[a-z0-9]{59,})(?-u:\b)",
        validate: always,
    },
    Builtin {
        id: "slack_token",
        pattern: r"(?-u:\b)xox[abposre]-[0-9]{6,}-[a-z0-9-]{8,}|hooks\.slack\.com/services/t[a-z0-9]+/b[a-z0-9]+/[a-z0-9]+",
        validate: always,
    },
    Builtin {
        id: "email",
        pattern: r"[a-z0-9][a-z0-9._%+-]*@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.[a-z]{2,24}(?-u:\b)",
        validate: email,
    },
    // Sixteen digits, then fifteen (Amex), are tried before the longest run: a card number
    // followed by more digits ("4111 1111 1111 1111 12/27 123", its expiry or CVV) would
    // otherwise be read as one longer number that fails the checksum, and the card would go
    // unredacted. No card number starts with 0, so a run of zeros before one (an IBAN's last
    // group) does not swallow it either.
    Builtin {
        id: "credit_card",
        pattern: r"(?-u:\b)[1-9](?:(?:[ -]?[0-9]){15}(?-u:\b)|(?:[ -]?[0-9]){14}(?-u:\b)|(?:[ -]?[0-9]){12,18}(?-u:\b))",
        validate: card,
    },
    Builtin {
        id: "iban",
        pattern: r"(?-u:\b)[a-z]{2}[0-9]{2}(?:[a-z0-9]{11,30}|(?: [a-z0-9]{4}){2,7}(?: [0-9]{1,3})?)(?-u:\b)",
        validate: iban,
    },
    Builtin {
        id: "us_ssn",
        pattern: r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)",
        validate: ssn,
    },
    Builtin {
        id: "phone",
        pattern: r"(?:\+|(?-u:\b)00)[1-9][0-9]{0,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,5}(?:[ .-]?[0-9]{1,5}){1,5}(?-u:\b)|(?:\([2-9][0-9]{2}\) ?|(?-u:\b)[2-9][0-9]{2}[.-])[2-9][0-9]{2}[.-][0-9]{4}(?-u:\b)",
        validate: phone,
    },
    Builtin {
        id: "ipv4",
        pattern: r"(?-u:\b)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?-u:\b)",
        validate: ipv4,
    },
    Builtin {
        id: "ipv6",
        pattern: r"(?:[0-9a-f]{1,4}:|:){1,7}(?::|(?::?[0-9a-f]{1,4}))(?:/[0-9]{1,3})?",
        validate: ipv6,
    },
];

fn byte_before(text: &str, at: usize) -> Option<u8> {
    text.as_bytes().get(at.checked_sub(1)?).copied()
}

fn byte_at(text: &str, at: usize) -> Option<u8> {
    text.as_bytes().get(at).copied()
}

fn digits(text: &str) -> Vec<u8> {
    text.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b.wrapping_sub(b'0'))
        .collect()
}

/// The Luhn checksum of a digit string (card numbers).
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum: u32 = 0;
    for (i, d) in digits.iter().rev().enumerate() {
        let d = u32::from(*d);
        let v = if i % 2 == 1 {
            let doubled = d.saturating_mul(2);
            if doubled > 9 {
                doubled.saturating_sub(9)
            } else {
                doubled
            }
        } else {
            d
        };
        sum = sum.saturating_add(v);
    }
    !digits.is_empty() && sum % 10 == 0
}

fn prefix_value(digits: &[u8], n: usize) -> u32 {
    digits.iter().take(n).fold(0u32, |acc, d| {
        acc.saturating_mul(10).saturating_add(u32::from(*d))
    })
}

fn card(text: &str, range: Range<usize>, _: &str) -> bool {
    let Some(candidate) = text.get(range.clone()) else {
        return false;
    };
    // Part of a longer number or a dotted/decimal value: not a card on its own.
    if matches!(
        byte_before(text, range.start),
        Some(b'.' | b',' | b'-' | b'+')
    ) || (matches!(byte_at(text, range.end), Some(b'.' | b','))
        && byte_at(text, range.end.saturating_add(1)).is_some_and(|b| b.is_ascii_digit()))
    {
        return false;
    }
    // Separators, when used, are one kind only.
    if candidate.contains(' ') && candidate.contains('-') {
        return false;
    }
    let d = digits(candidate);
    let len = d.len();
    let p2 = prefix_value(&d, 2);
    let p3 = prefix_value(&d, 3);
    let p4 = prefix_value(&d, 4);
    let p6 = prefix_value(&d, 6);
    let brand = match d.first() {
        Some(4) => matches!(len, 13 | 16 | 19),
        Some(5) => (51..=55).contains(&p2) && len == 16,
        Some(2) => (2221..=2720).contains(&p4) && len == 16,
        Some(3) => {
            ((p2 == 34 || p2 == 37) && len == 15)
                || ((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39) && len == 14
                || (3528..=3589).contains(&p4) && (16..=19).contains(&len)
        }
        Some(6) => {
            (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || p2 == 62)
                && (16..=19).contains(&len)
                || (622_126..=622_925).contains(&p6)
        }
        _ => false,
    };
    brand && luhn(&d)
}

/// IBAN lengths by country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// Mod-97 check of an IBAN (ISO 7064), on its compact uppercase form.
pub fn iban_checksum(compact: &str) -> bool {
    let (Some(head), Some(tail)) = (compact.get(..4), compact.get(4..)) else {
        return false;
    };
    let mut remainder: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let value = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        let factor = if value >= 10 { 100 } else { 10 };
        remainder = remainder
            .saturating_mul(factor)
            .saturating_add(value)
            .checked_rem(97)
            .unwrap_or(1);
    }
    remainder == 1
}

fn iban(text: &str, range: Range<usize>, _: &str) -> bool {
    let Some(candidate) = text.get(range) else {
        return false;
    };
    let compact: String = candidate
        .chars()
        .filter(|c| *c != ' ')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let country = compact.get(..2).unwrap_or_default();
    let expected = IBAN_LENGTHS
        .iter()
        .find(|(code, _)| *code == country)
        .map(|(_, len)| *len);
    expected == Some(compact.len()) && iban_checksum(&compact)
}

fn ssn(text: &str, range: Range<usize>, _: &str) -> bool {
    let Some(candidate) = text.get(range) else {
        return false;
    };
    let mut parts = candidate.split('-');
    let (Some(area), Some(group), Some(serial)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

fn phone(text: &str, range: Range<usize>, _: &str) -> bool {
    let Some(candidate) = text.get(range.clone()) else {
        return false;
    };
    // A `+` in the middle of an expression (`a+1 234...`) is arithmetic.
    if candidate.starts_with('+')
        && byte_before(text, range.start).is_some_and(|b| b.is_ascii_alphanumeric() || b == b')')
    {
        return false;
    }
    let n = digits(candidate).len();
    let international = candidate.starts_with('+') || candidate.starts_with("00");
    if international {
        (8..=15).contains(&n)
    } else {
        n == 10
    }
}

fn ipv4(text: &str, range: Range<usize>, _: &str) -> bool {
    let Some(candidate) = text.get(range.clone()) else {
        return false;
    };
    // Part of a longer dotted run (a version number like 1.2.3.4.5, an OID).
    let dotted_before = byte_before(text, range.start) == Some(b'.');
    let dotted_after = byte_at(text, range.end) == Some(b'.')
        && byte_at(text, range.end.saturating_add(1)).is_some_and(|b| b.is_ascii_digit());
    if dotted_before || dotted_after {
        return false;
    }
    // `v1.2.3.4` / `version 1.2.3.4` are versions.
    let before = text.get(..range.start).unwrap_or_default();
    if before.ends_with('v') || before.ends_with("version ") {
        return false;
    }
    candidate.parse::<std::net::Ipv4Addr>().is_ok()
}

fn ipv6(text: &str, range: Range<usize>, _: &str) -> bool {
    let Some(candidate) = text.get(range.clone()) else {
        return false;
    };
    let is_hexish = |b: u8| b.is_ascii_hexdigit() || b == b':';
    if byte_before(text, range.start).is_some_and(|b| is_hexish(b) || b.is_ascii_alphanumeric())
        || byte_at(text, range.end).is_some_and(|b| b.is_ascii_alphanumeric() || b == b':')
    {
        return false;
    }
    let address = candidate.split('/').next().unwrap_or(candidate);
    let groups = address.split(':').filter(|g| !g.is_empty()).count();
    let hex_digits = address.bytes().filter(u8::is_ascii_hexdigit).count();
    groups >= 2 && hex_digits >= 6 && address.parse::<std::net::Ipv6Addr>().is_ok()
}

fn email(text: &str, range: Range<usize>, _: &str) -> bool {
    let Some(candidate) = text.get(range.clone()) else {
        return false;
    };
    let Some((local, domain)) = candidate.rsplit_once('@') else {
        return false;
    };
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    // `icon@2x.png`, `logo@3x.webp`: asset names, not addresses.
    let tld = domain.rsplit('.').next().unwrap_or_default();
    const FILE_EXTENSIONS: &[&str] = &[
        "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "js", "ts", "tsx", "jsx", "css",
        "scss", "py", "rs", "go", "java", "rb", "php", "json", "yaml", "yml", "toml", "md", "txt",
        "html", "htm", "xml", "lock", "map", "mjs", "cjs", "wasm", "zip", "gz", "tar", "exe",
        "dll", "so", "mp4", "mp3", "pdf", "csv", "sh", "kt", "swift", "vue",
    ];
    !FILE_EXTENSIONS.contains(&tld)
}

fn openai_key(_: &str, _: Range<usize>, original: &str) -> bool {
    let body = original.rsplit('-').next().unwrap_or_default();
    let has_digit = original.bytes().any(|b| b.is_ascii_digit());
    let has_upper = original.bytes().any(|b| b.is_ascii_uppercase());
    !original.to_ascii_lowercase().starts_with("sk-ant-")
        && has_digit
        && (has_upper || body.len() >= 32)
}

fn aws_key(_: &str, _: Range<usize>, original: &str) -> bool {
    original
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn jwt(_: &str, _: Range<usize>, original: &str) -> bool {
    let mut parts = original.split('.');
    matches!((parts.next(), parts.next()), (Some(h), Some(p)) if h.starts_with("eyJ") && p.starts_with("eyJ"))
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{iban_checksum, luhn};

    #[test]
    fn a_card_followed_by_more_digits_is_still_found() {
        use crate::guardrails::{Guardrails, GuardrailsSpec, PolicySpec};
        let g = Guardrails::build(GuardrailsSpec {
            policies: vec![PolicySpec::default_named("default")],
            models: Default::default(),
            tenants: Default::default(),
            routes: Default::default(),
            deny: Vec::new(),
            injection_phrases: Default::default(),
            injection_threshold: 1.0,
            stream_holdback_bytes: 64,
        })
        .unwrap();
        let policy = g.policy(0).unwrap();
        let cards = |text: &str| -> Vec<String> {
            g.scan(policy, text)
                .into_iter()
                .filter(|f| g.rule_id(f.rule) == "credit_card")
                .map(|f| text[f.range].to_owned())
                .collect()
        };
        // Found by the property tests: the expiry or CVV after the number made one 18- or
        // 19-digit run that failed the checksum; digits before it did the same.
        for (text, card) in [
            ("card 4111 1111 1111 1111 123 ok", "4111 1111 1111 1111"),
            ("card 4111 1111 1111 1111 12/27", "4111 1111 1111 1111"),
            ("card 4111111111111111 123", "4111111111111111"),
            ("amex 3782 822463 10005 1234", "3782 822463 10005"),
            (
                "DE89 3704 0044 0532 0130 00 4111 1111 1111 1111",
                "4111 1111 1111 1111",
            ),
            // A candidate that fails validation no longer hides one that starts inside it.
            ("123-45-6789 4111 1111 1111 1111", "4111 1111 1111 1111"),
            ("ref 6789 4111 1111 1111 1111", "4111 1111 1111 1111"),
            ("4111 1111 1111 1111 123-45", "4111 1111 1111 1111"),
        ] {
            assert_eq!(cards(text), [card], "{text}");
        }
        // Other lengths are still read whole.
        assert_eq!(cards("visa 4111111111111111110"), ["4111111111111111110"]);
        assert_eq!(cards("diners 3056 930902 5904"), ["3056 930902 5904"]);
        assert!(cards("order 4111 1111 1111 1112 123").is_empty());
        // The same for phone numbers: other digits after one made it too long to be one (now
        // the longest valid one is taken).
        let phones: Vec<String> = g
            .scan(policy, "call +44 20 7946 0958 123-45-6789")
            .into_iter()
            .filter(|f| g.rule_id(f.rule) == "phone")
            .map(|f| "call +44 20 7946 0958 123-45-6789"[f.range].to_owned())
            .collect();
        assert_eq!(phones, ["+44 20 7946 0958 123"]);
    }

    #[test]
    fn checksums() {
        let d = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<u8>>();
        assert!(luhn(&d("4111111111111111")));
        assert!(!luhn(&d("4111111111111112")));
        assert!(luhn(&d("378282246310005")));
        assert!(iban_checksum("GB82WEST12345698765432"));
        assert!(iban_checksum("DE89370400440532013000"));
        assert!(!iban_checksum("DE89370400440532013001"));
    }
}

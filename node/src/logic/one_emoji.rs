//! Whether a text is exactly one emoji: what a reaction must be, typed or received.

/// Most pictographs joined into one emoji by zero-width joiners (a family has four).
const MAX_JOINED: usize = 8;

/// Whether `text` is exactly one emoji: a pictograph (with its presentation selector,
/// skin tone and tags), several joined by zero-width joiners, a flag of two regional
/// indicators, or a keycap.
pub fn is_one_emoji(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    match chars.as_slice() {
        [a, b] if regional(*a) && regional(*b) => true,
        [key, rest @ ..] if key.is_ascii_digit() || matches!(key, '#' | '*') => {
            matches!(rest, ['\u{20E3}'] | ['\u{FE0F}', '\u{20E3}'])
        }
        _ => joined(&chars),
    }
}

/// Pictographs joined by zero-width joiners, each with its modifiers.
fn joined(chars: &[char]) -> bool {
    let mut rest = chars;
    for _ in 0..MAX_JOINED {
        rest = match element(rest) {
            Some(after) => after,
            None => return false,
        };
        match rest {
            [] => return true,
            ['\u{200D}', after @ ..] => rest = after,
            _ => return false,
        }
    }
    false
}

/// One pictograph and its modifiers at the start of `chars`: what follows them.
fn element(chars: &[char]) -> Option<&[char]> {
    let (first, mut rest) = chars.split_first()?;
    if !pictographic(*first) {
        return None;
    }
    if let [selector, after @ ..] = rest {
        if matches!(selector, '\u{FE0E}' | '\u{FE0F}') {
            rest = after;
        }
    }
    if let [tone, after @ ..] = rest {
        if ('\u{1F3FB}'..='\u{1F3FF}').contains(tone) {
            rest = after;
        }
    }
    // A subdivision flag: tag letters closed by a cancel tag.
    let tags = rest
        .iter()
        .take_while(|c| ('\u{E0020}'..='\u{E007E}').contains(*c))
        .count();
    if tags > 0 {
        match &rest[tags..] {
            ['\u{E007F}', after @ ..] => rest = after,
            _ => return None,
        }
    }
    Some(rest)
}

/// A regional indicator letter; two make a flag.
fn regional(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

/// A character that is an emoji by itself (skin tones and regional indicators are not).
fn pictographic(c: char) -> bool {
    matches!(u32::from(c),
        0x00A9 | 0x00AE | 0x203C | 0x2049 | 0x2122 | 0x2139
        | 0x2194..=0x2199 | 0x21A9..=0x21AA | 0x231A..=0x231B | 0x2328 | 0x23CF
        | 0x23E9..=0x23F3 | 0x23F8..=0x23FA | 0x24C2 | 0x25AA..=0x25AB | 0x25B6 | 0x25C0
        | 0x25FB..=0x25FE | 0x2600..=0x27BF | 0x2934..=0x2935 | 0x2B05..=0x2B07
        | 0x2B1B..=0x2B1C | 0x2B50 | 0x2B55 | 0x3030 | 0x303D | 0x3297 | 0x3299
        | 0x1F000..=0x1F1E5 | 0x1F200..=0x1F3FA | 0x1F400..=0x1FAFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_emoji_is_told_from_words_and_several() {
        for one in [
            "👍",
            "❤️",
            "👍🏽",
            "🇫🇷",
            "1️⃣",
            "👩‍👩‍👧",
            "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
        ] {
            assert!(is_one_emoji(one), "{one}");
        }
        for not in ["", "hello", "👍👍", "a👍", "🇫", "1"] {
            assert!(!is_one_emoji(not), "{not}");
        }
    }
}

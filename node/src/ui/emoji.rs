//! `:shortcode:` expansion for typed messages.

/// Known shortcodes and their emoji.
pub const SHORTCODES: &[(&str, &str)] = &[
    ("smile", "😄"),
    ("grin", "😁"),
    ("joy", "😂"),
    ("rofl", "🤣"),
    ("smiley", "😃"),
    ("wink", "😉"),
    ("blush", "😊"),
    ("heart_eyes", "😍"),
    ("kiss", "😘"),
    ("yum", "😋"),
    ("sunglasses", "😎"),
    ("thinking", "🤔"),
    ("neutral", "😐"),
    ("expressionless", "😑"),
    ("unamused", "😒"),
    ("roll_eyes", "🙄"),
    ("grimacing", "😬"),
    ("relieved", "😌"),
    ("pensive", "😔"),
    ("sleepy", "😪"),
    ("sleeping", "😴"),
    ("mask", "😷"),
    ("nerd", "🤓"),
    ("confused", "😕"),
    ("worried", "😟"),
    ("frowning", "☹️"),
    ("open_mouth", "😮"),
    ("astonished", "😲"),
    ("flushed", "😳"),
    ("scream", "😱"),
    ("cry", "😢"),
    ("sob", "😭"),
    ("angry", "😠"),
    ("rage", "😡"),
    ("skull", "💀"),
    ("poop", "💩"),
    ("clown", "🤡"),
    ("ghost", "👻"),
    ("alien", "👽"),
    ("robot", "🤖"),
    ("smile_cat", "😸"),
    ("see_no_evil", "🙈"),
    ("heart", "❤️"),
    ("broken_heart", "💔"),
    ("sparkling_heart", "💖"),
    ("100", "💯"),
    ("fire", "🔥"),
    ("star", "⭐"),
    ("sparkles", "✨"),
    ("zap", "⚡"),
    ("boom", "💥"),
    ("wave", "👋"),
    ("ok_hand", "👌"),
    ("thumbsup", "👍"),
    ("+1", "👍"),
    ("thumbsdown", "👎"),
    ("-1", "👎"),
    ("clap", "👏"),
    ("pray", "🙏"),
    ("muscle", "💪"),
    ("raised_hands", "🙌"),
    ("point_up", "☝️"),
    ("v", "✌️"),
    ("crossed_fingers", "🤞"),
    ("handshake", "🤝"),
    ("eyes", "👀"),
    ("tada", "🎉"),
    ("gift", "🎁"),
    ("balloon", "🎈"),
    ("cake", "🎂"),
    ("coffee", "☕"),
    ("tea", "🍵"),
    ("beer", "🍺"),
    ("beers", "🍻"),
    ("wine_glass", "🍷"),
    ("pizza", "🍕"),
    ("hamburger", "🍔"),
    ("apple", "🍎"),
    ("sun", "☀️"),
    ("cloud", "☁️"),
    ("umbrella", "☔"),
    ("snowflake", "❄️"),
    ("rainbow", "🌈"),
    ("earth", "🌍"),
    ("moon", "🌙"),
    ("rocket", "🚀"),
    ("car", "🚗"),
    ("bike", "🚲"),
    ("airplane", "✈️"),
    ("house", "🏠"),
    ("phone", "📱"),
    ("computer", "💻"),
    ("email", "📧"),
    ("bulb", "💡"),
    ("lock", "🔒"),
    ("key", "🔑"),
    ("bell", "🔔"),
    ("pushpin", "📌"),
    ("memo", "📝"),
    ("books", "📚"),
    ("warning", "⚠️"),
    ("x", "❌"),
    ("white_check_mark", "✅"),
    ("check", "✔️"),
    ("question", "❓"),
    ("exclamation", "❗"),
    ("dog", "🐶"),
    ("cat", "🐱"),
    ("crab", "🦀"),
    ("snake", "🐍"),
    ("penguin", "🐧"),
    ("unicorn", "🦄"),
    ("bee", "🐝"),
    ("rose", "🌹"),
    ("tree", "🌳"),
    ("four_leaf_clover", "🍀"),
    ("soccer", "⚽"),
    ("chess_pawn", "♟️"),
    ("musical_note", "🎵"),
    ("guitar", "🎸"),
    ("video_game", "🎮"),
    ("trophy", "🏆"),
];

/// The emoji for a shortcode (without colons).
pub fn lookup(code: &str) -> Option<&'static str> {
    SHORTCODES.iter().find(|(c, _)| *c == code).map(|(_, e)| *e)
}

/// Replaces every known `:code:` in `text`; unknown codes stay as typed.
pub fn expand(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(':') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find(':') {
            Some(end) if end > 0 && !after[..end].contains(char::is_whitespace) => {
                match lookup(&after[..end]) {
                    Some(emoji) => {
                        out.push_str(emoji);
                        rest = &after[end + 1..];
                    }
                    None => {
                        // Keep the first colon; the second may open another code.
                        out.push(':');
                        rest = after;
                    }
                }
            }
            _ => {
                out.push(':');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_expand_and_others_stay() {
        assert_eq!(expand("hi :smile:"), "hi 😄");
        assert_eq!(expand(":fire::fire:"), "🔥🔥");
        assert_eq!(expand("at 10:30 :nope: ok"), "at 10:30 :nope: ok");
        assert_eq!(expand("time 12:00:smile:"), "time 12:00😄");
        assert_eq!(expand("a:b :thumbsup:"), "a:b 👍");
        assert_eq!(expand("::"), "::");
        assert_eq!(expand(":"), ":");
    }
}

//! `:shortcode:` expansion for typed messages, the list `/emoji` shows, and what counts as
//! one emoji for a reaction.

/// Known shortcodes and their emoji, sorted by shortcode (byte order), one row each; an
/// emoji may have several (`+1`, `thumbsup`). The names are those of GitHub and Slack.
#[rustfmt::skip]
pub const SHORTCODES: &[(&str, &str)] = &[
    ("+1", "👍"),
    ("-1", "👎"),
    ("100", "💯"),
    ("1st_place_medal", "🥇"),
    ("airplane", "✈️"),
    ("alarm_clock", "⏰"),
    ("alien", "👽"),
    ("angry", "😠"),
    ("anguished", "😧"),
    ("apple", "🍎"),
    ("arrow_down", "⬇️"),
    ("arrow_left", "⬅️"),
    ("arrow_right", "➡️"),
    ("arrow_up", "⬆️"),
    ("astonished", "😲"),
    ("avocado", "🥑"),
    ("baby", "👶"),
    ("bacon", "🥓"),
    ("balloon", "🎈"),
    ("banana", "🍌"),
    ("bangbang", "‼️"),
    ("basketball", "🏀"),
    ("battery", "🔋"),
    ("bear", "🐻"),
    ("bee", "🐝"),
    ("beer", "🍺"),
    ("beers", "🍻"),
    ("bell", "🔔"),
    ("bike", "🚲"),
    ("bird", "🐦"),
    ("birthday", "🎂"),
    ("black_heart", "🖤"),
    ("blue_heart", "💙"),
    ("blush", "😊"),
    ("book", "📖"),
    ("books", "📚"),
    ("boom", "💥"),
    ("bouquet", "💐"),
    ("bow", "🙇"),
    ("bread", "🍞"),
    ("broccoli", "🥦"),
    ("broken_heart", "💔"),
    ("brown_heart", "🤎"),
    ("bubble_tea", "🧋"),
    ("bug", "🐛"),
    ("bulb", "💡"),
    ("burrito", "🌯"),
    ("bus", "🚌"),
    ("busts_in_silhouette", "👥"),
    ("butterfly", "🦋"),
    ("cactus", "🌵"),
    ("cake", "🍰"),
    ("calendar", "📆"),
    ("call_me_hand", "🤙"),
    ("camera", "📷"),
    ("candy", "🍬"),
    ("car", "🚗"),
    ("carrot", "🥕"),
    ("cat", "🐱"),
    ("champagne", "🍾"),
    ("chart_with_downwards_trend", "📉"),
    ("chart_with_upwards_trend", "📈"),
    ("check", "✔️"),
    ("checkered_flag", "🏁"),
    ("cheese", "🧀"),
    ("cherries", "🍒"),
    ("cherry_blossom", "🌸"),
    ("chess_pawn", "♟️"),
    ("chicken", "🐔"),
    ("chocolate_bar", "🍫"),
    ("christmas_tree", "🎄"),
    ("clap", "👏"),
    ("clinking_glasses", "🥂"),
    ("cloud", "☁️"),
    ("cloud_with_rain", "🌧️"),
    ("clown", "🤡"),
    ("clown_face", "🤡"),
    ("cocktail", "🍸"),
    ("coffee", "☕"),
    ("cold_face", "🥶"),
    ("cold_sweat", "😰"),
    ("collision", "💥"),
    ("computer", "💻"),
    ("confetti_ball", "🎊"),
    ("confounded", "😖"),
    ("confused", "😕"),
    ("cookie", "🍪"),
    ("cool", "🆒"),
    ("corn", "🌽"),
    ("couple", "👫"),
    ("cow", "🐮"),
    ("cowboy_hat_face", "🤠"),
    ("crab", "🦀"),
    ("crescent_moon", "🌙"),
    ("croissant", "🥐"),
    ("crossed_fingers", "🤞"),
    ("crown", "👑"),
    ("cry", "😢"),
    ("cupcake", "🧁"),
    ("cupid", "💘"),
    ("curry", "🍛"),
    ("cursing_face", "🤬"),
    ("dancer", "💃"),
    ("dart", "🎯"),
    ("dash", "💨"),
    ("date", "📅"),
    ("deciduous_tree", "🌳"),
    ("desktop_computer", "🖥️"),
    ("disappointed", "😞"),
    ("disappointed_relieved", "😥"),
    ("dizzy", "💫"),
    ("dizzy_face", "😵"),
    ("dog", "🐶"),
    ("dolphin", "🐬"),
    ("doughnut", "🍩"),
    ("dragon", "🐉"),
    ("drooling_face", "🤤"),
    ("droplet", "💧"),
    ("duck", "🦆"),
    ("eagle", "🦅"),
    ("earth", "🌍"),
    ("earth_africa", "🌍"),
    ("earth_americas", "🌎"),
    ("earth_asia", "🌏"),
    ("egg", "🥚"),
    ("eggplant", "🍆"),
    ("eight", "8️⃣"),
    ("electric_plug", "🔌"),
    ("elephant", "🐘"),
    ("email", "📧"),
    ("envelope", "✉️"),
    ("evergreen_tree", "🌲"),
    ("exclamation", "❗"),
    ("exploding_head", "🤯"),
    ("expressionless", "😑"),
    ("eye", "👁️"),
    ("eyes", "👀"),
    ("face_with_rolling_eyes", "🙄"),
    ("face_with_thermometer", "🤒"),
    ("facepalm", "🤦"),
    ("facepunch", "👊"),
    ("fallen_leaf", "🍂"),
    ("family", "👪"),
    ("fearful", "😨"),
    ("fire", "🔥"),
    ("fireworks", "🎆"),
    ("fish", "🐟"),
    ("fist", "👊"),
    ("fist_raised", "✊"),
    ("five", "5️⃣"),
    ("floppy_disk", "💾"),
    ("flushed", "😳"),
    ("football", "🏈"),
    ("fork_and_knife", "🍴"),
    ("four", "4️⃣"),
    ("four_leaf_clover", "🍀"),
    ("fox_face", "🦊"),
    ("free", "🆓"),
    ("fries", "🍟"),
    ("frog", "🐸"),
    ("frowning", "😦"),
    ("frowning_face", "☹️"),
    ("full_moon", "🌕"),
    ("game_die", "🎲"),
    ("gear", "⚙️"),
    ("gem", "💎"),
    ("ghost", "👻"),
    ("gift", "🎁"),
    ("gift_heart", "💝"),
    ("girl", "👧"),
    ("globe_with_meridians", "🌐"),
    ("grapes", "🍇"),
    ("green_apple", "🍏"),
    ("green_heart", "💚"),
    ("grimacing", "😬"),
    ("grin", "😁"),
    ("grinning", "😀"),
    ("guitar", "🎸"),
    ("hamburger", "🍔"),
    ("hammer", "🔨"),
    ("hamster", "🐹"),
    ("hand", "✋"),
    ("handshake", "🤝"),
    ("hankey", "💩"),
    ("headphones", "🎧"),
    ("hear_no_evil", "🙉"),
    ("heart", "❤️"),
    ("heart_eyes", "😍"),
    ("heart_eyes_cat", "😻"),
    ("heart_on_fire", "❤️‍🔥"),
    ("heartbeat", "💓"),
    ("heartpulse", "💗"),
    ("heavy_check_mark", "✔️"),
    ("heavy_heart_exclamation", "❣️"),
    ("heavy_minus_sign", "➖"),
    ("heavy_plus_sign", "➕"),
    ("hedgehog", "🦔"),
    ("herb", "🌿"),
    ("honeybee", "🐝"),
    ("horse", "🐴"),
    ("hospital", "🏥"),
    ("hot_face", "🥵"),
    ("hot_pepper", "🌶️"),
    ("hotdog", "🌭"),
    ("hourglass", "⌛"),
    ("hourglass_flowing_sand", "⏳"),
    ("house", "🏠"),
    ("hugging_face", "🤗"),
    ("hugs", "🤗"),
    ("hushed", "😯"),
    ("ice_cream", "🍨"),
    ("icecream", "🍦"),
    ("imp", "👿"),
    ("inbox_tray", "📥"),
    ("infinity", "♾️"),
    ("innocent", "😇"),
    ("interrobang", "⁉️"),
    ("iphone", "📱"),
    ("jack_o_lantern", "🎃"),
    ("jigsaw", "🧩"),
    ("joy", "😂"),
    ("joy_cat", "😹"),
    ("key", "🔑"),
    ("keyboard", "⌨️"),
    ("keycap_ten", "🔟"),
    ("kiss", "💋"),
    ("kissing_heart", "😘"),
    ("koala", "🐨"),
    ("lady_beetle", "🐞"),
    ("laughing", "😆"),
    ("lemon", "🍋"),
    ("link", "🔗"),
    ("lion", "🦁"),
    ("lock", "🔒"),
    ("lollipop", "🍭"),
    ("loudspeaker", "📢"),
    ("love_letter", "💌"),
    ("love_you_gesture", "🤟"),
    ("lying_face", "🤥"),
    ("mag", "🔍"),
    ("mage", "🧙"),
    ("man", "👨"),
    ("man_dancing", "🕺"),
    ("man_facepalming", "🤦‍♂️"),
    ("man_shrugging", "🤷‍♂️"),
    ("maple_leaf", "🍁"),
    ("mask", "😷"),
    ("medal_sports", "🏅"),
    ("mega", "📣"),
    ("melting_face", "🫠"),
    ("memo", "📝"),
    ("metal", "🤘"),
    ("microphone", "🎤"),
    ("milk_glass", "🥛"),
    ("money_mouth_face", "🤑"),
    ("moneybag", "💰"),
    ("monkey", "🐒"),
    ("monkey_face", "🐵"),
    ("monocle_face", "🧐"),
    ("moon", "🌙"),
    ("mountain", "⛰️"),
    ("mouse", "🐭"),
    ("movie_camera", "🎥"),
    ("muscle", "💪"),
    ("mushroom", "🍄"),
    ("musical_note", "🎵"),
    ("mute", "🔇"),
    ("nauseated_face", "🤢"),
    ("nerd", "🤓"),
    ("nerd_face", "🤓"),
    ("neutral", "😐"),
    ("neutral_face", "😐"),
    ("new", "🆕"),
    ("new_moon", "🌑"),
    ("nine", "9️⃣"),
    ("ninja", "🥷"),
    ("no_entry", "⛔"),
    ("no_entry_sign", "🚫"),
    ("no_good", "🙅"),
    ("no_mouth", "😶"),
    ("notes", "🎶"),
    ("ocean", "🌊"),
    ("octopus", "🐙"),
    ("office", "🏢"),
    ("ok", "🆗"),
    ("ok_hand", "👌"),
    ("ok_woman", "🙆"),
    ("older_man", "👴"),
    ("older_woman", "👵"),
    ("one", "1️⃣"),
    ("open_hands", "👐"),
    ("open_mouth", "😮"),
    ("orange_heart", "🧡"),
    ("outbox_tray", "📤"),
    ("owl", "🦉"),
    ("package", "📦"),
    ("palm_tree", "🌴"),
    ("palms_up_together", "🤲"),
    ("pancakes", "🥞"),
    ("panda_face", "🐼"),
    ("paperclip", "📎"),
    ("partly_sunny", "⛅"),
    ("party", "🎉"),
    ("partying_face", "🥳"),
    ("paw_prints", "🐾"),
    ("peach", "🍑"),
    ("pencil2", "✏️"),
    ("penguin", "🐧"),
    ("pensive", "😔"),
    ("people_hugging", "🫂"),
    ("persevere", "😣"),
    ("phone", "☎️"),
    ("pie", "🥧"),
    ("pig", "🐷"),
    ("pinched_fingers", "🤌"),
    ("pirate_flag", "🏴‍☠️"),
    ("pizza", "🍕"),
    ("pleading_face", "🥺"),
    ("point_down", "👇"),
    ("point_left", "👈"),
    ("point_right", "👉"),
    ("point_up", "☝️"),
    ("point_up_2", "👆"),
    ("poop", "💩"),
    ("popcorn", "🍿"),
    ("pray", "🙏"),
    ("punch", "👊"),
    ("purple_heart", "💜"),
    ("pushpin", "📌"),
    ("question", "❓"),
    ("rabbit", "🐰"),
    ("rage", "😡"),
    ("rainbow", "🌈"),
    ("rainbow_flag", "🏳️‍🌈"),
    ("raised_eyebrow", "🤨"),
    ("raised_hand", "✋"),
    ("raised_hands", "🙌"),
    ("raising_hand", "🙋"),
    ("ramen", "🍜"),
    ("recycle", "♻️"),
    ("relieved", "😌"),
    ("revolving_hearts", "💞"),
    ("rice", "🍚"),
    ("ring", "💍"),
    ("robot", "🤖"),
    ("rocket", "🚀"),
    ("rofl", "🤣"),
    ("roll_eyes", "🙄"),
    ("rose", "🌹"),
    ("runner", "🏃"),
    ("running", "🏃"),
    ("sad", "😢"),
    ("salt", "🧂"),
    ("saluting_face", "🫡"),
    ("sandwich", "🥪"),
    ("santa", "🎅"),
    ("satisfied", "😆"),
    ("school", "🏫"),
    ("scream", "😱"),
    ("see_no_evil", "🙈"),
    ("seedling", "🌱"),
    ("seven", "7️⃣"),
    ("shark", "🦈"),
    ("ship", "🚢"),
    ("shopping_cart", "🛒"),
    ("shrimp", "🦐"),
    ("shrug", "🤷"),
    ("shushing_face", "🤫"),
    ("six", "6️⃣"),
    ("skull", "💀"),
    ("skull_and_crossbones", "☠️"),
    ("sleeping", "😴"),
    ("sleepy", "😪"),
    ("slightly_frowning_face", "🙁"),
    ("slightly_smiling_face", "🙂"),
    ("sloth", "🦥"),
    ("smile", "😄"),
    ("smile_cat", "😸"),
    ("smiley", "😃"),
    ("smiling_face_with_tear", "🥲"),
    ("smiling_face_with_three_hearts", "🥰"),
    ("smiling_imp", "😈"),
    ("smirk", "😏"),
    ("snail", "🐌"),
    ("snake", "🐍"),
    ("sneezing_face", "🤧"),
    ("snowflake", "❄️"),
    ("snowman", "⛄"),
    ("sob", "😭"),
    ("soccer", "⚽"),
    ("soon", "🔜"),
    ("sos", "🆘"),
    ("spaghetti", "🍝"),
    ("sparkler", "🎇"),
    ("sparkles", "✨"),
    ("sparkling_heart", "💖"),
    ("speak_no_evil", "🙊"),
    ("speech_balloon", "💬"),
    ("spider", "🕷️"),
    ("star", "⭐"),
    ("star2", "🌟"),
    ("star_struck", "🤩"),
    ("stop_sign", "🛑"),
    ("stopwatch", "⏱️"),
    ("strawberry", "🍓"),
    ("stuck_out_tongue", "😛"),
    ("stuck_out_tongue_winking_eye", "😜"),
    ("sun", "☀️"),
    ("sunflower", "🌻"),
    ("sunglasses", "😎"),
    ("sunny", "☀️"),
    ("superhero", "🦸"),
    ("sushi", "🍣"),
    ("sweat", "😓"),
    ("sweat_drops", "💦"),
    ("sweat_smile", "😅"),
    ("t-rex", "🦖"),
    ("taco", "🌮"),
    ("tada", "🎉"),
    ("tea", "🍵"),
    ("tennis", "🎾"),
    ("tent", "⛺"),
    ("thinking", "🤔"),
    ("thought_balloon", "💭"),
    ("three", "3️⃣"),
    ("thumbsdown", "👎"),
    ("thumbsup", "👍"),
    ("tiger", "🐯"),
    ("tired_face", "😫"),
    ("tm", "™️"),
    ("tomato", "🍅"),
    ("tongue", "👅"),
    ("toolbox", "🧰"),
    ("tree", "🌳"),
    ("triangular_flag_on_post", "🚩"),
    ("triumph", "😤"),
    ("trophy", "🏆"),
    ("tropical_drink", "🍹"),
    ("tropical_fish", "🐠"),
    ("tulip", "🌷"),
    ("tumbler_glass", "🥃"),
    ("turtle", "🐢"),
    ("tv", "📺"),
    ("two", "2️⃣"),
    ("two_hearts", "💕"),
    ("umbrella", "☔"),
    ("unamused", "😒"),
    ("unicorn", "🦄"),
    ("unlock", "🔓"),
    ("up", "🆙"),
    ("upside_down_face", "🙃"),
    ("v", "✌️"),
    ("video_game", "🎮"),
    ("volcano", "🌋"),
    ("vomiting_face", "🤮"),
    ("vulcan_salute", "🖖"),
    ("walking", "🚶"),
    ("warning", "⚠️"),
    ("watch", "⌚"),
    ("watermelon", "🍉"),
    ("wave", "👋"),
    ("weary", "😩"),
    ("whale", "🐳"),
    ("white_check_mark", "✅"),
    ("white_flag", "🏳️"),
    ("white_heart", "🤍"),
    ("wine_glass", "🍷"),
    ("wink", "😉"),
    ("woman", "👩"),
    ("woman_facepalming", "🤦‍♀️"),
    ("woman_shrugging", "🤷‍♀️"),
    ("woozy_face", "🥴"),
    ("worried", "😟"),
    ("wrench", "🔧"),
    ("writing_hand", "✍️"),
    ("x", "❌"),
    ("yawning_face", "🥱"),
    ("yellow_heart", "💛"),
    ("yum", "😋"),
    ("zany_face", "🤪"),
    ("zap", "⚡"),
    ("zero", "0️⃣"),
    ("zombie", "🧟"),
    ("zzz", "💤"),
];

/// The emoji for a shortcode (without colons).
pub fn lookup(code: &str) -> Option<&'static str> {
    SHORTCODES
        .binary_search_by(|(c, _)| c.as_bytes().cmp(code.as_bytes()))
        .ok()
        .map(|i| SHORTCODES[i].1)
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

pub use crate::logic::one_emoji::is_one_emoji;

/// Width of a column of the `/emoji` list; a longer entry takes two.
const LIST_COLUMN: usize = 26;
/// Widest row of the `/emoji` list.
const LIST_WIDTH: usize = 78;

/// Why a reaction was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a reaction is one emoji, like 👍 or :thumbsup: (not '{0}'); /emoji lists the shortcodes")]
pub struct NotOneEmoji(pub String);

/// The emoji a typed reaction stands for: one emoji, as is or as a `:shortcode:`.
/// A word, several emoji or an unknown shortcode are refused.
pub fn reaction(typed: &str) -> Result<String, NotOneEmoji> {
    let emoji = expand(typed.trim());
    if is_one_emoji(&emoji) {
        Ok(emoji)
    } else {
        let shown: String = typed.trim().chars().take(40).collect();
        Err(NotOneEmoji(shown))
    }
}

/// The `/emoji` list: each emoji with its shortcodes, in columns, or only those whose
/// shortcode holds `filter`.
pub fn listing(filter: Option<&str>) -> String {
    let filter = filter.map(|f| f.trim_matches(':').to_lowercase());
    let mut cells: Vec<(&str, Vec<&str>)> = Vec::new();
    for (code, emoji) in SHORTCODES {
        if filter.as_deref().is_some_and(|f| !code.contains(f)) {
            continue;
        }
        match cells.iter_mut().find(|(e, _)| e == emoji) {
            Some((_, codes)) => codes.push(code),
            None => cells.push((emoji, vec![code])),
        }
    }
    if cells.is_empty() {
        return format!(
            "no shortcode holds '{}': /emoji lists them all",
            filter.unwrap_or_default()
        );
    }
    let mut out = String::new();
    let mut row = String::new();
    let mut row_width = 0;
    for (emoji, codes) in cells {
        let codes: Vec<String> = codes.iter().map(|c| format!(":{c}:")).collect();
        let text = format!("{emoji} {}", codes.join(" "));
        // An emoji takes two columns of a terminal.
        let width = 3 + codes.iter().map(|c| c.len() + 1).sum::<usize>() - 1;
        let slots = width.div_ceil(LIST_COLUMN).max(1) * LIST_COLUMN;
        if row_width > 0 && row_width + width > LIST_WIDTH {
            out.push_str(row.trim_end());
            out.push('\n');
            row.clear();
            row_width = 0;
        }
        row.push_str(&text);
        row.push_str(&" ".repeat(slots.saturating_sub(width)));
        row_width += slots;
    }
    out.push_str(row.trim_end());
    out.push_str(
        "\nType :code: in a line, or /react <ref> :code:; a code not listed stays as typed.",
    );
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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

    #[test]
    fn the_codes_people_type_are_known() {
        for (code, emoji) in [
            ("laughing", "😆"),
            ("shrug", "🤷"),
            ("party", "🎉"),
            ("tada", "🎉"),
            ("joy", "😂"),
            ("+1", "👍"),
            ("-1", "👎"),
            ("100", "💯"),
            ("slightly_smiling_face", "🙂"),
            ("hugs", "🤗"),
            ("facepalm", "🤦"),
            ("heart", "❤️"),
            ("white_check_mark", "✅"),
        ] {
            assert_eq!(lookup(code), Some(emoji), "{code}");
        }
        assert_eq!(expand(":laughing: :shrug: :party:"), "😆 🤷 🎉");
    }

    #[test]
    fn the_table_is_sorted_without_duplicates_and_every_entry_is_one_emoji() {
        for pair in SHORTCODES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
        for (code, emoji) in SHORTCODES {
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_+-".contains(&b)),
                "{code}"
            );
            assert!(is_one_emoji(emoji), ":{code}: is {emoji:?}");
            assert_eq!(lookup(code), Some(*emoji));
        }
    }

    #[test]
    fn a_reaction_is_one_emoji_or_its_shortcode() {
        assert_eq!(reaction(":thumbsup:").unwrap(), "👍");
        assert_eq!(reaction("🦖").unwrap(), "🦖");
        for one in ["👍🏽", "🇫🇷", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "👩‍👩‍👧‍👦", "#️⃣", "1⃣", "❤"]
        {
            assert!(reaction(one).is_ok(), "{one}");
        }
        for not in [
            "hello",
            "👍👍",
            "👍 ok",
            ":nope:",
            "",
            "a",
            "1",
            "🇫",
            "\u{200D}",
            "🏽",
            "👍\u{200D}",
        ] {
            let err = reaction(not).unwrap_err().to_string();
            assert!(
                err.contains("/emoji") && !err.contains('\n'),
                "{not}: {err}"
            );
        }
    }

    #[test]
    fn the_list_shows_each_emoji_with_its_codes_within_80_columns() {
        let all = listing(None);
        for (code, _) in SHORTCODES {
            assert!(all.contains(&format!(":{code}:")), "{code}");
        }
        assert!(all.contains("👍 :+1: :thumbsup:"), "{all}");
        // As a terminal shows it: each emoji two columns wide.
        let mut glyphs: Vec<&str> = SHORTCODES.iter().map(|(_, e)| *e).collect();
        glyphs.sort_by_key(|e| std::cmp::Reverse(e.len()));
        for row in all.lines() {
            let shown = glyphs
                .iter()
                .fold(row.to_owned(), |r, e| r.replace(e, "EE"));
            assert!(shown.chars().count() <= 80, "{row}");
        }
        let hearts = listing(Some("heart"));
        assert!(hearts.contains("💔 :broken_heart:"), "{hearts}");
        assert!(!hearts.contains(":joy:"), "{hearts}");
        assert!(listing(Some("zzzz")).starts_with("no shortcode holds 'zzzz'"));
    }
}

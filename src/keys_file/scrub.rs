//! Keeping keys out of keys-file errors: every run of 8 or more characters of a key found
//! in the input is cut out of a message as `…`.

use std::collections::HashMap;

use zeroize::Zeroizing;

/// Shortest run of a secret that an error must not repeat.
const SCRUB_WINDOW: usize = 8;

/// Every `ark_live_`/`ark_test_` word in `text`, by the part after the prefix.
fn prefixed_words(text: &str, out: &mut Vec<Zeroizing<String>>) {
    for prefix in ["ark_live_", "ark_test_"] {
        for (i, _) in text.match_indices(prefix) {
            let rest = &text[i + prefix.len()..];
            let n = rest.bytes().take_while(u8::is_ascii_alphanumeric).count();
            out.push(Zeroizing::new(rest[..n].to_owned()));
        }
    }
}

/// The secrets of a keys file's text: every `ark_live_`/`ark_test_` word anywhere in it,
/// and every string given as a `key` (`keys`).
pub(super) fn secrets_in<'a>(
    json: &str,
    keys: impl IntoIterator<Item = &'a str>,
) -> Vec<Zeroizing<String>> {
    let mut out = Vec::new();
    prefixed_words(json, &mut out);
    out.extend(keys.into_iter().map(|k| Zeroizing::new(k.to_owned())));
    out.retain(|s| s.len() >= SCRUB_WINDOW);
    out
}

/// The secrets of one entry: its `key`, and every `ark_live_`/`ark_test_` word in its other
/// strings.
pub(super) fn secrets_of(key: Option<&str>, strings: &[&str]) -> Vec<Zeroizing<String>> {
    let mut out = Vec::new();
    for s in strings {
        prefixed_words(s, &mut out);
    }
    out.extend(key.map(|k| Zeroizing::new(k.to_owned())));
    out.retain(|s| s.len() >= SCRUB_WINDOW);
    out
}

/// Replaces every part of `text` that repeats 8+ characters of a secret with `…`.
///
/// Linear in the secrets' total length: the message (short) is indexed by its 8-byte
/// windows, and each secret's windows are looked up in it.
pub(super) fn scrub_text(text: &str, secrets: &[Zeroizing<String>]) -> String {
    if secrets.is_empty() {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut at: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (i, w) in bytes.windows(SCRUB_WINDOW).enumerate() {
        at.entry(w).or_default().push(i);
    }
    let mut hidden = vec![false; bytes.len()];
    for secret in secrets {
        for window in secret.as_bytes().windows(SCRUB_WINDOW) {
            for &start in at.get(window).into_iter().flatten() {
                hidden[start..start + SCRUB_WINDOW].fill(true);
            }
        }
    }
    if !hidden.contains(&true) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_hidden = false;
    for (i, c) in text.char_indices() {
        if hidden[i..i + c.len_utf8()].contains(&true) {
            if !in_hidden {
                out.push('…');
            }
            in_hidden = true;
        } else {
            out.push(c);
            in_hidden = false;
        }
    }
    out
}

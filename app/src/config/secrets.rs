//! Which configuration values are secrets (the admin token), and the command line as it may be echoed to the console or an error: every secret word's value replaced by `<redacted>`.

use core::fmt;

/// What stands in for a secret value wherever configuration is echoed.
pub const REDACTED: &str = "<redacted>";

/// Command-line words whose value is a secret.
const SECRET_WORDS: &[&str] = &["admin.token"];

/// Keys of the configuration file whose value is a secret (within their table).
const SECRET_FILE_KEYS: &[&str] = &["token"];

/// Whether the command-line word `key` (before its `=`) holds a secret.
pub fn is_secret_word(key: &str) -> bool {
    SECRET_WORDS.contains(&key)
}

/// Whether the file key `key` (as written on its line, without its table) holds a secret.
pub(super) fn is_secret_file_key(key: &str) -> bool {
    SECRET_FILE_KEYS.contains(&key)
}

/// `line` with the value of every secret word replaced by [`REDACTED`]; everything else,
/// spacing included, as given (the boot log prints the command line so that an operator can
/// see what the machine was started with, never the token that guards its changes). A
/// `Display` value rather than a `String`: the boot log prints it before the heap exists.
pub fn redacted_command_line(line: &str) -> RedactedCommandLine<'_> {
    RedactedCommandLine { line }
}

/// See [`redacted_command_line`].
pub struct RedactedCommandLine<'a> {
    line: &'a str,
}

impl fmt::Display for RedactedCommandLine<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.line;
        while !rest.is_empty() {
            let spaces = rest.len() - rest.trim_start().len();
            formatter.write_str(&rest[..spaces])?;
            rest = &rest[spaces..];
            let word_length = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = &rest[..word_length];
            match word.split_once('=') {
                Some((key, value)) if is_secret_word(key) && !value.is_empty() => {
                    write!(formatter, "{key}={REDACTED}")?
                }
                _ => formatter.write_str(word)?,
            }
            rest = &rest[word_length..];
        }
        Ok(())
    }
}

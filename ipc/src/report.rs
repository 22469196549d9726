//! Error text for people: an error and its causes on one line.

use std::error::Error;

/// `error: cause: cause …`, leaving out a cause whose text the message
/// already shows (many errors print their source and also return it from
/// [`Error::source`], so a plain walk would repeat it).
///
/// ```
/// let io = std::io::Error::other("disk full");
/// assert_eq!(airlift_ipc::report::chain_text(&io), "disk full");
/// ```
pub fn chain_text(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {source}")]
    struct Repeats {
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Hides {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn causes_appear_once() {
        let e = Repeats { source: std::io::Error::other("inner") };
        assert_eq!(chain_text(&e), "outer: inner");
        let e = Hides { source: std::io::Error::other("inner") };
        assert_eq!(chain_text(&e), "outer: inner");
    }
}

//! Small English helpers for compositional captions.

/// "a" or "an" for the word that follows.
pub(crate) fn article(next_word: &str) -> &'static str {
    match next_word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

/// `a`, `a and b`, `a, b and c`.
pub(crate) fn join_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// "one", "two", … for small counts.
pub(crate) fn count_word(n: usize) -> String {
    const WORDS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    WORDS
        .get(n)
        .map_or_else(|| n.to_string(), |w| (*w).to_owned())
}

/// `singular` for one, `plural` otherwise.
pub(crate) fn plural(n: usize, singular: &'static str, plural: &'static str) -> &'static str {
    if n == 1 {
        singular
    } else {
        plural
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_articles_read_as_english() {
        let items = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(join_list(&items(&["x"])), "x");
        assert_eq!(join_list(&items(&["x", "y"])), "x and y");
        assert_eq!(join_list(&items(&["x", "y", "z"])), "x, y and z");
        assert_eq!(article("orange"), "an");
        assert_eq!(article("small"), "a");
        assert_eq!(count_word(3), "three");
        assert_eq!(count_word(12), "12");
    }
}

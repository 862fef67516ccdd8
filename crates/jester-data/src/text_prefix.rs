//! How much of a text can matter to its first tokens. Tokenisers are not linear in their input
//! (the `tokenizers` BPE trainer merges inside a word in time quadratic in its length), so a
//! multi-megabyte caption is cut to a prefix before it reaches one.

/// The start of `text` worth `budget` characters, counting each whitespace run as one (the
/// normalisers fold runs, so they cannot be what fills T tokens). It is cut before a whitespace
/// run where one starts in the second half of the budget, so no word is split; else inside the
/// word that crosses the budget, which then fills at least half of it. The whole text when it is
/// within budget. Reads no further than the budget reaches.
pub(crate) fn prefix(text: &str, budget: usize) -> &str {
    let mut spent = 0;
    // The latest whitespace run: where it starts, and what had been spent there.
    let (mut run_start, mut run_spent) = (0, 0);
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if !in_space {
                (run_start, run_spent, in_space) = (i, spent, true);
                spent += 1;
            }
            continue;
        }
        if spent >= budget {
            let at = if in_space || run_spent >= spent / 2 {
                run_start
            } else {
                i
            };
            return &text[..at];
        }
        in_space = false;
        spent += 1;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::prefix;

    #[test]
    fn cuts_before_whitespace_and_counts_runs_once() {
        assert_eq!(prefix("a dog on the beach", 100), "a dog on the beach");
        assert_eq!(prefix("a dog on the beach", 7), "a dog");
        assert_eq!(prefix("a dog  \n\t on the beach", 9), "a dog  \n\t on");
        assert_eq!(prefix("    \n   a dog", 3), "    \n   a");
        // No whitespace in the second half: cut inside the word, at a char boundary.
        assert_eq!(prefix("ab cdefghijkl", 6), "ab cde");
        assert_eq!(prefix("日本語のキャプション", 4), "日本語の");
        assert_eq!(prefix("ab 日本語のキャプション", 6), "ab 日本語");
        assert_eq!(prefix("", 0), "");
        assert_eq!(prefix("abc", 0), "");
    }
}

//! Logging to stderr through tracing, filtered by `JESTER_LOG` (default `info`). Colour only on a
//! terminal and without `NO_COLOR`, so logs saved to a file or pipe carry no escape codes.
//! Libraries logging through the `log` crate are demoted to debug: usvg warns about every SVG
//! attribute it ignores (46,000 lines for 3,783 OpenMoji files), and such a sample still renders;
//! one that cannot be used fails to decode and is counted in the skip summary instead.
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber and the `log` bridge; call once, first thing.
pub fn init() {
    let filter = EnvFilter::try_from_env("JESTER_LOG").unwrap_or_else(|_| "info".into());
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .without_time()
        .with_target(false)
        .finish();
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        return;
    }
    if log::set_boxed_logger(Box::new(Demoted)).is_ok() {
        log::set_max_level(log_level(tracing::level_filters::LevelFilter::current()));
    }
}

/// ANSI colour: on a terminal, unless `NO_COLOR` is set to anything non-empty (no-color.org).
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The level a `log` record is shown at: never above debug.
fn demoted(level: log::Level) -> log::Level {
    level.max(log::Level::Debug)
}

/// The `log` records worth building when tracing shows up to `shown`: none below debug, so the
/// default level costs libraries nothing.
fn log_level(shown: tracing::level_filters::LevelFilter) -> log::LevelFilter {
    use tracing::level_filters::LevelFilter as Shown;
    if shown >= Shown::TRACE {
        log::LevelFilter::Trace
    } else if shown >= Shown::DEBUG {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Off
    }
}

/// Forwards `log` records to tracing at their [`demoted`] level.
struct Demoted;

impl log::Log for Demoted {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        log::max_level() >= demoted(metadata.level())
    }

    fn log(&self, record: &log::Record) {
        let level = demoted(record.level());
        let demoted = log::Record::builder()
            .level(level)
            .target(record.target())
            .args(*record.args())
            .module_path(record.module_path())
            .file(record.file())
            .line(record.line())
            .build();
        tracing_log::format_trace(&demoted).ok();
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::level_filters::LevelFilter;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }

    #[test]
    fn library_warnings_are_debug_and_not_built_at_the_default_level() {
        assert_eq!(demoted(log::Level::Error), log::Level::Debug);
        assert_eq!(demoted(log::Level::Warn), log::Level::Debug);
        assert_eq!(demoted(log::Level::Trace), log::Level::Trace);
        assert_eq!(log_level(LevelFilter::INFO), log::LevelFilter::Off);
        assert_eq!(log_level(LevelFilter::DEBUG), log::LevelFilter::Debug);
        assert_eq!(log_level(LevelFilter::TRACE), log::LevelFilter::Trace);
    }
}

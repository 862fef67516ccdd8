//! The binary's log on a pipe: no colour codes, and no library warnings about samples that decode
//! anyway (usvg warned once per ignored SVG attribute: 46,000 lines on 3,783 OpenMoji files).
use std::path::PathBuf;
use std::process::{Command, Output};

use jester_data::{RawSample, ShardWriter};

/// An OpenMoji file's shape: its `marker-end` names a marker the file does not define.
const BAD_MARKER: &str = r##"<svg id="emoji" viewBox="0 0 72 72" xmlns="http://www.w3.org/2000/svg">
  <rect x="5" y="17" width="62" height="38" fill="#d22f27"/>
  <path fill="none" stroke="#000" stroke-width="2" d="m10 10h50" marker-end="url(#Dot)"/>
</svg>"##;

fn shards(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jester-logging-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut writer = ShardWriter::new(&dir.join("in"), 100).unwrap();
    for i in 0..20 {
        let sample = RawSample::new(format!("{i:04}"))
            .with("svg", BAD_MARKER)
            .with("txt", format!("flag number {i}"));
        writer.write(&sample).unwrap();
    }
    writer.finish().unwrap();
    dir
}

/// Runs `jester` with stdout and stderr piped, `JESTER_LOG` as given and no `NO_COLOR`.
fn jester(args: &[&str], log: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jester"));
    command.args(args).env_remove("NO_COLOR");
    match log {
        Some(filter) => command.env("JESTER_LOG", filter),
        None => command.env_remove("JESTER_LOG"),
    };
    let out = command.output().expect("run jester");
    assert!(
        out.status.success(),
        "jester {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn logs_on_a_pipe_carry_no_colour_codes() {
    let dir = std::env::temp_dir().join(format!("jester-logging-{}-colour", std::process::id()));
    let args = [
        "data",
        "embeddings",
        "--out",
        dir.to_str().unwrap(),
        "--set",
        "examples=64",
        "--set",
        "dim=8",
        "--set",
        "clusters=4",
    ];
    let stderr = String::from_utf8(jester(&args, None).stderr).unwrap();
    assert!(stderr.contains("INFO"), "an INFO line to check:\n{stderr}");
    assert!(
        !stderr.contains("\x1b["),
        "colour codes on a pipe:\n{stderr:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn svg_library_warnings_are_debug_lines_not_warnings() {
    let dir = shards("svg");
    let input = dir.join("in");
    let args = ["shards", "inspect", input.to_str().unwrap()];
    let out = jester(&args, None);
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    // The samples render (the bad attribute is ignored), so none is skipped…
    assert!(stdout.contains("samples             20"), "{stdout}");
    assert!(stdout.contains("no samples skipped"), "{stdout}");
    // …and the default level shows nothing of the library's complaint.
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert!(!stderr.contains("marker-end"), "{stderr}");
    // It is still there for whoever asks for debug lines.
    let debug = String::from_utf8(jester(&args, Some("debug")).stderr).unwrap();
    assert!(
        debug.contains("DEBUG") && debug.contains("marker-end"),
        "{debug}"
    );
    assert!(!debug.contains("WARN"), "{debug}");
    let _ = std::fs::remove_dir_all(&dir);
}

//! Rules of the workspace's sources that no compiler checks: every
//! function's `main.rs` stays a thin start-up, and the counters table's
//! attribute names and sort-key prefixes have one owner,
//! `functions/jobs-aws/src/counters.rs`.

use std::fs;
use std::path::{Path, PathBuf};

/// The longest a function's `main.rs` may be: tracing, clients built once,
/// `run(service_fn(handler))`.
const MAIN_RS_MAX_LINES: usize = 30;

/// The one place the counters table's layout is written down.
const COUNTERS_OWNER: &str = "functions/jobs-aws/src/counters.rs";

/// Definitions elsewhere that share a value with the counters' names but name
/// something else: the jobs table's own `updatedAt` attribute.
const OTHER_TABLES: &[(&str, &str)] = &[("functions/jobs-aws/src/dynamodb.rs", "updatedAt")];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace()).unwrap().to_string_lossy().replace('\\', "/")
}

/// The `.rs` files under the workspace's crate directories.
fn rust_sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !matches!(path.file_name().and_then(|n| n.to_str()), Some("target" | "node_modules" | ".git")) {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    for dir in ["functions", "local", "cli", "bench"] {
        let dir = workspace().join(dir);
        if dir.is_dir() {
            walk(&dir, &mut out);
        }
    }
    out.sort();
    out
}

/// The code of a source that is not a test: integration tests and
/// `moto_tests.rs` are dropped whole, a file's `#[cfg(test)] mod ... {`
/// (which closes the file, by the project's convention) from its start.
/// Tests may spell stored formats out: that is how they check them.
fn non_test_code(path: &Path) -> Option<String> {
    let rel = relative(path);
    if rel.contains("/tests/") || rel.ends_with("/moto_tests.rs") {
        return None;
    }
    let text = fs::read_to_string(path).unwrap();
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines.peek().is_some_and(|next| next.trim_start().starts_with("mod ") && next.trim_end().ends_with('{'))
        {
            break;
        }
        code.push_str(line);
        code.push('\n');
    }
    Some(code)
}

/// `(name, value)` of every `const NAME: &str = "value";` in `code`.
fn str_consts(code: &str) -> Vec<(String, String)> {
    code.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line.strip_prefix("const ").or_else(|| line.split_once(" const ").map(|(_, r)| r))?;
            let (name, rest) = rest.split_once(':')?;
            let (ty, value) = rest.split_once('=')?;
            if !matches!(ty.trim(), "&str" | "&'static str") {
                return None;
            }
            let value = value.trim().strip_suffix(';')?.trim().strip_prefix('"')?.strip_suffix('"')?;
            Some((name.trim().to_owned(), value.to_owned()))
        })
        .collect()
}

#[test]
fn every_function_main_rs_is_at_most_30_lines() {
    let mut seen = Vec::new();
    for entry in fs::read_dir(workspace().join("functions")).unwrap() {
        let main = entry.unwrap().path().join("src/main.rs");
        if !main.is_file() {
            continue;
        }
        let lines = fs::read_to_string(&main).unwrap().lines().count();
        assert!(
            lines <= MAIN_RS_MAX_LINES,
            "{} has {lines} lines, over {MAIN_RS_MAX_LINES}: main.rs only sets up tracing, builds the clients once \
             and runs the handler; move configuration and logic to the handler (docs/architecture.md)",
            relative(&main)
        );
        seen.push(main.parent().unwrap().parent().unwrap().file_name().unwrap().to_string_lossy().into_owned());
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "authorizer",
            "batch-simulator",
            "job-commands",
            "job-processor",
            "job-status",
            "object-counter",
            "webhook-sender"
        ]
    );
}

#[test]
fn the_counters_table_layout_is_defined_in_one_place() {
    let owner = workspace().join(COUNTERS_OWNER);
    let layout: Vec<String> = str_consts(&non_test_code(&owner).unwrap()).into_iter().map(|(_, v)| v).collect();
    for expected in ["bucket", "counter", "created", "updatedAt", "seen", "revision", "counter#", "object#"] {
        assert!(layout.iter().any(|v| v == expected), "{COUNTERS_OWNER} no longer defines {expected:?}");
    }
    let prefixes: Vec<&String> = layout.iter().filter(|v| v.ends_with('#')).collect();
    let mut found = Vec::new();
    for path in rust_sources() {
        let rel = relative(&path);
        if rel == COUNTERS_OWNER {
            continue;
        }
        let Some(code) = non_test_code(&path) else { continue };
        for (name, value) in str_consts(&code) {
            if layout.contains(&value) && !OTHER_TABLES.contains(&(rel.as_str(), value.as_str())) {
                found.push(format!("{rel}: const {name} = {value:?}"));
            }
        }
        for prefix in &prefixes {
            if code.contains(&format!("\"{prefix}")) {
                found.push(format!("{rel}: a string starting with the sort-key prefix {prefix:?}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the counters table's names and sort keys belong to {COUNTERS_OWNER} (use jobs_aws::counters::attr and \
         sort_key); also defined in:\n{}",
        found.join("\n")
    );
}

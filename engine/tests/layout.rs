//! The engine's layout holds (docs/architecture.md): its rooms import only
//! downwards, every module outside the FFI fence and the two realtime OS/SIMD
//! spots forbids `unsafe`, and no source file in the workspace is over 800
//! lines. Read from the sources, so a change that breaks a rule fails here.

use std::path::{Path, PathBuf};

/// The rooms of `engine/src`, lowest first: a room may use its own modules
/// and those of lower rooms, never a higher one. `untrusted` is a leaf any
/// room may use. Rooms of equal rank (`sys`, `dsp`) may not use each other.
const ROOMS: &[(&str, u32)] = &[
    ("untrusted", 0),
    ("sys", 1),
    ("dsp", 1),
    ("rt", 2),
    ("graph", 3),
    ("net", 4),
    ("archive", 5),
    ("workers", 6),
    ("assembly", 7),
    ("builder", 8),
    ("flow", 8),
    ("node", 9),
    ("lib", 10),
];

/// Where `unsafe` is allowed: the FFI fence, and the SIMD kernels and the
/// realtime OS calls (clocks, scheduling) of the realtime core.
const UNSAFE_ALLOWED: &[&str] = &["sys/", "dsp/mix.rs", "rt/clock.rs", "rt/thread.rs"];

/// Rooms holding one of those spots: their module file denies `unsafe`.
const DENY_ROOMS: &[&str] = &["dsp/mod.rs", "rt/mod.rs"];

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target" || n == ".git" || n == "fuzz") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The room of a file under `engine/src` (its first path component, or its
/// stem for a top-level file).
fn room_of(rel: &Path) -> String {
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

fn rank(room: &str) -> u32 {
    ROOMS.iter().find(|(r, _)| *r == room).unwrap_or_else(|| panic!("room {room} is not in ROOMS")).1
}

/// The rooms a file's code names through `crate::<room>`, comments left out.
fn uses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim_start).filter(|l| !l.starts_with("//")) {
        for part in line.split("crate::").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn rooms_import_only_downwards() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src()).unwrap();
        let room = room_of(rel);
        let text = std::fs::read_to_string(file).unwrap();
        for used in uses(&text) {
            if used == room || ROOMS.iter().all(|(r, _)| *r != used) {
                continue; // its own room, or a crate item such as `crate::VERSION`
            }
            let (from, to) = (rank(&room), rank(&used));
            if to >= from && used != "untrusted" {
                wrong.push(format!("{} ({room}) uses crate::{used}", rel.display()));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "upward or sideways imports:\n{}", wrong.join("\n"));
}

#[test]
fn unsafe_code_is_forbidden_outside_the_ffi_fence_and_the_realtime_spots() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut missing = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src()).unwrap().to_string_lossy().replace('\\', "/");
        if rel == "lib.rs" || UNSAFE_ALLOWED.iter().any(|a| rel.starts_with(a)) {
            continue;
        }
        if DENY_ROOMS.contains(&rel.as_str()) {
            // A room holding an allowed spot denies unsafe code; only the
            // spot itself allows it again.
            let text = std::fs::read_to_string(file).unwrap();
            assert!(text.contains("#![deny(unsafe_code)]"), "{rel} must deny unsafe code");
            continue;
        }
        // The attribute on the file or on a parent module's file covers it.
        let mut covered = false;
        let mut dir = Path::new(&rel).to_path_buf();
        loop {
            let candidates = if dir == Path::new(&rel) {
                vec![src().join(&rel)]
            } else {
                vec![src().join(&dir).join("mod.rs"), src().join(dir.with_extension("rs"))]
            };
            for c in candidates {
                if std::fs::read_to_string(&c).is_ok_and(|t| t.contains("#![forbid(unsafe_code)]")) {
                    covered = true;
                }
            }
            if covered || !dir.pop() || dir.as_os_str().is_empty() {
                break;
            }
        }
        if !covered {
            missing.push(rel);
        }
    }
    missing.sort();
    assert!(missing.is_empty(), "without #![forbid(unsafe_code)]:\n{}", missing.join("\n"));
}

#[test]
fn no_source_file_in_the_workspace_is_over_800_lines() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut files = Vec::new();
    for dir in ["engine", "ctl", "ipc", "benches", "srt-sys"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).ok()?.lines().count();
            (n > 800).then(|| format!("{} ({n} lines)", f.strip_prefix(&root).unwrap().display()))
        })
        .collect();
    long.sort();
    assert!(long.is_empty(), "over 800 lines:\n{}", long.join("\n"));
}

#[test]
fn the_spool_layout_is_written_down_once() {
    // Folder and file names of the spool are literals only in
    // ipc/src/spool_layout.rs; the engine and ctld use its constants.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut files = Vec::new();
    for dir in ["engine/src", "engine/daemon/src", "ctl/src", "ipc/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let literals = [
        "join(\"quarantine\")",
        "== \"quarantine\"",
        "\"retained\"",
        "\".engine.lock\"",
        "\".sequence\"",
        "\".lock\"",
        ".ts.partial\"",
        "{y:04}/{m:02}",
        "format!(\"{y:04}\")",
    ];
    let mut found = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        if rel.ends_with("spool_layout.rs") || rel.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        // Unit tests at the end of a file may spell paths out.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for lit in literals {
            if code.lines().any(|l| !l.trim_start().starts_with("//") && l.contains(lit)) {
                found.push(format!("{rel}: {lit}"));
            }
        }
    }
    assert!(found.is_empty(), "spool layout restated outside ipc/src/spool_layout.rs:\n{}", found.join("\n"));
}

//! Tests of the queue's ordering and of keys moving between prefixes.

use super::attempt::rekey;
use super::fair_order;
use std::path::{Path, PathBuf};

#[test]
fn jobs_come_into_the_queue_in_turn_oldest_first() {
    let root = Path::new("/spool");
    let paths: Vec<PathBuf> = ["a/1.json", "a/2.json", "a/3.json", "b/1.json", "c/1.json", "c/2.json"]
        .iter()
        .map(|p| root.join(p))
        .collect();
    let order: Vec<String> = fair_order(root, paths.iter())
        .into_iter()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert_eq!(order, ["a/1.json", "b/1.json", "c/1.json", "a/2.json", "c/2.json", "a/3.json"]);
}

#[test]
fn keys_move_between_prefixes() {
    assert_eq!(rekey("a/j/2025/x.ts", "a", "b/c/"), "b/c/j/2025/x.ts");
    assert_eq!(rekey("j/x.ts", "", "b"), "b/j/x.ts");
    assert_eq!(rekey("a/j/x.ts", "a/", ""), "j/x.ts");
}

//! Under `mlockall`, memory that worker threads free goes back to the system
//! once the node returns freed memory, because `airlift-engine` keeps malloc
//! to one arena (`rt::thread::one_malloc_arena`, first thing in `main`): a
//! thread arena's own trim is refused on locked pages, and glibc then loses
//! track of those pages. No test harness: like the engine's `main`, this
//! one sets the arena before any other thread exists.

use airlift_engine::rt::thread::{RealtimeRequest, apply, one_malloc_arena, return_freed_memory};

/// Anonymous resident memory of this process, KiB.
fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() {
    one_malloc_arena();
    memory_freed_by_threads_under_mlockall_is_returned();
    println!("test memory_freed_by_threads_under_mlockall_is_returned ... ok");
}

fn memory_freed_by_threads_under_mlockall_is_returned() {
    let report = apply(&RealtimeRequest { cpu: None, fifo_priority: None, lock_memory: true });
    if !report.memory_locked {
        // Without the lock, frees are returned by malloc itself; nothing to
        // show here (a normal user under the default memlock limit).
        eprintln!("memory not locked ({:?}); skipping", report.refusals);
        return;
    }
    let before = rss_anon_kib();
    // Eight threads at once, as flows' and pull jobs' workers are, each
    // touching 4 MiB in 4 KiB allocations and freeing them before it ends.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(|| {
                let blocks: Vec<Vec<u8>> = (0..1024).map(|i| vec![i as u8; 4096]).collect();
                std::hint::black_box(&blocks);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let peak_freed = rss_anon_kib();
    return_freed_memory();
    let after = rss_anon_kib();
    println!(
        "anonymous resident: {before} KiB before, {peak_freed} KiB once freed, {after} KiB after the return"
    );
    assert!(
        after < before + 4 * 1024,
        "32 MiB freed by eight threads under mlockall: {before} KiB before, {after} KiB after the return"
    );
}

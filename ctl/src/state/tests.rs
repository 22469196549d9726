//! Tests of the runtime state: merging into the desired state, clashing
//! pull jobs, the file's round trip and a corrupt file.

use super::*;

fn config(text: &str) -> DesiredState {
    crate::config::parse(text, "t.toml", Path::new("/tmp"), &crate::config::Overrides::default())
        .unwrap()
        .state
}

const BASE: &str = r#"
[[flow]]
name = "main"
[[flow.input]]
name = "mic"
gain_db = -3.0
producer = { test_signal = { kind = "sine", frequency = 1000.0 } }
[[flow.input]]
name = "bed"
producer = { test_signal = { kind = "silence" } }
[[flow.output]]
name = "void"
consumer = "null"

[[flow]]
name = "rec"
[[flow.input]]
name = "mic"
producer = { test_signal = { kind = "silence" } }
[[flow.output]]
name = "seg"
consumer = { encoded = { codec = "mp2", sink = { segments = { job = "rec", target_seconds = 2 } } } }

[[pull]]
name = "cam"
source = { mode = { listener = { port = 30001 } }, allow_unencrypted = true }
segments = { job = "cam", target_seconds = 2 }
"#;

fn n(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn runtime_pull(name: &str, port: u16) -> PullSpec {
    let mut p = config(BASE).pulls[0].clone();
    p.name = n(name);
    p.segments.job = n(name);
    p.source.mode =
        airlift_ipc::spec::SrtMode::Listener { port: airlift_ipc::units::Port::new(port).unwrap() };
    p
}

#[test]
fn overrides_merge_into_the_desired_state() {
    let cfg = config(BASE);
    let mut rt = RuntimeState::default();
    assert!(rt.set_input(&cfg, &n("main"), &n("mic"), InputSetting::Mute(true)));
    assert!(rt.set_input(&cfg, &n("main"), &n("bed"), InputSetting::Gain(GainDb::new(-10.0).unwrap())));
    // The configured value is no override.
    assert!(!rt.set_input(&cfg, &n("main"), &n("mic"), InputSetting::Gain(GainDb::new(-3.0).unwrap())));
    rt.stopped.insert(n("main"));
    rt.pulls.push(runtime_pull("live", 30002));
    let state = rt.apply(&cfg);
    let main = &state.flows[0];
    assert!(main.inputs[0].muted && main.inputs[0].gain_db.get() == -3.0);
    assert_eq!(main.inputs[1].gain_db.get(), -10.0);
    assert_eq!(state.stopped, vec![n("main")]);
    assert_eq!(state.pulls.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["cam", "live"]);
    assert!(state.validate().is_ok());
    // Back to the configured value: the override is gone.
    assert!(rt.set_input(&cfg, &n("main"), &n("mic"), InputSetting::Mute(false)));
    assert_eq!(rt.rows(&cfg).iter().filter(|r| r.key == "muted").count(), 0);

    rt.paused_pulls.insert(n("cam"));
    rt.policy_stop = true;
    let state = rt.apply(&cfg);
    assert_eq!(state.stopped, vec![n("main"), n("rec")]);
    assert!(state.pulls.is_empty());
    // Ports stay held by every runtime job, running or not.
    assert_eq!(rt.holding(&cfg).pulls.len(), 2);
    let rows = rt.rows(&cfg);
    let shown: Vec<(&str, &str, &str, &str, &str)> = rows
        .iter()
        .map(|r| (r.flow.as_str(), r.subject.as_str(), r.key.as_str(), r.runtime.as_str(), r.config.as_str()))
        .collect();
    assert!(shown.contains(&("main", "bed", "gain_db", "-10", "0")), "{shown:?}");
    assert!(shown.contains(&("main", "", "state", "stopped", "running")), "{shown:?}");
    assert!(shown.contains(&("rec", "", "state", "stopped by the spool policy", "running")), "{shown:?}");
    assert!(shown.contains(&("", "pull cam", "state", "stopped", "running")), "{shown:?}");
    assert!(shown.iter().any(|r| r.1 == "pull live" && r.3.contains(":30002")), "{shown:?}");

    // Reset of one flow, then of all but the policy's stop.
    assert_eq!(rt.reset(Some(&n("main"))), 2);
    assert_eq!(rt.reset(None), 2);
    assert!(rt.policy_stop && rt.pulls.is_empty() && rt.paused_pulls.is_empty());
}

#[test]
fn a_value_the_file_changed_wins_over_the_operator() {
    let old = config(BASE);
    let mut rt = RuntimeState::default();
    rt.set_input(&old, &n("main"), &n("mic"), InputSetting::Gain(GainDb::new(-20.0).unwrap()));
    rt.set_input(&old, &n("main"), &n("mic"), InputSetting::Mute(true));
    rt.set_input(&old, &n("main"), &n("bed"), InputSetting::Pan(Pan::new(0.5).unwrap()));
    rt.set_input(&old, &n("rec"), &n("mic"), InputSetting::Mute(true));
    rt.stopped.insert(n("main"));
    rt.paused_pulls.insert(n("cam"));
    rt.pulls.push(runtime_pull("live", 30002));
    rt.pulls.push(runtime_pull("rec", 30003));

    // The file changes mic's gain (not its mute), the pull's latency,
    // drops flow rec and adds a pull job named like the runtime one.
    let text = BASE
        .replace("gain_db = -3.0", "gain_db = -6.0")
        .replace("port = 30001 } }", "port = 30001 } }, latency_ms = 200")
        .replace("[[flow]]\nname = \"rec\"", "[[flow]]\nname = \"other\"")
        .replace("job = \"rec\"", "job = \"other\"")
        + "\n[[pull]]\nname = \"live\"\nsource = { mode = { listener = { port = 30005 } }, allow_unencrypted = true }\nsegments = { job = \"live\", target_seconds = 2 }\n";
    let new = config(&text);
    let dropped = rt.reload(&old, &new);
    let mic = rt.inputs[&n("main")][&n("mic")].clone();
    assert_eq!(mic.gain_db, None, "the file changed the gain: {dropped:?}");
    assert_eq!(mic.muted, Some(true), "the file kept the mute: the operator's holds");
    assert_eq!(rt.inputs[&n("main")][&n("bed")].pan.map(Pan::get), Some(0.5));
    assert!(!rt.inputs.contains_key(&n("rec")), "flow rec is gone");
    assert!(rt.stopped.contains(&n("main")));
    assert!(rt.paused_pulls.is_empty(), "the file changed pull cam: it runs");
    assert_eq!(rt.pulls.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["rec"]);
    for needle in
        ["gain_db from -3 to -6", "flow rec is no longer configured", "pull job cam", "runtime pull job live"]
    {
        assert!(dropped.iter().any(|d| d.contains(needle)), "{needle} not in {dropped:?}");
    }
    let state = rt.apply(&new);
    assert_eq!(state.flows[0].inputs[0].gain_db.get(), -6.0);
    assert!(state.flows[0].inputs[0].muted);
    assert!(state.validate().is_ok(), "{:?}", state.validate());
}

#[test]
fn runtime_pulls_that_clash_are_dropped() {
    let cfg = config(BASE);
    let mut rt = RuntimeState::default();
    let mut clash = runtime_pull("x", 30007);
    clash.segments.job = n("rec");
    rt.pulls = vec![
        clash,
        runtime_pull("quarantine", 30008),
        runtime_pull("ok", 30009),
        runtime_pull("port", 30001),
        runtime_pull("again", 30009),
    ];
    let dropped = rt.retain_known(&cfg);
    assert_eq!(rt.pulls.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["ok"], "{dropped:?}");
    assert_eq!(dropped.len(), 4, "{dropped:?}");
    assert!(dropped[2].contains("port 30001 is now used by pull cam"), "{dropped:?}");
    assert!(dropped[3].contains("port 30009 is now used by pull ok"), "{dropped:?}");
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("airlift-state-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_file_round_trips_atomically() {
    let dir = temp_dir("roundtrip");
    let path = dir.join("state.json");
    let cfg = config(BASE);
    assert!(load(&path).unwrap().is_none());
    let mut rt = RuntimeState::default();
    rt.set_input(&cfg, &n("main"), &n("mic"), InputSetting::Mute(true));
    rt.pulls.push(runtime_pull("live", 30002));
    save(&path, &rt).unwrap();
    save(&path, &rt).unwrap();
    let back = load(&path).unwrap().unwrap();
    assert_eq!(back, RuntimeState { format: FORMAT, ..rt.clone() });
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("state.json")], "no temporary file left");
    let restored = restore(&path, &cfg, false, 1);
    assert!(restored.problem.is_none());
    assert_eq!(restored.state.apply(&cfg), rt.apply(&cfg));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_corrupt_file_is_moved_aside_and_the_config_applies() {
    let dir = temp_dir("corrupt");
    let path = dir.join("state.json");
    let cfg = config(BASE);
    for (i, bad) in [
        "{ \"format\": 1, \"inputs\": { \"main\": { \"mic\": { \"gain_db\": 900.0 } } } }",
        "{ \"format\": 1, \"stopped\": [\"../etc\"] }",
        "{ \"format\": 99 }",
        "{ \"format\": 1, \"colour\": \"blue\" }",
        "{ \"format\": 1, \"inputs\": ",
        "\u{0}\u{1}binary",
        "",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(&path, bad).unwrap();
        let restored = restore(&path, &cfg, false, 1000 + i as u64);
        let problem = restored.problem.unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert!(problem.contains("moved aside"), "{problem}");
        assert_eq!(restored.state, RuntimeState::default());
        assert!(!path.exists());
        let aside = dir.join(format!("state.json.corrupt-{}", 1000 + i));
        assert_eq!(std::fs::read_to_string(&aside).unwrap(), *bad);
    }
    // A directory where the file should be is not read either.
    std::fs::create_dir(&path).unwrap();
    assert!(restore(&path, &cfg, false, 2000).problem.is_some());
    // The policy's stop is kept only while the spool is over its limit.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    save(&path, &RuntimeState { policy_stop: true, ..RuntimeState::default() }).unwrap();
    assert!(restore(&path, &cfg, true, 1).state.policy_stop);
    assert!(!restore(&path, &cfg, false, 1).state.policy_stop);
    std::fs::remove_dir_all(&dir).unwrap();
}

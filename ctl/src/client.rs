//! The client side of `org.airlift.Node1`, used by `airliftctl`: the proxy,
//! connection choice, error classification and the level meter display.

use std::collections::HashMap;

use zbus::proxy;
use zbus::{OwnedVariant, Variant};

/// Proxy for `org.airlift.Node1`.
#[proxy(
    interface = "org.airlift.Node1",
    default_service = "org.airlift.Node1",
    default_path = "/org/airlift/Node1"
)]
pub trait Node1 {
    /// Flows as (name, state).
    fn list_flows(&self) -> zbus::Result<Vec<(String, String)>>;
    /// Starts a flow.
    fn start_flow(&self, flow: &str) -> zbus::Result<()>;
    /// Stops a flow.
    fn stop_flow(&self, flow: &str) -> zbus::Result<()>;
    /// Sets a gain.
    fn set_gain(&self, flow: &str, input: &str, db: f64) -> zbus::Result<()>;
    /// Mutes or unmutes.
    fn set_mute(&self, flow: &str, input: &str, muted: bool) -> zbus::Result<()>;
    /// Sets a pan.
    fn set_pan(&self, flow: &str, input: &str, pan: f64) -> zbus::Result<()>;
    /// Forces an input's source (`auto`: automatic selection).
    fn select_source(&self, flow: &str, input: &str, source: &str) -> zbus::Result<()>;
    /// Starts a pull job.
    fn start_pull(&self, url: &str, options: HashMap<String, OwnedVariant>) -> zbus::Result<String>;
    /// Stops a pull job.
    fn stop_pull(&self, id: &str) -> zbus::Result<()>;
    /// Pull jobs.
    fn list_pulls(&self) -> zbus::Result<Vec<(String, String, String)>>;
    /// Status dictionary.
    fn status(&self) -> zbus::Result<HashMap<String, OwnedVariant>>;
    /// Reloads the configuration.
    fn reload(&self) -> zbus::Result<u32>;
    /// Spool files.
    fn list_segments(&self, offset: u32, limit: u32) -> zbus::Result<Vec<(String, u64)>>;
    /// Runtime values over the configuration: (flow, subject, key, runtime, config).
    fn runtime_state(&self) -> zbus::Result<Vec<(String, String, String, String, String)>>;
    /// Clears runtime values of a flow or pull job ("" for all).
    fn reset_state(&self, flow: &str) -> zbus::Result<u32>;
    /// Uploads.
    fn list_uploads(&self, offset: u32, limit: u32) -> zbus::Result<Vec<(String, u64, String)>>;
    /// Segments waiting for upload.
    #[zbus(property)]
    fn upload_backlog(&self) -> zbus::Result<u32>;
    /// Levels signal: peak and RMS per channel (empty without a meter),
    /// loudness keys only with a loudness processor; silence is −∞.
    #[zbus(signal)]
    fn levels(
        &self,
        flow: &str,
        peak_dbfs: Vec<f64>,
        rms_dbfs: Vec<f64>,
        loudness: HashMap<String, f64>,
    ) -> zbus::Result<()>;
}

/// Which bus to use.
#[derive(Debug, Clone)]
pub enum BusChoice {
    /// The system bus.
    System,
    /// The session bus.
    Session,
    /// An explicit address.
    Address(String),
}

/// How a failed call ends the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The daemon refused or failed the call: exit 1.
    Error,
    /// The daemon is not reachable: exit 3.
    Unreachable,
}

impl Failure {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Failure::Error => 1,
            Failure::Unreachable => 3,
        }
    }
}

/// Sorts a zbus error into "daemon unreachable" or "call failed", with a message.
pub fn classify(e: &zbus::Error) -> (Failure, String) {
    if let zbus::Error::FDO(fdo) = e
        && matches!(**fdo, zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_))
    {
        return (Failure::Unreachable, "airlift-ctld is not running on this bus".into());
    }
    match e {
        zbus::Error::MethodError(name, msg, _) => {
            let n = name.as_str();
            let text = msg.clone().unwrap_or_default();
            if n == "org.freedesktop.DBus.Error.ServiceUnknown"
                || n == "org.freedesktop.DBus.Error.NameHasNoOwner"
            {
                (Failure::Unreachable, "airlift-ctld is not running on this bus".into())
            } else {
                let short = n.rsplit('.').next().unwrap_or(n);
                (Failure::Error, format!("{short}: {text}"))
            }
        }
        zbus::Error::InputOutput(_) | zbus::Error::Address(_) | zbus::Error::Handshake(_) => {
            (Failure::Unreachable, format!("cannot reach the bus: {e}"))
        }
        other => (Failure::Error, other.to_string()),
    }
}

/// Connects to the chosen bus.
pub async fn connect(bus: &BusChoice) -> zbus::Result<zbus::Connection> {
    match bus {
        BusChoice::System => zbus::Connection::system().await,
        BusChoice::Session => zbus::Connection::session().await,
        BusChoice::Address(a) => zbus::connection::Builder::address(a.as_str()).build().await,
    }
}

/// Renders a status dictionary as JSON.
pub fn status_json(status: &HashMap<String, OwnedVariant>) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    let mut keys: Vec<&String> = status.keys().collect();
    keys.sort();
    for k in keys {
        let v: &Variant<'_> = &status[k];
        let j = match v {
            Variant::Bool(b) => serde_json::Value::from(*b),
            Variant::U32(n) => serde_json::Value::from(*n),
            Variant::U64(n) => serde_json::Value::from(*n),
            Variant::I64(n) => serde_json::Value::from(*n),
            Variant::Str(s) => serde_json::Value::from(s.as_str()),
            other => serde_json::Value::from(format!("{other}")),
        };
        map.insert(k.clone(), j);
    }
    serde_json::Value::Object(map)
}

/// Peak-hold level meter state for one flow.
#[derive(Debug, Default, Clone)]
pub struct MeterView {
    hold: Vec<(f64, std::time::Instant)>,
}

/// How long a peak is held.
const HOLD: std::time::Duration = std::time::Duration::from_secs(2);

/// The loudness keys of the `Levels` signal, in display order, with their labels and units.
const LOUDNESS: [(&str, &str, &str); 3] =
    [("momentary_lufs", "M", "LUFS"), ("integrated_lufs", "I", "LUFS"), ("true_peak_dbtp", "TP", "dBTP")];

impl MeterView {
    /// Renders one frame: a bar per channel (−60 … 0 dBFS) with a peak-hold
    /// mark, and a loudness line when the flow has a loudness processor
    /// (`loudness` is not empty). Only what the flow measures is shown.
    pub fn render(
        &mut self,
        flow: &str,
        peak: &[f64],
        rms: &[f64],
        loudness: &HashMap<String, f64>,
        width: usize,
    ) -> Vec<String> {
        let now = std::time::Instant::now();
        self.hold.resize(peak.len(), (f64::NEG_INFINITY, now));
        let mut lines = vec![format!("flow {flow}")];
        for (c, (&p, &r)) in peak.iter().zip(rms).enumerate() {
            let h = &mut self.hold[c];
            if p >= h.0 || now.duration_since(h.1) > HOLD {
                *h = (p, now);
            }
            let cells = |db: f64| (((db.max(-60.0) + 60.0) / 60.0) * width as f64).round() as usize;
            let filled = cells(p).min(width);
            let hold_at = cells(h.0).min(width.saturating_sub(1));
            let mut bar: Vec<char> = (0..width).map(|i| if i < filled { '#' } else { '.' }).collect();
            if h.0 > -60.0 {
                bar[hold_at] = '|';
            }
            let bar: String = bar.into_iter().collect();
            lines.push(format!("ch{c:<2} [{bar}] peak {} rms {}", level(p, "dBFS"), level(r, "dBFS")));
        }
        if let Some(line) = loudness_line(loudness) {
            lines.push(format!("loudness {line}"));
        }
        lines
    }
}

/// `M -23.0 LUFS I -23.1 LUFS TP -1.0 dBTP`, or None without loudness.
pub fn loudness_line(loudness: &HashMap<String, f64>) -> Option<String> {
    let parts: Vec<String> = LOUDNESS
        .iter()
        .filter_map(|(key, label, unit)| loudness.get(*key).map(|v| format!("{label} {}", level(*v, unit))))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// A level for people: one decimal, `-inf` for silence (−∞; also for NaN,
/// which a daemon should never send).
pub fn level(v: f64, unit: &str) -> String {
    if v.is_nan() || v == f64::NEG_INFINITY {
        format!("{:>6} {unit}", "-inf")
    } else {
        format!("{v:6.1} {unit}")
    }
}

/// A level for JSON, which has no infinity: a number, or `null` for −∞
/// (silence).
pub fn level_json(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// One `Levels` signal as a JSON object with only the fields the flow has.
pub fn levels_json(
    flow: &str,
    peak: &[f64],
    rms: &[f64],
    loudness: &HashMap<String, f64>,
) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    map.insert("flow".into(), flow.into());
    if !peak.is_empty() {
        map.insert("peak_dbfs".into(), peak.iter().copied().map(level_json).collect());
        map.insert("rms_dbfs".into(), rms.iter().copied().map(level_json).collect());
    }
    let mut keys: Vec<&String> = loudness.keys().collect();
    keys.sort();
    for k in keys {
        map.insert(k.clone(), level_json(loudness[k]));
    }
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_bars_follow_the_level() {
        let mut m = MeterView::default();
        let lufs =
            HashMap::from([("momentary_lufs".to_string(), -10.0), ("integrated_lufs".to_string(), -12.0)]);
        let loud = m.render("f", &[-6.0], &[-9.0], &lufs, 20);
        assert!(loud[1].starts_with("ch0  [#################"), "{loud:?}");
        assert_eq!(loud[2], "loudness M  -10.0 LUFS I  -12.0 LUFS");
        let silent = HashMap::from([("momentary_lufs".to_string(), f64::NEG_INFINITY)]);
        let quiet = m.render("f", &[f64::NEG_INFINITY], &[f64::NEG_INFINITY], &silent, 20);
        assert!(quiet[1].contains("peak   -inf dBFS rms   -inf dBFS"), "{quiet:?}");
        assert_eq!(quiet[2], "loudness M   -inf LUFS");
        // The peak of -6 dB is still held.
        assert!(quiet[1].contains('|'), "{quiet:?}");
        // A quiet but measurable level is a number, not -inf.
        assert!(m.render("f", &[-130.0], &[-140.0], &silent, 20)[1].contains("-130.0 dBFS"));
    }

    #[test]
    fn only_the_fields_a_flow_has_are_shown() {
        let mut m = MeterView::default();
        let no_loudness = m.render("f", &[-6.0, -7.0], &[-9.0, -10.0], &HashMap::new(), 20);
        assert_eq!(no_loudness.len(), 3, "{no_loudness:?}");
        assert!(!no_loudness.iter().any(|l| l.contains("LUFS")), "{no_loudness:?}");
        let lufs = HashMap::from([("integrated_lufs".to_string(), f64::NEG_INFINITY)]);
        let loudness_only = m.render("f", &[], &[], &lufs, 20);
        assert_eq!(loudness_only, vec!["flow f".to_string(), "loudness I   -inf LUFS".to_string()]);
        let json = levels_json("f", &[f64::NEG_INFINITY], &[-20.0], &HashMap::new());
        assert_eq!(json, serde_json::json!({"flow": "f", "peak_dbfs": [null], "rms_dbfs": [-20.0]}));
        let json = levels_json("f", &[], &[], &lufs);
        assert_eq!(json, serde_json::json!({"flow": "f", "integrated_lufs": null}));
    }
}

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
    /// Levels signal.
    #[zbus(signal)]
    fn levels(
        &self,
        flow: &str,
        peak_dbfs: Vec<f64>,
        rms_dbfs: Vec<f64>,
        momentary_lufs: f64,
        integrated_lufs: f64,
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

impl MeterView {
    /// Renders one frame: a bar per channel (−60 … 0 dBFS) with a peak-hold
    /// mark, and the loudness line.
    pub fn render(
        &mut self,
        flow: &str,
        peak: &[f64],
        rms: &[f64],
        momentary: f64,
        integrated: f64,
        width: usize,
    ) -> Vec<String> {
        let now = std::time::Instant::now();
        self.hold.resize(peak.len(), (-200.0, now));
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
            lines.push(format!("ch{c:<2} [{bar}] peak {} rms {}", db(p), db(r)));
        }
        lines.push(format!("loudness M {} I {}", lufs(momentary), lufs(integrated)));
        lines
    }
}

fn db(v: f64) -> String {
    if v <= -120.0 { "  -inf dBFS".into() } else { format!("{v:6.1} dBFS") }
}

fn lufs(v: f64) -> String {
    if v <= -120.0 { "  -inf LUFS".into() } else { format!("{v:6.1} LUFS") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_bars_follow_the_level() {
        let mut m = MeterView::default();
        let loud = m.render("f", &[-6.0], &[-9.0], -10.0, -12.0, 20);
        assert!(loud[1].starts_with("ch0  [#################"), "{loud:?}");
        let quiet = m.render("f", &[-200.0], &[-200.0], -200.0, -200.0, 20);
        assert!(quiet[1].contains("-inf dBFS"), "{quiet:?}");
        // The peak of -6 dB is still held.
        assert!(quiet[1].contains('|'), "{quiet:?}");
    }
}

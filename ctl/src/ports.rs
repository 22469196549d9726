//! The SRT port allocator: pure allocation logic over a configured range.
//!
//! Availability is tested through a probe (in production: binding the UDP
//! port on all addresses and letting it go, [`udp_port_free`]), so the logic
//! is tested with any probe. A port is never handed out twice while held;
//! released ports go to the back of the line, so a port just released is
//! not reused at once (a peer may still be sending to it).

use std::collections::{BTreeMap, VecDeque};

use crate::config::PortRange;

/// Why no port was handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// Every port of the range is held or busy; widen `srt.port_range` or stop a job.
    #[error("no free SRT port in {first}-{last} ({held} held by Airlift, the rest busy)")]
    Exhausted {
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
        /// Ports held by Airlift.
        held: usize,
    },
    /// The requested port is outside the range.
    #[error("port {0} is outside the SRT port range")]
    OutOfRange(u16),
    /// The requested port is already held.
    #[error("port {port} is already held by {owner}")]
    Held {
        /// The port.
        port: u16,
        /// Who holds it.
        owner: String,
    },
    /// The requested port is in use by another program.
    #[error("port {0} is in use by another program")]
    Busy(u16),
}

/// Hands out ports from a range.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    range: PortRange,
    /// Ports not held, in the order they will be tried.
    free: VecDeque<u16>,
    held: BTreeMap<u16, String>,
}

impl PortAllocator {
    /// An allocator over `range` with nothing held.
    pub fn new(range: PortRange) -> Self {
        Self { range, free: (range.first..=range.last).collect(), held: BTreeMap::new() }
    }

    /// Hands out the first free port that `probe` says is available, to `owner`.
    pub fn allocate(&mut self, owner: &str, mut probe: impl FnMut(u16) -> bool) -> Result<u16, PortError> {
        for _ in 0..self.free.len() {
            let Some(port) = self.free.pop_front() else { break };
            if probe(port) {
                self.held.insert(port, owner.to_string());
                return Ok(port);
            }
            // Busy elsewhere: try it again last.
            self.free.push_back(port);
        }
        Err(PortError::Exhausted { first: self.range.first, last: self.range.last, held: self.held.len() })
    }

    /// Reserves a specific port (a configured listener) for `owner`.
    pub fn reserve(
        &mut self,
        port: u16,
        owner: &str,
        probe: impl FnOnce(u16) -> bool,
    ) -> Result<(), PortError> {
        if !self.range.contains(port) {
            return Err(PortError::OutOfRange(port));
        }
        if let Some(o) = self.held.get(&port) {
            return Err(PortError::Held { port, owner: o.clone() });
        }
        if !probe(port) {
            return Err(PortError::Busy(port));
        }
        self.free.retain(|&p| p != port);
        self.held.insert(port, owner.to_string());
        Ok(())
    }

    /// Reserves a configured listener's port for `owner` even when `probe`
    /// finds it busy (another program, or an engine still letting go of it):
    /// the configuration names it, so it is never handed to anyone else, and
    /// its flow retries until it is free. `Ok(false)` when it was busy.
    pub fn claim(
        &mut self,
        port: u16,
        owner: &str,
        probe: impl FnOnce(u16) -> bool,
    ) -> Result<bool, PortError> {
        match self.reserve(port, owner, probe) {
            Ok(()) => Ok(true),
            Err(PortError::Busy(_)) => {
                self.reserve(port, owner, |_| true)?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Gives a port back; false when it was not held.
    pub fn release(&mut self, port: u16) -> bool {
        if self.held.remove(&port).is_some() {
            self.free.push_back(port);
            true
        } else {
            false
        }
    }

    /// Releases every port held by `owner`.
    pub fn release_owner(&mut self, owner: &str) {
        let ports: Vec<u16> =
            self.held.iter().filter(|(_, o)| o.as_str() == owner).map(|(&p, _)| p).collect();
        for p in ports {
            self.release(p);
        }
    }

    /// Ports held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Ports in the range.
    pub fn capacity(&self) -> usize {
        self.range.len()
    }

    /// Every held port with its owner.
    pub fn held_ports(&self) -> impl Iterator<Item = (u16, &str)> {
        self.held.iter().map(|(&p, o)| (p, o.as_str()))
    }

    /// Who holds `port`.
    pub fn owner(&self, port: u16) -> Option<&str> {
        self.held.get(&port).map(String::as_str)
    }
}

/// True when UDP `port` can be bound on all IPv4 addresses right now.
pub fn udp_port_free(port: u16) -> bool {
    std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn a_configured_port_in_use_elsewhere_is_claimed_once_and_never_handed_out() {
        let range = PortRange::try_from("30000-30001".to_string()).unwrap();
        let mut alloc = PortAllocator::new(range);
        assert_eq!(alloc.claim(30000, "flow b input x", |_| false), Ok(false));
        assert_eq!(alloc.owner(30000), Some("flow b input x"));
        // Held now: a later sync sees its owner and leaves it be.
        assert!(matches!(alloc.claim(30000, "flow b input x", |_| true), Err(PortError::Held { .. })));
        assert_eq!(alloc.allocate("pull p", |_| true), Ok(30001), "the claimed port is not handed out");
        assert_eq!(alloc.claim(30005, "flow c", |_| true), Err(PortError::OutOfRange(30005)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Allocate,
        Release(u8),
        Reserve(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![Just(Op::Allocate), any::<u8>().prop_map(Op::Release), (0u16..40).prop_map(Op::Reserve)]
    }

    proptest! {
        #[test]
        fn invariants_hold(ops in prop::collection::vec(op(), 0..200), busy in prop::collection::hash_set(30000u16..30020, 0..6)) {
            let range = PortRange::try_from("30000-30019".to_string()).unwrap();
            let mut alloc = PortAllocator::new(range);
            let mut mine: HashSet<u16> = HashSet::new();
            for (i, op) in ops.into_iter().enumerate() {
                let owner = format!("job{i}");
                match op {
                    Op::Allocate => match alloc.allocate(&owner, |p| !busy.contains(&p)) {
                        Ok(p) => {
                            prop_assert!(range.contains(p));
                            prop_assert!(!busy.contains(&p), "a busy port was handed out");
                            prop_assert!(mine.insert(p), "port {} handed out twice", p);
                        }
                        Err(PortError::Exhausted { .. }) => {
                            prop_assert_eq!(mine.len() + busy.iter().filter(|p| !mine.contains(p)).count(), range.len());
                        }
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    },
                    Op::Release(k) => {
                        if let Some(&p) = mine.iter().nth(usize::from(k) % mine.len().max(1)) {
                            prop_assert!(alloc.release(p));
                            mine.remove(&p);
                        }
                    }
                    Op::Reserve(offset) => {
                        let p = 29_990 + offset;
                        match alloc.reserve(p, &owner, |p| !busy.contains(&p)) {
                            Ok(()) => prop_assert!(mine.insert(p) && range.contains(p) && !busy.contains(&p)),
                            Err(PortError::OutOfRange(_)) => prop_assert!(!range.contains(p)),
                            Err(PortError::Held { .. }) => prop_assert!(mine.contains(&p)),
                            Err(PortError::Busy(_)) => prop_assert!(busy.contains(&p)),
                            Err(e) => prop_assert!(false, "unexpected {e}"),
                        }
                    }
                }
                prop_assert_eq!(alloc.held(), mine.len());
            }
        }
    }

    #[test]
    fn released_ports_are_reused_last() {
        let mut a = PortAllocator::new(PortRange::try_from("100-102".to_string()).unwrap());
        let p = a.allocate("x", |_| true).unwrap();
        a.release(p);
        assert_ne!(a.allocate("y", |_| true).unwrap(), p);
    }

    #[test]
    fn udp_probe_sees_a_bound_port() {
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        assert!(!udp_port_free(port));
    }
}

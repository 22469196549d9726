//! Config-only newtypes: byte sizes, port ranges, listen addresses.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A size in bytes, written as an integer or a string with a unit
/// (`"512MiB"`, `"10 GB"`, `"4096"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "ByteSizeRepr", into = "u64")]
pub struct ByteSize(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum ByteSizeRepr {
    Number(u64),
    Text(String),
}

impl TryFrom<ByteSizeRepr> for ByteSize {
    type Error = String;
    fn try_from(repr: ByteSizeRepr) -> Result<Self, String> {
        match repr {
            ByteSizeRepr::Number(n) => Ok(ByteSize(n)),
            ByteSizeRepr::Text(t) => t.parse(),
        }
    }
}

impl From<ByteSize> for u64 {
    fn from(size: ByteSize) -> u64 {
        size.0
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| format!("{text:?} is not a size like \"512MiB\""))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "k" | "kB" | "KB" => 1_000,
            "KiB" => 1 << 10,
            "M" | "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "G" | "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            "T" | "TB" => 1_000_000_000_000,
            "TiB" => 1 << 40,
            other => {
                return Err(format!(
                    "unknown size unit {other:?} in {text:?}; use B, kB, MB, GB, TB, KiB, MiB, GiB, TiB"
                ));
            }
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(|| format!("{text:?} is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

/// An inclusive UDP port range for SRT listeners, written `"30000-30099"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (inclusive).
    pub last: u16,
}

impl TryFrom<String> for PortRange {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let (a, b) =
            text.split_once('-').ok_or_else(|| format!("{text:?} is not a range like \"30000-30099\""))?;
        let first: u16 = a.trim().parse().map_err(|_| format!("{a:?} is not a port"))?;
        let last: u16 = b.trim().parse().map_err(|_| format!("{b:?} is not a port"))?;
        if first == 0 || first > last {
            return Err(format!(
                "port range {first}-{last} is empty or inverted; write LOW-HIGH with LOW >= 1"
            ));
        }
        Ok(PortRange { first, last })
    }
}

impl From<PortRange> for String {
    fn from(range: PortRange) -> String {
        format!("{}-{}", range.first, range.last)
    }
}

impl PortRange {
    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// Number of ports.
    pub fn len(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    /// Always false: a valid range has at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The HTTP listen address. A non-loopback address is only accepted with TLS
/// and a bearer token (checked by the configuration's cross-field rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ListenAddr(pub SocketAddr);

impl TryFrom<String> for ListenAddr {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let addr: SocketAddr =
            text.parse().map_err(|_| format!("{text:?} is not an address like \"127.0.0.1:9480\""))?;
        Ok(ListenAddr(addr))
    }
}

impl From<ListenAddr> for String {
    fn from(addr: ListenAddr) -> String {
        addr.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("512MiB".parse::<ByteSize>().unwrap().0, 512 << 20);
        assert_eq!("10 GB".parse::<ByteSize>().unwrap().0, 10_000_000_000);
        assert_eq!("4096".parse::<ByteSize>().unwrap().0, 4096);
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("99999999999TiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(PortRange::try_from("30000-30009".to_string()).unwrap().len(), 10);
        assert!(PortRange::try_from("30009-30000".to_string()).is_err());
        assert!(PortRange::try_from("0-10".to_string()).is_err());
    }

    #[test]
    fn listen_addresses() {
        assert!("127.0.0.1:9480".parse::<ListenAddr>().is_ok());
        assert!("[::1]:9480".parse::<ListenAddr>().is_ok());
        assert!("0.0.0.0:9480".parse::<ListenAddr>().is_ok());
        assert!("localhost".parse::<ListenAddr>().is_err());
    }
}

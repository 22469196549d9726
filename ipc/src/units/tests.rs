//! Tests of the units: their ranges, parsing and serde forms.

use super::*;

#[test]
fn ranges_are_enforced() {
    assert!(Channels::new(0).is_err());
    assert!(Channels::new(1).is_ok());
    assert!(Channels::new(64).is_ok());
    assert!(Channels::new(65).is_err());
    assert!(PeriodFrames::new(15).is_err());
    assert!(PeriodFrames::new(4097).is_err());
    assert!(SampleRate::new(48_000).is_ok());
    assert!(SampleRate::new(47_999).is_err());
    assert!(GainDb::new(f32::NAN).is_err());
    assert!(GainDb::new(300.0).is_err());
    assert!(GainDb::new(f32::NEG_INFINITY).is_err());
    assert!(Pan::new(1.5).is_err());
    assert!(Passphrase::new("short").is_err());
    assert!(Passphrase::new("long enough").is_ok());
    assert!(Passphrase::new("x".repeat(80)).is_err());
}

#[test]
fn passphrase_length_counts_bytes_as_libsrt_does() {
    // 9 characters, 18 bytes: libsrt takes it (10..=79 bytes).
    assert!(Passphrase::new("ééééééééé").is_ok());
    // 5 characters, 10 bytes: the shortest libsrt takes.
    assert!(Passphrase::new("ééééé").is_ok());
    // 4 characters, 8 bytes: too short for libsrt.
    let e = Passphrase::new("éééé").unwrap_err().to_string();
    assert!(e.contains("8 bytes"), "{e}");
    // 40 characters, 80 bytes: one byte too long for libsrt.
    let e = Passphrase::new("é".repeat(40)).unwrap_err().to_string();
    assert!(e.contains("80 bytes"), "{e}");
    assert!(Passphrase::new(format!("{}x", "é".repeat(39))).is_ok());
    assert!(!e.contains('é'), "the error never shows the secret: {e}");
}

#[test]
fn peer_networks_parse_or_say_why() {
    for (text, shown) in [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("127.0.0.1/32", "127.0.0.1/32"),
        ("127.0.0.2", "127.0.0.2/32"),
        ("::1/128", "::1/128"),
        ("fd00::/8", "fd00::/8"),
        ("0.0.0.0/0", "0.0.0.0/0"),
    ] {
        assert_eq!(PeerNetwork::new(text).unwrap().to_string(), shown);
    }
    for (text, why) in [
        ("10.0.0.1/8", "the network is 10.0.0.0/8"),
        ("10.0.0/8", "CIDR"),
        ("10.0.0.0/33", "CIDR"),
        ("host.example", "not an IP address"),
        ("", "not an IP address"),
        ("::1/129", "CIDR"),
    ] {
        let e = PeerNetwork::new(text).unwrap_err().to_string();
        assert!(e.contains(why), "{text}: {e}");
    }
    let lan = PeerNetwork::new("10.0.0.0/8").unwrap();
    assert!(lan.contains("10.1.2.3".parse().unwrap()));
    assert!(lan.contains("::ffff:10.1.2.3".parse().unwrap()), "IPv4-mapped peers compare as IPv4");
    assert!(!lan.contains("11.0.0.1".parse().unwrap()));
    assert!(peer_allowed(&[], "192.0.2.1".parse().unwrap()));
    assert!(!peer_allowed(&[lan], "192.0.2.1".parse().unwrap()));
}

proptest::proptest! {
    #[test]
    fn a_v4_network_holds_exactly_the_addresses_sharing_its_prefix(
        addr in proptest::prelude::any::<u32>(),
        prefix in 0u8..=32,
        peer in proptest::prelude::any::<u32>(),
    ) {
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        let net_addr = std::net::Ipv4Addr::from(addr & mask);
        let net = PeerNetwork::new(&format!("{net_addr}/{prefix}")).unwrap();
        let inside = peer & mask == addr & mask;
        proptest::prop_assert_eq!(net.contains(std::net::Ipv4Addr::from(peer).into()), inside);
        // Round trip through its text form.
        proptest::prop_assert_eq!(PeerNetwork::new(&net.to_string()).unwrap(), net);
        // Host bits set below the prefix are refused.
        if prefix < 32 && addr & !mask != 0 {
            let with_host_bits = format!("{}/{prefix}", std::net::Ipv4Addr::from(addr));
            proptest::prop_assert!(PeerNetwork::new(&with_host_bits).is_err());
        }
    }

    #[test]
    fn a_v6_network_holds_exactly_the_addresses_sharing_its_prefix(
        addr in proptest::prelude::any::<u128>(),
        prefix in 0u8..=128,
        peer in proptest::prelude::any::<u128>(),
    ) {
        let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
        let net_addr = std::net::Ipv6Addr::from(addr & mask);
        let net = PeerNetwork::new(&format!("{net_addr}/{prefix}")).unwrap();
        let peer_ip = std::net::Ipv6Addr::from(peer);
        if peer_ip.to_ipv4_mapped().is_none() {
            proptest::prop_assert_eq!(net.contains(peer_ip.into()), peer & mask == addr & mask);
        }
        proptest::prop_assert_eq!(PeerNetwork::new(&net.to_string()).unwrap(), net);
    }

    #[test]
    fn any_text_parses_or_is_refused_without_panicking(text in ".{0,80}") {
        let _ = PeerNetwork::new(&text);
    }
}

#[test]
fn names_are_path_safe() {
    assert!(Name::new("main-mix_2").is_ok());
    for bad in ["", "../etc", "a/b", "-lead", "sp ace", &"x".repeat(65)] {
        assert!(Name::new(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn paths_refuse_parent_components() {
    assert!(SafePath::new("spool/a.wav").is_ok());
    assert!(SafePath::new("/var/lib/airlift/x.wav").is_ok());
    assert!(SafePath::new("a/../../etc/passwd").is_err());
    assert!(SafePath::new("").is_err());
    assert!(SafePath::new("a\0b").is_err());
}

#[test]
fn ffmpeg_names_are_plain_identifiers() {
    for good in ["flac", "libmp3lame", "pcm_s24le", "matroska", "mp4"] {
        assert!(FfmpegName::new(good).is_ok(), "{good:?} refused");
    }
    for bad in ["", "FLAC", "lib mp3", "srt://x", "a-b", "../x", &"x".repeat(33), "fl\0ac"] {
        assert!(FfmpegName::new(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn passphrase_is_never_printed() {
    let p = Passphrase::new("very secret words").unwrap();
    assert!(!format!("{p:?}").contains("secret"));
}

#[test]
fn gain_linear() {
    assert!((GainDb::new(-6.0).unwrap().linear() - 0.501_187).abs() < 1e-5);
    assert_eq!(GainDb::UNITY.linear(), 1.0);
}

//! The Airlift control daemon.
fn main() {
    println!("airlift-ctld {} (protocol {})", airlift_ctl::VERSION, airlift_ipc::PROTOCOL_VERSION);
}

//! The Airlift command-line client.
fn main() {
    println!("airliftctl {}", airlift_ctl::VERSION);
}

fn main() {
    println!("airlift-engine {}", airlift_engine::VERSION);
}

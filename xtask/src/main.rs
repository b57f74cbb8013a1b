fn main() {
    for d in herald_protocol::schemas() {
        println!("=== {}", d.name);
        println!("{}", serde_json::to_string_pretty(&d.schema).unwrap());
    }
}

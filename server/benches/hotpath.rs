//! The fan-out hot path in process, without sockets: one chat into a room of N members goes
//! through parsing, validation, sanitising, encoding, the room lock and N queue pushes, and every
//! member's outbox is drained. Prints nanoseconds per delivery and per inbound chat.
//!
//! `cargo bench -p herald-server --bench hotpath` (release build). Compare the figures before and
//! after a change to the hot path; for a figure that does not depend on machine noise, run the
//! same binary under `valgrind --tool=callgrind` and compare instruction counts.

use std::hint::black_box;
use std::time::Instant;

use herald::config::Config;
use herald::session::{Outbound, Transport};

// The allocator the `herald` binary ships with, so the figures are the binary's.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn run(room_size: usize, chats: usize) -> (f64, f64) {
    let config = Config {
        // Plenty of room: this measures the path, not the slow-consumer rule.
        outbound_queue_bytes: 1 << 30,
        ..Config::default()
    };
    let node = herald::build(config).expect("the default configuration builds");
    let mut members = Vec::with_capacity(room_size);
    for i in 0..room_size {
        let (session, outbox) = node.open(Transport::WebSocket);
        node.on_text(
            &session,
            &format!(r#"{{"type":"join","room":"bench","user":"user{i}"}}"#),
        );
        members.push((session, outbox));
    }
    for (_, outbox) in members.iter_mut() {
        while outbox.try_recv().is_some() {}
    }
    let frame = r#"{"type":"chat","text":"hello from the benchmark 1234567890"}"#;
    let start = Instant::now();
    let mut delivered = 0usize;
    for i in 0..chats {
        let (sender, _) = &members[i % room_size];
        node.on_text(sender, black_box(frame));
        for (_, outbox) in members.iter_mut() {
            while let Some(item) = outbox.try_recv() {
                if let Outbound::Frame(bytes) = item {
                    black_box(bytes.len());
                    delivered += 1;
                }
            }
        }
    }
    let elapsed = start.elapsed().as_nanos() as f64;
    assert_eq!(delivered, chats * room_size, "every member gets every chat");
    (elapsed / delivered as f64, elapsed / chats as f64)
}

fn main() {
    // `cargo test --benches` passes --bench too; keep a quick mode for a smoke run.
    let quick = std::env::args().any(|a| a == "--quick");
    let chats = if quick { 200 } else { 20_000 };
    println!(
        "{:>10} {:>10} {:>16} {:>14}",
        "room", "chats", "ns/delivery", "ns/chat"
    );
    for room_size in [10, 100, 1000] {
        let chats = (chats * 100 / room_size).max(100);
        run(room_size, chats.min(2_000)); // warm up
        let (per_delivery, per_chat) = run(room_size, chats);
        println!("{room_size:>10} {chats:>10} {per_delivery:>16.1} {per_chat:>14.0}");
    }
}

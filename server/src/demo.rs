//! The chapter's demo feeds, run only with `--demo`: a stock ticker every 2 s and a news
//! headline every 30 s, to every SSE stream.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::sse::event;
use herald_protocol::{NewsItem, StockUpdate};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::ids::now_rfc3339;
use crate::node::Node;

const HEADLINES: [&str; 4] = [
    "Herald demo: markets open on a quiet note",
    "Herald demo: new release ships to early users",
    "Herald demo: team reports record uptime",
    "Herald demo: weekly roundup of product news",
];

/// Runs both feeds until `stop` is cancelled.
pub async fn run(node: Arc<Node>, stop: CancellationToken) {
    let mut prices = [
        ("AAPL", 150.25),
        ("GOOGL", 2800.50),
        ("MSFT", 300.75),
        ("TSLA", 800.00),
    ];
    let mut stocks = tokio::time::interval(Duration::from_secs(2));
    let mut news = tokio::time::interval(Duration::from_secs(30));
    let mut headline = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = stocks.tick() => {
                let (symbol, price, change) = {
                    let mut rng = rand::rng();
                    let pick = rng.random_range(0..prices.len());
                    let change = (rng.random::<f64>() - 0.5) * 0.04;
                    prices[pick].1 *= 1.0 + change;
                    (prices[pick].0, prices[pick].1, change)
                };
                let update = StockUpdate { symbol: symbol.to_owned(), price, change, timestamp: now_rfc3339() };
                node.broadcast_sse(event::STOCK_UPDATE, &update);
            }
            _ = news.tick() => {
                let item = NewsItem {
                    id: format!("news_{headline}_{}", std::process::id()),
                    headline: HEADLINES[headline % HEADLINES.len()].to_owned(),
                    timestamp: now_rfc3339(),
                };
                headline += 1;
                node.broadcast_sse(event::NEWS, &item);
            }
        }
    }
}

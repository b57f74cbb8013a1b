//! Prometheus metrics, served as text on `GET /metrics`.

use herald_protocol::ErrorCode;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::wire::Transport;

type Label = [(&'static str, &'static str); 1];

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    connections: Family<Label, Gauge>,
    connections_total: Family<Label, Counter>,
    /// Frames received from clients.
    pub frames_in: Counter,
    /// Frames queued to clients (one per recipient).
    pub frames_out: Counter,
    /// Messages fanned out to more than one recipient (room chat, broadcast notifications and
    /// updates).
    pub broadcasts: Counter,
    errors: Family<Label, Counter>,
    /// Connections dropped because their outbound queue filled.
    pub slow_consumers: Counter,
    /// Connections closed for not answering pings.
    pub timeouts: Counter,
    /// Frames refused for their size.
    pub oversized: Counter,
    /// Connections reset on purpose (SO_LINGER 0) so the kernel drops what is unsent: slow
    /// consumers, and clients that stopped reading.
    pub abortive_closes: Counter,
    /// Connections closed at accept because too many were not yet admitted.
    pub unadmitted_refused: Counter,
    /// HTTP connections closed for a slow request head or an idle keep-alive.
    pub http_timeouts: Counter,
    broker_queued: Gauge,
    broker_shed: Counter,
    broker_unreadable: Counter,
    broker_restarts: Counter,
    broker_received: Counter,
    broker_channels: Gauge,
}

/// The cluster broker's own counts, as the broker reports them.
#[derive(Debug, Clone, Copy, Default)]
pub struct BrokerCounts {
    /// Commands waiting to be sent.
    pub queued: u64,
    /// Messages shed because the queue was full.
    pub shed: u64,
    /// Bus messages dropped as unreadable.
    pub unreadable: u64,
    /// Times the broker task was restarted.
    pub restarts: u64,
    /// Bus messages received (every channel the node listens to).
    pub received: u64,
    /// Bus channels subscribed for local rooms and users.
    pub channels: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("herald");
        let connections = Family::<Label, Gauge>::default();
        let connections_total = Family::<Label, Counter>::default();
        let errors = Family::<Label, Counter>::default();
        let m = Metrics {
            frames_in: Counter::default(),
            frames_out: Counter::default(),
            broadcasts: Counter::default(),
            slow_consumers: Counter::default(),
            timeouts: Counter::default(),
            oversized: Counter::default(),
            broker_queued: Gauge::default(),
            broker_shed: Counter::default(),
            broker_unreadable: Counter::default(),
            broker_restarts: Counter::default(),
            broker_received: Counter::default(),
            broker_channels: Gauge::default(),
            abortive_closes: Counter::default(),
            unadmitted_refused: Counter::default(),
            http_timeouts: Counter::default(),
            connections: connections.clone(),
            connections_total: connections_total.clone(),
            errors: errors.clone(),
            registry: Registry::default(),
        };
        registry.register("connections", "Open connections by transport", connections);
        registry.register(
            "connections_accepted",
            "Connections accepted by transport",
            connections_total,
        );
        registry.register(
            "frames_in",
            "Frames received from clients",
            m.frames_in.clone(),
        );
        registry.register(
            "frames_out",
            "Frames queued to clients, one per recipient",
            m.frames_out.clone(),
        );
        registry.register(
            "broadcasts",
            "Messages fanned out to a room or to many",
            m.broadcasts.clone(),
        );
        registry.register("errors", "Errors sent to clients, by code", errors);
        registry.register(
            "slow_consumers_dropped",
            "Connections dropped as slow consumers",
            m.slow_consumers.clone(),
        );
        registry.register(
            "ping_timeouts",
            "Connections closed for not answering pings",
            m.timeouts.clone(),
        );
        registry.register(
            "oversized_frames",
            "Frames refused for their size",
            m.oversized.clone(),
        );
        registry.register(
            "broker_queued",
            "Commands waiting for the cluster broker",
            m.broker_queued.clone(),
        );
        registry.register(
            "broker_shed",
            "Messages shed because the cluster broker's queue was full",
            m.broker_shed.clone(),
        );
        registry.register(
            "broker_unreadable",
            "Cluster bus messages dropped as unreadable",
            m.broker_unreadable.clone(),
        );
        registry.register(
            "broker_restarts",
            "Times the cluster broker's task died and was restarted",
            m.broker_restarts.clone(),
        );
        registry.register(
            "broker_received",
            "Cluster bus messages this node received (only rooms and users it has members of)",
            m.broker_received.clone(),
        );
        registry.register(
            "broker_channels",
            "Cluster bus channels subscribed for this node's rooms and users",
            m.broker_channels.clone(),
        );
        registry.register(
            "abortive_closes",
            "Connections reset so the kernel discards their unsent data",
            m.abortive_closes.clone(),
        );
        registry.register(
            "unadmitted_refused",
            "Connections closed at accept: too many not yet admitted",
            m.unadmitted_refused.clone(),
        );
        registry.register(
            "http_timeouts",
            "HTTP connections closed for a slow request head or an idle keep-alive",
            m.http_timeouts.clone(),
        );
        // Show both transports from the start, at zero, so dashboards see the series.
        for transport in [Transport::WebSocket, Transport::Sse, Transport::Polling] {
            let label = [("transport", transport.as_str())];
            let _ = m.connections.get_or_create(&label);
            let _ = m.connections_total.get_or_create(&label);
        }
        Metrics { registry, ..m }
    }

    /// A connection opened.
    pub fn opened(&self, transport: Transport) {
        let label = [("transport", transport.as_str())];
        self.connections.get_or_create(&label).inc();
        self.connections_total.get_or_create(&label).inc();
    }

    /// A connection closed.
    pub fn closed(&self, transport: Transport) {
        self.connections
            .get_or_create(&[("transport", transport.as_str())])
            .dec();
    }

    /// An error was sent to a client.
    pub fn error(&self, code: ErrorCode) {
        self.errors.get_or_create(&[("code", code.as_str())]).inc();
    }

    /// Takes the broker's latest counts.
    pub fn set_broker(&self, counts: BrokerCounts) {
        self.broker_queued.set(counts.queued as i64);
        let catch_up = |counter: &Counter, value: u64| {
            counter.inc_by(value.saturating_sub(counter.get()));
        };
        catch_up(&self.broker_shed, counts.shed);
        catch_up(&self.broker_unreadable, counts.unreadable);
        catch_up(&self.broker_restarts, counts.restarts);
        catch_up(&self.broker_received, counts.received);
        self.broker_channels.set(counts.channels as i64);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

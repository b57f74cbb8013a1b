//! Notifications and resource updates: backends publish them (`POST /notifications`,
//! `POST /updates`, the `user.notifications` and `system.events` topics); SSE streams receive
//! them with resumable ids, and a notification also reaches its user's (or everyone's)
//! WebSockets.

use std::sync::Arc;

use herald_protocol::{ClientMessage, Notification, NotifyRequest, Update, UpdateRequest};

use crate::broker::{BackendRequest, Event};
use crate::ids::now_rfc3339;
use crate::node::{Capability, Node};
use crate::session::Session;

/// The notifications capability (no client frames; backends publish).
pub struct Notify;

impl Capability for Notify {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn handles(&self) -> &'static [&'static str] {
        &[]
    }

    fn handle(&self, _node: &Node, _session: &Arc<Session>, _message: ClientMessage) {}

    fn backend(&self, node: &Node, request: &BackendRequest) -> bool {
        let BackendRequest::Notify(request) = request else {
            return false;
        };
        notify(node, request.clone());
        true
    }
}

/// Delivers a notification to every connection of its user, or to everyone.
pub fn notify(node: &Node, request: NotifyRequest) -> Notification {
    let notification = Notification {
        id: node.next_id(),
        user_id: request.user_id,
        message: request.message,
        kind: request.kind.unwrap_or_else(|| "info".to_owned()),
        timestamp: now_rfc3339(),
    };
    node.publish_event(Event::Notification(notification.clone()));
    notification
}

/// Delivers a resource update to every SSE stream.
pub fn update(node: &Node, request: UpdateRequest) -> Update {
    let update = Update {
        resource: request.resource,
        action: request.action,
        data: request.data,
        timestamp: now_rfc3339(),
    };
    node.publish_event(Event::Update(update.clone()));
    update
}

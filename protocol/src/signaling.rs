//! Capability `signaling`: the pieces of WebRTC signaling frames and of the TURN credentials
//! answer.
//!
//! Members of one room exchange `offer`, `answer`, `ice_candidate` and `hangup` through the
//! server, each addressed to one other member by its **peer id**, which is that connection's
//! `clientId` (from `welcome`). The server relays a signal only to a member of the sender's own
//! room and stamps it with the sender's peer id (`from`), so a client can neither reach outside
//! its room nor speak for another connection.
//!
//! Roles follow one rule, so two peers never both back off or both insist (perfect
//! negotiation): of two peers, the one whose peer id sorts first (byte-wise) is **polite**.
//! The server applies the rule and says it on every relayed signal and every `peers` entry.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::limits::{
    MAX_ICE_CANDIDATE_CHARS, MAX_ICE_MID_CHARS, MAX_ICE_UFRAG_CHARS, MAX_PEER_ID_CHARS,
    MAX_URL_CHARS, PEER_ID_PATTERN,
};
use crate::user::User;

/// A connection's peer id: its `clientId` from `welcome`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct PeerId(
    #[schemars(length(min = 1, max = MAX_PEER_ID_CHARS), regex(pattern = PEER_ID_PATTERN))]
    pub  String,
);

impl PeerId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for PeerId {
    fn from(id: &str) -> Self {
        PeerId(id.to_owned())
    }
}

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `me` is the polite peer toward `other`: the one whose id sorts first, byte-wise.
pub fn is_polite(me: &str, other: &str) -> bool {
    me.as_bytes() < other.as_bytes()
}

/// One ICE candidate, as `RTCIceCandidate.toJSON()` gives it. An empty `candidate` string is
/// the end of one generation's candidates, as WebRTC itself writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IceCandidate {
    /// The candidate line (`candidate:...`), or empty for the end of a generation.
    #[schemars(length(max = MAX_ICE_CANDIDATE_CHARS))]
    pub candidate: String,
    /// The media stream identification tag it belongs to.
    #[serde(
        rename = "sdpMid",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    #[schemars(length(max = MAX_ICE_MID_CHARS))]
    pub sdp_mid: Option<String>,
    /// The index of the media description it belongs to.
    #[serde(
        rename = "sdpMLineIndex",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    #[schemars(range(max = 65535))]
    pub sdp_m_line_index: Option<u32>,
    /// The ICE username fragment of the generation it belongs to.
    #[serde(
        rename = "usernameFragment",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "nullable"
    )]
    #[schemars(length(max = MAX_ICE_UFRAG_CHARS))]
    pub username_fragment: Option<String>,
}

/// Reads a field that may be `null` as absent (browsers write `"sdpMid": null`).
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

/// Makes an `ice_candidate` frame's `candidate` required in its schema: it is `null` for the end
/// of candidates, never absent (an `Option` field is otherwise optional).
pub(crate) fn require_candidate(schema: &mut schemars::Schema) {
    if let Some(serde_json::Value::Array(required)) = schema.get_mut("required") {
        if !required.iter().any(|r| r == "candidate") {
            required.push("candidate".into());
        }
    }
}

/// A member of the room as a peer, in the `peers` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Its peer id, to address signals to.
    #[serde(rename = "peerId")]
    pub peer_id: PeerId,
    /// The user it joined the room as.
    pub user: User,
    /// Whether the connection that asked is the polite peer toward this one.
    pub polite: bool,
}

/// An ICE server, as `RTCPeerConnection`'s `iceServers` takes it. TURN servers come with
/// credentials for the connection's user (see [`TurnCredentials`]); STUN servers without.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// Its URLs (`stun:`, `stuns:`, `turn:` or `turns:`).
    pub urls: Vec<IceUrl>,
    /// For TURN: `EXPIRY:USER`, as in [`TurnCredentials`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// For TURN: base64 of HMAC-SHA1(secret, username), as in [`TurnCredentials`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A STUN or TURN URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct IceUrl(
    #[schemars(length(min = 1, max = MAX_URL_CHARS), regex(pattern = r"^(stun|stuns|turn|turns):"))]
    pub String,
);

/// Answer to `GET /turn-credentials` (capability `signaling`): short-lived TURN credentials for
/// one user in the TURN REST scheme, which coturn accepts with `use-auth-secret`. `username` is
/// `EXPIRY:USER` (EXPIRY in Unix seconds) and `credential` is the base64 HMAC-SHA1 of the
/// username keyed with the secret the server shares with the TURN server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TurnCredentials {
    /// `EXPIRY:USER`.
    pub username: String,
    /// Base64 of HMAC-SHA1(secret, username).
    pub credential: String,
    /// Seconds the credentials stay valid from now.
    pub ttl: u64,
    /// The TURN URLs they are for.
    pub urls: Vec<IceUrl>,
}

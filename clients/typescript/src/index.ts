export {
  HeraldClient,
  HeraldError,
  Subscription,
  userId,
  userName,
  type ClientErrorEvent,
  type ClientEvents,
  type ClientOptions,
  type ClientState,
  type ConnectedEvent,
  type ConnectingEvent,
  type JoinedEvent,
  type Position,
  type SendResult,
  type StateChange,
  type SubscriptionEvents,
  type SubscriptionState,
} from './client.js';
export {
  HeraldEvents,
  type EventSourceConstructor,
  type EventSourceLike,
  type EventStreamEvents,
  type EventStreamOptions,
  type EventStreamState,
} from './events.js';
export {
  PeerConnection,
  PeerManager,
  rtcIceServers,
  type PeerConnectionEvents,
  type PeerConnectionOptions,
  type PeerManagerEvents,
  type PeerManagerOptions,
  type RTCPeerConnectionConstructor,
} from './peer.js';
export {
  SharedDocument,
  apply as applyOp,
  codePoints,
  compose as composeOps,
  diff as diffOp,
  transform as transformOps,
  transformPosition,
  type Component,
  type DocumentChange,
  type Op,
  type RemoteCursor,
  type Selection,
  type SharedDocumentEvents,
} from './documents.js';
export {
  HeraldStream,
  subscribeStream,
  type StreamEvents,
  type StreamOptions,
  type StreamPoint,
  type StreamPointFrame,
  type StreamSnapshotEvent,
  type StreamSubscribedFrame,
  type StreamWindow,
  type StreamWindowFrame,
} from './streams.js';
export { backoffDelay, type BackoffOptions } from './backoff.js';
export { pollingTransport, pollingUrl, type FetchLike, type PollingTransportOptions } from './polling.js';
export { tokenExpiry } from './token.js';
export {
  webSocketTransport,
  webSocketUrl,
  type Transport,
  type TransportClose,
  type TransportConnection,
  type TransportHandlers,
  type TransportOpenOptions,
  type WebSocketConstructor,
  type WebSocketLike,
} from './transport.js';
export type * from './types.js';

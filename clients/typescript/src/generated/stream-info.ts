// Generated from schemas/stream-info.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * An aggregate a stream computes over each window.
 */
export type Aggregate = ("count" | "sum" | "avg" | "min" | "max")

/**
 * Answer to `GET /streams/{id}`: a stream's declaration and state.
 */
export interface StreamInfo {
spec: StreamSpec
/**
 * The epoch of its messages.
 */
epoch: string
/**
 * The offset of its latest message (0 when it has none).
 */
offset: number
/**
 * Points kept (at most `maxDataPoints`).
 */
points: number
/**
 * Subscribers on this node.
 */
subscribers: number
/**
 * The largest outbound queue, in bytes, among its subscribers on this node (what a
 * subscriber has not read yet, on this server's side).
 */
maxQueuedBytes: number
/**
 * The same among the subscribers that asked for a `maxRate` (conflation): what conflation
 * keeps bounded.
 */
maxQueuedBytesRateLimited: number
/**
 * Points waiting, conflated, for rate-limited subscribers on this node.
 */
pending: number
/**
 * Points that came later than the grace, ever.
 */
late: number
}
/**
 * The declaration.
 */
export interface StreamSpec {
/**
 * The stream's id.
 */
id: string
/**
 * How many recent points the server keeps (the snapshot's source); 1,000 when absent.
 */
maxDataPoints?: (number | null)
/**
 * The value's shape: absent for a plain number; the field names for an object of numbers
 * (a point may carry a subset of them, nothing else).
 * 
 * @minItems 1
 * @maxItems 32
 */
fields?: ([string, ...(string)[]] | null)
/**
 * Length of the tumbling windows on event time, in milliseconds; no aggregates when absent.
 */
windowMs?: (number | null)
/**
 * How late (in event time, behind the latest point seen) a point may arrive and still
 * count in its window; 0 when absent. A later point is counted as `late`.
 */
graceMs?: (number | null)
/**
 * The aggregates each window result carries, per field; all five when absent.
 * 
 * @minItems 1
 * @maxItems 5
 */
aggregates?: ([Aggregate]|[Aggregate, Aggregate]|[Aggregate, Aggregate, Aggregate]|[Aggregate, Aggregate, Aggregate, Aggregate]|[Aggregate, Aggregate, Aggregate, Aggregate, Aggregate] | null)
}

// Generated from schemas/stream-spec.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * An aggregate a stream computes over each window.
 */
export type Aggregate = ("count" | "sum" | "avg" | "min" | "max")

/**
 * A stream's declaration: in the server's configuration (`[[streams]]`) or the body of
 * `POST /streams`.
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

// Generated from schemas/points-request.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Body of `POST /streams/{id}/points`: one point, or a batch under `points`.
 */
export type PointsRequest = ({
/**
 * The points (1 to 1,000).
 * 
 * @minItems 1
 * @maxItems 1000
 */
points: [PointIn, ...(PointIn)[]]
} | PointIn1)

/**
 * A point as a producer sends it: the event time is optional (arrival time when absent).
 */
export interface PointIn {
/**
 * Event time in milliseconds since the Unix epoch; the server's arrival time when absent.
 */
timestamp?: (number | null)
/**
 * The value: a number, or an object of numbers for a stream with `fields`.
 */
value: (number | {
[k: string]: number | undefined
})
}
/**
 * A point as a producer sends it: the event time is optional (arrival time when absent).
 */
export interface PointIn1 {
/**
 * Event time in milliseconds since the Unix epoch; the server's arrival time when absent.
 */
timestamp?: (number | null)
/**
 * The value: a number, or an object of numbers for a stream with `fields`.
 */
value: (number | {
[k: string]: number | undefined
})
}

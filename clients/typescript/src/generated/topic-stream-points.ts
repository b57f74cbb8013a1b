// Generated from schemas/topic-stream-points.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Payload of the `stream.points` broker topic: points for one stream.
 */
export interface TopicPoints {
/**
 * The stream.
 */
stream: string
/**
 * The points (1 to 1,000), in order.
 * 
 * @minItems 1
 * @maxItems 1000
 */
points: [PointIn, ...(PointIn)[]]
}
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

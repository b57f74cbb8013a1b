// Generated from schemas/sse-news.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Data of the demo-mode `news` event.
 */
export interface NewsItem {
/**
 * The item's id.
 */
id: string
/**
 * The headline.
 */
headline: string
/**
 * When it was published (RFC 3339).
 */
timestamp: string
}

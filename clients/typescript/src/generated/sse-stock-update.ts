// Generated from schemas/sse-stock-update.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Data of the demo-mode `stock_update` event.
 */
export interface StockUpdate {
/**
 * The ticker symbol.
 */
symbol: string
/**
 * The new price.
 */
price: number
/**
 * The relative change, as a fraction (0.01 is one percent).
 */
change: number
/**
 * When the price changed (RFC 3339).
 */
timestamp: string
}

// A small stdio MCP server (newline-delimited JSON-RPC 2.0, no dependencies) offering several tools, so that Claude
// Code's tool search has MCP tools to defer. lookup_order answers with MELIOUS_MCP_MARKER and the order id it was
// given, which lets a test see that the deferred tool really ran. Used by ClaudeCodeInteractiveTests.
import { createInterface } from "node:readline";

const marker = process.env.MELIOUS_MCP_MARKER ?? "no-marker";
const object = (properties, required = []) => ({ type: "object", properties, required });
const tools = [
  { name: "lookup_order", description: "Look up an order of the inventory system by its id and return its status.", inputSchema: object({ order_id: { type: "string", description: "The order id, e.g. ORD-1" } }, ["order_id"]) },
  { name: "list_warehouses", description: "List the warehouses of the inventory system.", inputSchema: object({}) },
  { name: "stock_level", description: "Return the stock level of a product in a warehouse.", inputSchema: object({ sku: { type: "string" }, warehouse: { type: "string" } }, ["sku"]) },
  { name: "reserve_stock", description: "Reserve units of a product for an order.", inputSchema: object({ sku: { type: "string" }, units: { type: "number" } }, ["sku", "units"]) },
  { name: "cancel_order", description: "Cancel an order of the inventory system.", inputSchema: object({ order_id: { type: "string" } }, ["order_id"]) },
  { name: "supplier_contact", description: "Return the contact of a product's supplier.", inputSchema: object({ sku: { type: "string" } }, ["sku"]) },
];

const send = (message) => process.stdout.write(JSON.stringify({ jsonrpc: "2.0", ...message }) + "\n");

createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  const request = JSON.parse(line);
  if (request.id === undefined) return; // notifications (initialized, cancelled)
  switch (request.method) {
    case "initialize":
      send({ id: request.id, result: { protocolVersion: request.params?.protocolVersion ?? "2025-06-18", capabilities: { tools: {} }, serverInfo: { name: "inventory", version: "1.0.0" } } });
      break;
    case "tools/list":
      send({ id: request.id, result: { tools } });
      break;
    case "tools/call": {
      const { name, arguments: args } = request.params ?? {};
      const text = name === "lookup_order" ? `order ${args?.order_id} is shipped (${marker})` : `${name} is not scripted`;
      send({ id: request.id, result: { content: [{ type: "text", text }], isError: name !== "lookup_order" } });
      break;
    }
    case "ping":
      send({ id: request.id, result: {} });
      break;
    default:
      send({ id: request.id, error: { code: -32601, message: `method not found: ${request.method}` } });
  }
});

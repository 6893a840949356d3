// The reference filesystem server's read_text_file, served over streamable HTTP for benchmarks/bench_mcp.py.
//
// @modelcontextprotocol/server-filesystem only speaks stdio; this serves the same handler logic (its own
// validatePath / readFileContent from lib.js, same result shape) with the TypeScript SDK's streamable HTTP transport,
// one session per client.  Usage: node ref-http.mjs <port> <allowed-dir>
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { realpathSync } from "node:fs";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";
import {
  readFileContent, setAllowedDirectories, validatePath,
} from "@modelcontextprotocol/server-filesystem/dist/lib.js";

const [port, dir] = [Number(process.argv[2]), process.argv[3]];
setAllowedDirectories([realpathSync(dir)]);

function buildServer() {
  const server = new McpServer({ name: "reference-filesystem-http", version: "1.0.0" });
  server.registerTool("read_text_file", {
    description: "Read the complete contents of a file from the file system as text.",
    inputSchema: { path: z.string(), tail: z.number().optional(), head: z.number().optional() },
    outputSchema: { content: z.string() },
    annotations: { readOnlyHint: true, openWorldHint: false },
  }, async (args) => {
    const content = await readFileContent(await validatePath(args.path));
    return { content: [{ type: "text", text: content }], structuredContent: { content } };
  });
  return server;
}

const sessions = new Map();
createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : undefined;
  const sid = req.headers["mcp-session-id"];
  let transport = sid ? sessions.get(sid) : undefined;
  if (!transport) {
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => sessions.set(id, transport),
    });
    transport.onclose = () => transport.sessionId && sessions.delete(transport.sessionId);
    await buildServer().connect(transport);
  }
  await transport.handleRequest(req, res, body);
}).listen(port, "127.0.0.1", () => console.error(`reference HTTP server on 127.0.0.1:${port}`));

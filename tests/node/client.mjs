// Cross-language MCP client (the TypeScript SDK) for mcpgym's tests and benchmarks.
//
// Usage: node client.mjs '<json config>'   (prints one JSON object on stdout)
//   config.target: {transport: "stdio", command, args, env?} | {transport: "http", url, headers?}
//   config.mode "smoke": list tools, then make each of config.calls [{name, arguments}] in order
//   config.mode "bench": config.bench = {tool, arguments, calls, clients}; connects `clients` clients (stdio: one
//     server process each; http: one session each), then makes `calls` calls in total, split evenly across them,
//     each client sequential; reports wall-clock seconds for the calls (connection set-up excluded).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

function transportFor(target) {
  if (target.transport === "stdio") {
    return new StdioClientTransport({
      command: target.command,
      args: target.args ?? [],
      env: { ...process.env, ...(target.env ?? {}) },
      stderr: "inherit",
    });
  }
  if (target.transport === "http") {
    return new StreamableHTTPClientTransport(new URL(target.url), {
      requestInit: { headers: target.headers ?? {} },
    });
  }
  throw new Error(`target.transport must be "stdio" or "http", got ${JSON.stringify(target.transport)}`);
}

async function connect(target) {
  const client = new Client({ name: "mcpgym-node-client", version: "1.0.0" });
  const transport = transportFor(target);
  await client.connect(transport);
  return { client, transport };
}

async function close({ client, transport }) {
  if (transport.terminateSession) {
    try { await transport.terminateSession(); } catch { /* server may be gone */ }
  }
  await client.close();
}

async function smoke(config) {
  const conn = await connect(config.target);
  try {
    const tools = (await conn.client.listTools()).tools.map((t) => t.name);
    const calls = [];
    for (const call of config.calls ?? []) {
      const result = await conn.client.callTool({ name: call.name, arguments: call.arguments ?? {} });
      calls.push({
        name: call.name,
        isError: result.isError === true,
        text: (result.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n"),
        structured: result.structuredContent ?? null,
      });
    }
    return { protocolVersion: conn.transport.protocolVersion ?? null, tools, calls };
  } finally {
    await close(conn);
  }
}

async function bench(config) {
  const { tool, calls, clients } = config.bench;
  const argsFor = (i) => JSON.parse(JSON.stringify(config.bench.arguments).replaceAll("{i}", String(i)));
  const conns = await Promise.all(Array.from({ length: clients }, () => connect(config.target)));
  try {
    const perClient = Math.floor(calls / clients);
    // one warm-up call per client, not timed
    await Promise.all(conns.map((c, k) => c.client.callTool({ name: tool, arguments: argsFor(k) })));
    let errors = 0;
    const start = process.hrtime.bigint();
    await Promise.all(conns.map(async (c, k) => {
      for (let j = 0; j < perClient; j++) {
        const result = await c.client.callTool({ name: tool, arguments: argsFor(k * perClient + j) });
        if (result.isError) errors++;
      }
    }));
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    return { calls: perClient * clients, clients, seconds, errors };
  } finally {
    await Promise.all(conns.map(close));
  }
}

const config = JSON.parse(process.argv[2] ?? "{}");
const run = config.mode === "bench" ? bench : config.mode === "smoke" ? smoke : null;
if (!run) {
  console.error('config.mode must be "smoke" or "bench"');
  process.exit(2);
}
run(config).then(
  (out) => { process.stdout.write(JSON.stringify(out) + "\n"); process.exit(0); },
  (err) => { console.error(String(err?.stack ?? err)); process.exit(1); },
);

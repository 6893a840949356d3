// Cross-language MCP client (the TypeScript SDK) for mcpgym's tests and benchmarks.
//
// Usage: node client.mjs '<json config>'   (prints one JSON object on stdout)
//   config.target: {transport: "stdio", command, args, env?} | {transport: "http", url, headers?}
//   config.mode "smoke": list tools, then make each of config.calls [{name, arguments}] in order
//   config.mode "bench": config.bench = {tool, arguments, calls, clients}; connects `clients` clients (stdio: one
//     server process each; http: one session each), then makes `calls` calls in total, split evenly across them,
//     each client sequential; reports wall-clock seconds for the calls (connection set-up excluded) and, over stdio,
//     the CPU seconds the server processes used meanwhile (a figure that a busy machine disturbs less).
//   config.mode "sessions": config.bench = {tool, arguments, calls, clients}; `calls` sessions in total, `clients` at
//     a time, each opened (initialize; over HTTP a new MCP session), used for one call and closed (HTTP: the DELETE
//     that ends the session), as an RL episode does; reports wall-clock seconds for all of it.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { readFileSync } from "node:fs";

// CPU seconds (user + system) a process has used so far, from /proc (Linux); null where unavailable.
function cpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime in clock ticks (USER_HZ = 100)
  } catch {
    return null;
  }
}

function serverCpu(conns) {
  const values = conns.map((c) => (c.transport.pid ? cpuSeconds(c.transport.pid) : null));
  return values.some((v) => v === null) ? null : values.reduce((a, b) => a + b, 0);
}

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
    const share = (k) => Math.floor(calls / clients) + (k < calls % clients ? 1 : 0);
    const offset = (k) => Array.from({ length: k }, (_, j) => share(j)).reduce((a, b) => a + b, 0);
    // one warm-up call per client, not timed
    await Promise.all(conns.map((c, k) => c.client.callTool({ name: tool, arguments: argsFor(k) })));
    let errors = 0;
    const cpuBefore = serverCpu(conns);
    const start = process.hrtime.bigint();
    await Promise.all(conns.map(async (c, k) => {
      const first = offset(k);
      for (let j = 0; j < share(k); j++) {
        const result = await c.client.callTool({ name: tool, arguments: argsFor(first + j) });
        if (result.isError) errors++;
      }
    }));
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const cpuAfter = serverCpu(conns);
    const serverCpuSeconds = cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore;
    return { calls, clients, seconds, serverCpuSeconds, errors };
  } finally {
    await Promise.all(conns.map(close));
  }
}

async function sessions(config) {
  const { tool, calls, clients } = config.bench;
  const argsFor = (i) => JSON.parse(JSON.stringify(config.bench.arguments).replaceAll("{i}", String(i)));
  let errors = 0;
  let next = 0;
  const once = async (i) => {
    const conn = await connect(config.target);
    try {
      const result = await conn.client.callTool({ name: tool, arguments: argsFor(i) });
      if (result.isError) errors++;
    } finally {
      await close(conn);
    }
  };
  await once(0); // warm-up, not timed
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < calls) await once(next++);
  }));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { calls, clients, seconds, serverCpuSeconds: null, errors };
}

const config = JSON.parse(process.argv[2] ?? "{}");
const modes = { bench, smoke, sessions };
const run = modes[config.mode] ?? null;
if (!run) {
  console.error('config.mode must be "smoke", "bench" or "sessions"');
  process.exit(2);
}
run(config).then(
  (out) => { process.stdout.write(JSON.stringify(out) + "\n"); process.exit(0); },
  (err) => { console.error(String(err?.stack ?? err)); process.exit(1); },
);

// The services the browser tests talk to. scripts/test-console starts the
// pair with scripts/lib/services.sh (collector-service and an api-service
// with authentication off, serving the console) and hands over, in the
// environment:
//   CUDLY_E2E_BIN       the directory of the binaries
//   CUDLY_API_URL       that api-service (authentication off)
//   CUDLY_CONSOLE_DIR   the built console
//   DATABASE_URL, CUDLY_COLLECTOR_URL, CUDLY_COLLECTOR_TOKEN_FILE
//   CUDLY_E2E_LOGS      where service logs go
// Tests that must stop an api-service or run one with other settings start
// their own here, on the same database and collector.
import { execFile, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

// api-services this process started and has not stopped: killed when it
// exits however it exits, so none outlives the test file.
const running = new Set();
process.on('exit', () => { for (const c of running) c.kill('SIGKILL'); });
process.once('SIGINT', () => process.exit(130));
process.once('SIGTERM', () => process.exit(143));

export function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the browser tests through scripts/test-console`);
  return value;
}

export const bin = (name) => join(need('CUDLY_E2E_BIN'), name);
export const logsDir = () => process.env.CUDLY_E2E_LOGS || '/tmp';

/** A port the kernel says is free on 127.0.0.1. */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** cudlyctl with `-o json`; resolves to the parsed lines. */
export async function cudlyctl(args, { api = need('CUDLY_API_URL'), token } = {}) {
  const env = { ...process.env, CUDLY_API_URL: api };
  if (token) env.CUDLY_TOKEN = token; else delete env.CUDLY_TOKEN;
  const { stdout } = await run(bin('cudlyctl'), ['-o', 'json', ...args], { env, timeout: 30_000, maxBuffer: 64 << 20 });
  return stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

async function healthy(url, deadlineMs) {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    try {
      await run(bin('cudlyctl'), ['health'], { env: { ...process.env, CUDLY_API_URL: url }, timeout: 5000 });
      return true;
    } catch {
      await sleep(100);
    }
  }
  return false;
}

/**
 * An api-service of the test's own on 127.0.0.1:port (a free one by default),
 * serving the console, with `env` on top of the inherited settings. It can be
 * stopped and started again on the same port.
 */
export function apiService({ name, env = {}, port } = {}) {
  return service('api-service', 'CUDLY_API_LISTEN', { name, env, port });
}

/**
 * A collector-service of the test's own (same database, token and simulated
 * fleet unless `env` says otherwise), for an api-service of the test's own
 * to deliver to (CUDLY_COLLECTOR_URL = its `url`).
 */
export function collectorService({ name, env = {}, port } = {}) {
  return service('collector-service', 'CUDLY_COLLECTOR_LISTEN', { name, env, port });
}

async function service(binary, listenVariable, { name, env, port }) {
  port ??= await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = createWriteStream(join(logsDir(), `${name}.log`), { flags: 'a' });
  let child = null;

  const settings = () => {
    const merged = {
      ...process.env,
      RUST_LOG: process.env.RUST_LOG || 'warn',
      [listenVariable]: `127.0.0.1:${port}`,
      CUDLY_METRICS_LISTEN: 'off',
      ...env,
    };
    for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k];
    return merged;
  };

  const api = {
    url,
    port,
    get pid() { return child?.pid; },
    async start() {
      if (child) throw new Error(`${name} is already running`);
      child = spawn(bin(binary), [], { env: settings(), stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.pipe(log, { end: false });
      child.stderr.pipe(log, { end: false });
      const c = child;
      running.add(c);
      c.exited = new Promise((resolve) => c.once('exit', () => { running.delete(c); resolve(); }));
      if (!(await healthy(url, 15_000))) {
        await api.stop();
        throw new Error(`${name} did not come up on ${url}; see ${join(logsDir(), `${name}.log`)}`);
      }
    },
    /** SIGTERM (graceful, as Kubernetes stops a pod), SIGKILL after `graceMs`. */
    async stop({ graceMs = 5000 } = {}) {
      if (!child) return;
      const c = child;
      child = null;
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGTERM');
        const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
        await c.exited;
        clearTimeout(timer);
      }
    },
  };
  await api.start();
  return api;
}

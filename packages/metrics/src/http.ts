/**
 * The scrape endpoint: `GET /metrics` (and `HEAD`) over node:http, on an address the app
 * chooses. Other paths answer 404, other methods 405. Closing stops accepting, lets an in-flight
 * scrape finish for a short grace period, then cuts what is left (keep-alive sockets included),
 * so an app's shutdown never waits on a scraper.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MetricsError, MetricsErrorCode } from './errors.js';
import { PROMETHEUS_CONTENT_TYPE } from './registry.js';

/** Where the exposition comes from: a registry (or anything with `render()`), or a function. */
export type MetricsSource = { render(): string } | (() => string);

export interface MetricsServerOptions {
  /** Path of the exposition (default `/metrics`; a query string is ignored). */
  readonly path?: string | undefined;
  /** Program name for the plain-text pointer served at `/` (default `pinhole`). */
  readonly name?: string | undefined;
  /** How long `close()` lets in-flight requests finish before cutting them (default 500 ms). */
  readonly closeGraceMs?: number | undefined;
}

function renderOf(source: MetricsSource): () => string {
  return typeof source === 'function' ? source : () => source.render();
}

/** The HTTP endpoint of a registry. One `listen` per instance. */
export class MetricsServer {
  readonly #render: () => string;
  readonly #path: string;
  readonly #name: string;
  readonly #graceMs: number;
  #server: Server | undefined;
  #address: { host: string; port: number } | undefined;
  #closing: Promise<void> | undefined;

  constructor(source: MetricsSource, options: MetricsServerOptions = {}) {
    this.#render = renderOf(source);
    this.#path = options.path ?? '/metrics';
    this.#name = options.name ?? 'pinhole';
    this.#graceMs = options.closeGraceMs ?? 500;
  }

  /** The bound address (port 0 resolved), once listening. */
  get address(): { readonly host: string; readonly port: number } | undefined {
    return this.#address;
  }

  /** The underlying node:http server, once listening. */
  get server(): Server | undefined {
    return this.#server;
  }

  /** Binds `host:port` (port 0: any free port); resolves with the bound address. */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    if (this.#server)
      throw new MetricsError(MetricsErrorCode.Duplicate, 'metrics: already listening');
    const server = createServer((req, res) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res
          .writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' })
          .end('method not allowed\n');
        return;
      }
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q === -1 ? url : url.slice(0, q);
      if (path === this.#path) {
        let body: string;
        try {
          body = this.#render();
        } catch {
          res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
          return;
        }
        res.writeHead(200, {
          'content-type': PROMETHEUS_CONTENT_TYPE,
          'content-length': Buffer.byteLength(body),
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      } else if (path === '/') {
        res
          .writeHead(200, { 'content-type': 'text/plain' })
          .end(`${this.#name}: see ${this.#path}\n`);
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found; try ${this.#path}\n`);
      }
    });
    // A scraper that sends garbage or stalls costs nothing: drop it.
    server.on('clientError', (_err, socket) => socket.destroy());
    server.requestTimeout = 10_000;
    server.headersTimeout = 10_000;
    this.#server = server;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      this.#server = undefined;
      throw e;
    }
    const a = server.address() as AddressInfo;
    this.#address = { host: a.address, port: a.port };
    return { ...this.#address };
  }

  /** Stops listening; idempotent. Resolves when every connection is gone. */
  close(): Promise<void> {
    const s = this.#server;
    if (!s) return Promise.resolve();
    this.#closing ??= new Promise<void>((resolve) => {
      const cut = setTimeout(() => s.closeAllConnections(), this.#graceMs);
      cut.unref();
      s.close(() => {
        clearTimeout(cut);
        resolve();
      });
      s.closeIdleConnections();
    });
    return this.#closing;
  }
}

/** What `serveMetrics` returns: the bound endpoint, closable with a promise or a callback. */
export interface MetricsEndpoint {
  readonly server: Server;
  readonly host: string;
  readonly port: number;
  /** Same shape as `net.Server#address()`. */
  address(): AddressInfo;
  close(callback?: () => void): Promise<void>;
}

/** Starts a `MetricsServer` on `host:port`; resolves once listening. */
export async function serveMetrics(
  source: MetricsSource,
  host: string,
  port: number,
  options?: MetricsServerOptions,
): Promise<MetricsEndpoint> {
  const ms = new MetricsServer(source, options);
  const a = await ms.listen(host, port);
  const server = ms.server;
  if (!server) throw new MetricsError(MetricsErrorCode.NotListening, 'metrics: not listening');
  return {
    server,
    host: a.host,
    port: a.port,
    address: () => server.address() as AddressInfo,
    close: async (callback) => {
      await ms.close();
      callback?.();
    },
  };
}

/** Serves the metrics registry at `GET /metrics` over HTTP. */
import { createServer, type Server } from 'node:http';
import { PROMETHEUS_CONTENT_TYPE, type MetricsRegistry } from './metrics.js';

export class MetricsServer {
  readonly #registry: MetricsRegistry;
  #server: Server | undefined;

  constructor(registry: MetricsRegistry) {
    this.#registry = registry;
  }

  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => {
      if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
        res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE });
        res.end(this.#registry.render());
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found; try /metrics\n');
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const a = server.address();
    if (a === null || typeof a === 'string') throw new Error('metrics server has no address');
    return { host: a.address, port: a.port };
  }

  async close(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }
}

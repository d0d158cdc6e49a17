/**
 * The sidecar assembled: HEP listeners -> ingress (decode, filter) -> normalizer (observations,
 * de-duplication) -> pinhole control (the seam) and the metrics endpoint.
 */
import type { SidecarConfig } from './config.js';
import { SidecarError, SidecarErrorCode } from './errors.js';
import { MetricsServer } from '@pinhole/metrics';
import { CaptureNormalizer, type NormalizerClock } from './normalizer.js';
import type { SipParser } from './observation.js';
import {
  HepIngress,
  HepTcpReceiver,
  HepUdpReceiver,
  silentLogger,
  type ListenAddress,
  type SidecarLogger,
} from './receiver.js';
import type { PinholeControl } from './seam.js';
import { createSidecarMetrics, type SidecarMetrics } from './sidecar-metrics.js';

export interface SidecarDeps {
  readonly parse: SipParser;
  readonly control: PinholeControl;
  readonly logger?: SidecarLogger;
  readonly metrics?: SidecarMetrics;
  readonly clock?: NormalizerClock;
}

export interface SidecarAddresses {
  readonly hep: readonly (ListenAddress & { readonly transport: 'udp' | 'tcp' })[];
  readonly metrics: ListenAddress | undefined;
}

export class Sidecar {
  readonly config: SidecarConfig;
  readonly metrics: SidecarMetrics;
  readonly normalizer: CaptureNormalizer;
  readonly ingress: HepIngress;
  readonly #deps: SidecarDeps;
  readonly #log: SidecarLogger;
  readonly #closers: (() => Promise<void>)[] = [];

  constructor(config: SidecarConfig, deps: SidecarDeps) {
    this.config = config;
    this.#deps = deps;
    this.#log = deps.logger ?? silentLogger;
    this.metrics = deps.metrics ?? createSidecarMetrics();
    const control = deps.control;
    this.normalizer = new CaptureNormalizer({
      serverAddresses: config.serverAddresses,
      parse: deps.parse,
      metrics: this.metrics,
      twinWaitMs: config.twinWaitMs,
      windowMs: config.dedupWindowMs,
      maxEntries: config.maxDedupEntries,
      ...(deps.clock ? { clock: deps.clock } : {}),
      onObservation: (o) => control.observe(o),
      onSettle: (o, source) => control.settle(o, source),
      onDrop: (reason, packet, detail) =>
        this.#log.debug(
          {
            reason,
            detail,
            src: `${packet.srcAddress ?? '?'}:${packet.srcPort ?? '?'}`,
            dst: `${packet.dstAddress ?? '?'}:${packet.dstPort ?? '?'}`,
          },
          'HEP packet gave no SIP observation',
        ),
    });
    this.ingress = new HepIngress({
      captureIds: config.captureIds,
      ...(config.authKey !== undefined ? { authKey: config.authKey } : {}),
      metrics: this.metrics,
      logger: this.#log,
      onPacket: (p, source) => {
        this.normalizer.push(p, source);
      },
    });
  }

  /** Binds every listener; on failure closes what was bound and throws SIDECAR_ERR_LISTEN. */
  async start(): Promise<SidecarAddresses> {
    const hep: (ListenAddress & { transport: 'udp' | 'tcp' })[] = [];
    let metrics: ListenAddress | undefined;
    try {
      for (const l of this.config.hep) {
        if (l.transport === 'udp') {
          const r = new HepUdpReceiver(this.ingress, this.#log);
          this.#closers.push(() => r.close());
          hep.push({ transport: 'udp', ...(await r.listen(l)) });
        } else {
          const r = new HepTcpReceiver(
            this.ingress,
            this.metrics,
            {
              maxConnections: this.config.tcpMaxConnections,
              idleTimeoutMs: this.config.tcpIdleTimeoutMs,
              onGarbage: this.config.tcpOnGarbage,
            },
            this.#log,
          );
          this.#closers.push(() => r.close());
          hep.push({ transport: 'tcp', ...(await r.listen(l)) });
        }
      }
      if (this.config.metrics) {
        const s = new MetricsServer(this.metrics.registry);
        this.#closers.push(() => s.close());
        metrics = await s.listen(this.config.metrics.host, this.config.metrics.port);
      }
    } catch (err) {
      await this.close();
      throw new SidecarError(SidecarErrorCode.listen, `cannot listen: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return { hep, metrics };
  }

  async close(): Promise<void> {
    const closers = this.#closers.splice(0).reverse();
    for (const c of closers) await c();
    this.normalizer.flush();
    await this.#deps.control.close();
  }
}

/**
 * THE SEAM between the capture side of the sidecar (HEP in, SIP observations out: this package)
 * and pinhole control (the observer-mode transaction layer, the policy and the FCP client, wired
 * in a later change). The integration implements `PinholeControl`; until then the CLI runs with
 * `UnwiredPinholeControl`, which only logs and says so at start.
 */
import type { MediaSource, SipObservation } from './observation.js';

export interface PinholeControl {
  /** A short name for logs (`unwired`, `transaction+policy+fcp`). */
  readonly name: string;
  /** False while no firewall is driven: the CLI warns at start. */
  readonly drivesFirewall: boolean;
  /**
   * Every copy, in arrival order, twins, forks and retransmissions included. This is the input
   * of the transaction layer's observer mode: `kind` gives the direction (received-by-server =
   * towards the server's server transactions, sent-by-server = from its client transactions),
   * `src`/`dst`/`transport` the hop. Must not throw; must not block (queue async work).
   */
  observe(observation: SipObservation): void;
  /**
   * Once per message (per `key`): the copy the policy should read SDP from. Called at once for
   * a sent copy; for a received copy only when no sent copy arrived within the twin wait.
   */
  settle(observation: SipObservation, source: MediaSource): void;
  /** Flushes and releases resources (close FCP sessions per the fail mode). */
  close(): Promise<void>;
}

/** Minimal logger (pino fits). */
interface SeamLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
}

function summary(o: SipObservation): Record<string, unknown> {
  const m = o.message;
  return {
    seq: o.seq,
    kind: o.kind,
    copy: o.copy,
    start: m.isRequest ? m.method : m.status,
    cseq: m.get('cseq'),
    callId: m.callId(),
    src: `${o.src.address}:${o.src.port}`,
    dst: `${o.dst.address}:${o.dst.port}`,
    transport: o.transport,
    sdp: m.contentType() === 'application/sdp',
  };
}

/** The honest placeholder: logs what it sees, drives nothing. */
export class UnwiredPinholeControl implements PinholeControl {
  readonly name = 'unwired';
  readonly drivesFirewall = false;
  readonly #log: SeamLogger;
  observed = 0;
  settled = 0;

  constructor(logger: SeamLogger) {
    this.#log = logger;
  }

  observe(observation: SipObservation): void {
    this.observed++;
    this.#log.debug(summary(observation), 'SIP observation');
  }

  settle(observation: SipObservation, source: MediaSource): void {
    this.settled++;
    this.#log.info({ ...summary(observation), source }, 'SIP message settled');
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The sidecar's metrics, registered once and handed to the components that count. */
import { MetricsRegistry, type Counter, type Gauge, type Histogram } from '@pinhole/metrics';

/** What happened to a HEP packet (the `outcome` label). */
export type HepOutcome =
  'accepted' | 'decode_error' | 'unknown_capture_id' | 'bad_auth_key' | 'stream_garbage';

/** Why a decoded HEP packet did not become a SIP observation (the `reason` label). */
export type ObservationDropReason =
  'not_sip' | 'no_payload' | 'no_addresses' | 'sip_parse_error' | 'not_server_traffic';

export interface SidecarMetrics {
  readonly registry: MetricsRegistry;
  /** labels: transport (udp|tcp), type (sip, rtcp, log, other, none, unknown), outcome. */
  readonly hepPackets: Counter;
  /** labels: code (HEP_ERR_...). */
  readonly hepDecodeErrors: Counter;
  readonly hepTcpConnections: Gauge;
  /** labels: kind (received-by-server|sent-by-server), copy (first|twin|retransmission). */
  readonly sipObservations: Counter;
  /** labels: reason. */
  readonly sipDropped: Counter;
  readonly dedupEntries: Gauge;
  /** labels: source (sent-copy|received-copy). */
  readonly mediaSources: Counter;
  /** Seconds from the HEP timestamp (capture time at the agent) to arrival here. */
  readonly captureLag: Histogram;
}

export function createSidecarMetrics(
  registry: MetricsRegistry = new MetricsRegistry(),
): SidecarMetrics {
  return {
    registry,
    hepPackets: registry.counter(
      'pinhole_sidecar_hep_packets_total',
      'HEP packets received, by transport, HEP protocol type and outcome.',
      ['transport', 'type', 'outcome'],
    ),
    hepDecodeErrors: registry.counter(
      'pinhole_sidecar_hep_decode_errors_total',
      'HEP packets that failed to decode, by error code.',
      ['code'],
    ),
    hepTcpConnections: registry.gauge(
      'pinhole_sidecar_hep_tcp_connections',
      'Open HEP-over-TCP connections.',
    ),
    sipObservations: registry.counter(
      'pinhole_sidecar_sip_observations_total',
      'SIP messages observed, by which side of the SIP server the copy was taken and whether it was the first copy, the twin (as received / as sent) or a retransmission.',
      ['kind', 'copy'],
    ),
    sipDropped: registry.counter(
      'pinhole_sidecar_sip_dropped_total',
      'Accepted HEP packets that did not give a SIP observation, by reason.',
      ['reason'],
    ),
    dedupEntries: registry.gauge(
      'pinhole_sidecar_dedup_entries',
      'Messages remembered by the de-duplication table.',
    ),
    mediaSources: registry.counter(
      'pinhole_sidecar_media_sources_total',
      'Messages handed to pinhole control once, by the copy they were read from.',
      ['source'],
    ),
    captureLag: registry.histogram(
      'pinhole_sidecar_hep_capture_lag_seconds',
      'Seconds from the capture agent timestamp of a HEP packet to its arrival at the sidecar (clock skew between hosts included; negative values count as 0).',
      [],
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    ),
  };
}

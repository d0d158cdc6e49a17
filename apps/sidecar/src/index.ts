export {
  decodeHep,
  hepProtocolName,
  isHep3Magic,
  HepChunk,
  HepErrorCode,
  HepProtocolType,
  HepVendor,
  HEP_FAMILY_IPV4,
  HEP_FAMILY_IPV6,
  HEP_MAX_PACKET_BYTES,
} from './hep.js';
export type {
  HepDecodeError,
  HepDecodeOptions,
  HepDecodeResult,
  HepPacket,
  HepProtocolName,
  HepRawChunk,
} from './hep.js';
export { encodeHep, hepChunk, hepFrame } from './hep-encode.js';
export type { HepEncodeInput } from './hep-encode.js';
export { HepStreamFramer } from './hep-stream.js';
export type { HepStreamEvent, HepStreamOptions } from './hep-stream.js';
export { HepIngress, HepTcpReceiver, HepUdpReceiver, silentLogger } from './receiver.js';
export type {
  HepIngressOptions,
  HepSource,
  HepTcpOptions,
  ListenAddress,
  SidecarLogger,
} from './receiver.js';
export { CaptureNormalizer, messageKey, systemClock } from './normalizer.js';
export type { NormalizerClock, NormalizerOptions, ServerAddress } from './normalizer.js';
export type {
  CaptureInfo,
  CopyClass,
  Endpoint,
  HopTransport,
  MediaSource,
  ObservationKind,
  SipObservation,
  SipParser,
} from './observation.js';
export { UnwiredPinholeControl } from './seam.js';
export { createPinholeControl } from './control-factory.js';
export type { ControlFactoryDeps } from './control-factory.js';
export { createEngineControlMetrics, EnginePinholeControl } from './engine-control.js';
export type { EngineControlMetrics, EngineControlOptions } from './engine-control.js';
export { observedHop } from './observed-hop.js';
export type { PinholeControl } from './seam.js';
export { createSidecarMetrics } from './sidecar-metrics.js';
export type { HepOutcome, ObservationDropReason, SidecarMetrics } from './sidecar-metrics.js';
export {
  parseArgs,
  parseServerAddress,
  parseTransportAddress,
  validateConfig,
  USAGE,
} from './config.js';
export type {
  ArgsResult,
  Cidr,
  LogLevel,
  RawSidecarConfig,
  SidecarConfig,
  SourcePolicyName,
  TransportAddress,
} from './config.js';
export { SidecarConfigError, SidecarError, SidecarErrorCode } from './errors.js';
export { Sidecar } from './sidecar.js';
export type { SidecarAddresses, SidecarDeps } from './sidecar.js';

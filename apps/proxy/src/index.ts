/** @pinhole/proxy: embed the proxy (tests, other programs). The CLI is `pinhole-proxy`. */
export { startApp, startEmbeddedFcpd, buildPolicy, policyInput, DEFAULT_PROTECTED } from './app.js';
export type { AppHandle, AppOptions } from './app.js';
export {
  parseArgs,
  configFromObject,
  parseListen,
  parseRoute,
  parseFcp,
  parseCidr,
  sameListeners,
  usage,
  DEFAULT_CONFIG,
  DEFAULT_LISTEN,
} from './config.js';
export type {
  ProxyConfig,
  ListenAddress,
  RouteRule,
  FcpServerAddress,
  SourcePolicy,
  FailMode,
  LogLevel,
  CliOptions,
} from './config.js';
export { ProxyError, ConfigError, ProxyErrorCode } from './errors.js';
export { Firewall, toFcpPme } from './firewall.js';
export type { FcpPort, FcpPmeInput, FirewallOptions } from './firewall.js';
export {
  ProxyMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
  Summary,
  serveMetrics,
} from './metrics.js';
export type { MetricsEndpoint } from './metrics.js';
export { ProxyCore, NO_GATE } from './proxy-core.js';
export type {
  CoreTransport,
  GateAction,
  GateDecision,
  GateEvent,
  Logger,
  MediaGate,
  ProxyCoreOptions,
} from './proxy-core.js';
export { startProxy } from './proxy.js';
export type { RunningProxy, StartOptions } from './proxy.js';
export { Registrar, canonicalAor } from './registrar.js';
export type { Binding, RegisterRequest, RegisterResult, RegistrarOptions } from './registrar.js';
export { StaticRouter, dialledNumber } from './routing.js';
export { Transports, SOCKET_BUFFER_BYTES } from './transport.js';
export type { Inbound, Listener, Peer } from './transport.js';
export { WorkerDispatch, callIdOf, ownerOf } from './dispatch.js';

export type {
  FirewallBackend,
  FirewallRule,
  InstalledRule,
  IpPrefix,
  PortRange,
  RuleMeta,
} from './backend.js';
export { FcpError, FcpErrorCode } from './errors.js';
export type { FcpErrorOptions } from './errors.js';
export { FcpStatus, reasonPhrase, isSuccess } from './status.js';
export {
  parseAddress,
  parsePrefix,
  formatAddress,
  formatPrefix,
  prefixContains,
  normalizeClientAddress,
} from './ip.js';
export type { IpBytes, ParsedPrefix } from './ip.js';
export {
  canonicalPme,
  pmeKey,
  pmeMembers,
  pmeMatches,
  toPme,
  toFirewallRule,
  fromFirewallRule,
} from './pme.js';
export type { Pme, PmeInput, SetOptions, FcpAction, FcpInterface, IcmpType } from './pme.js';
export {
  parseRequest,
  encodeRequest,
  encodeRequestWithSeq,
  tokenize,
  parseRuleLine,
  FCP_METHODS,
} from './request.js';
export type {
  FcpRequest,
  FcpMethod,
  SetRequest,
  ReleaseRequest,
  QueryRequest,
  QueryNatRequest,
  ReleaseNatRequest,
  NatSpec,
  RequestError,
  RequestParseResult,
  RequestWithoutSeq,
  QueryRuleView,
} from './request.js';
export { RequestFramer, DEFAULT_MAX_REQUEST_BYTES } from './request-framer.js';
export type { FramerEvent, RequestFramerOptions } from './request-framer.js';
export { encodeResponse, formatQueryRule, ResponseDecoder } from './response.js';
export type {
  FcpResponse,
  DecodedResponse,
  NatBinding,
  QueryRuleEntry,
  ResponseBodyKind,
  ResponseEvent,
  ResponseStyle,
  ResponseDecoderOptions,
} from './response.js';
export { validateServerConfig } from './config.js';
export type {
  FcpServerConfig,
  ListenerConfig,
  PolicyConfig,
  LimitsConfig,
  NatConfig,
  ResolvedServerConfig,
  ResolvedPolicy,
  ResolvedLimits,
  ResolvedNat,
} from './config.js';
export { policyViolation } from './policy.js';
export { ExpiryQueue, systemTimers } from './expiry-queue.js';
export type { TimerApi } from './expiry-queue.js';
export { FcpServer } from './server.js';
export type {
  FcpServerEvents,
  FcpServerOptions,
  FcpServerStats,
  FcpClientInfo,
  FcpLogger,
  FcpTransport,
  ServerRule,
  RequestEventInfo,
  RuleEventInfo,
  BoundAddress,
} from './server.js';
export { MemoryBackend } from './memory-backend.js';
export type { MemoryBackendOptions } from './memory-backend.js';
export { FcpClient, isNoMatchingRuleReason } from './client.js';
export type {
  FcpClientOptions,
  FcpClientEvents,
  FcpResult,
  ServerOutcome,
  OutcomeKind,
  SetParams,
  NatParams,
  ClientResponseEvent,
  RequestOrigin,
} from './client.js';
export { FcpConnection } from './connection.js';
export type {
  ServerEndpoint,
  ReconnectOptions,
  ConnectionOptions,
  ConnectionEvents,
  UnsequencedRequest,
} from './connection.js';
export type { ClientTransport } from './connection.js';
export { FcpUdpConnection } from './udp-connection.js';
export type { UdpConnectionOptions } from './udp-connection.js';

export {
  DEFAULTS,
  resolveConfig,
  validateConfig,
  type CloseOnBye,
  type ConfigResult,
  type MediaProtocol,
  type OpenOn,
  type PolicyConfig,
  type PolicyConfigInput,
  type SessionTimerMode,
  type SourceFallback,
  type SourcePolicy,
} from './config.js';
export { PolicyError, PolicyErrorCode, type ConfigIssue } from './errors.js';
export type {
  PolicyEvent,
  SipEvent,
  TransactionEndedEvent,
  TransactionOutcome,
  TransportAddress,
} from './events.js';
export type {
  CloseIntent,
  DialogRef,
  HeaderAction,
  Intent,
  IntentReason,
  IpPrefix,
  OpenIntent,
  Pme,
  PolicyResult,
  ProxyAction,
  Refusal,
  RefusalCode,
  RefreshIntent,
  RejectAction,
  StreamRef,
} from './intents.js';
export {
  formatNetwork,
  inNetwork,
  ipFromBytes,
  parseIp,
  parseNetwork,
  type IpAddress,
  type IpFamily,
  type IpNetwork,
} from './ip.js';
export { checkHole, pmeKey, type SafetyVerdict } from './safety.js';
export {
  Policy,
  type HoleSnapshot,
  type PolicyOptions,
  type PolicyStats,
  type SdpReader,
} from './policy.js';

/**
 * @pinhole/transaction: the RFC 3261 §17 transaction layer (with RFC 6026), stateful proxy
 * support (§16), callbacks a firewall module hooks, and an observer mode for passive capture.
 */
export { TransactionLayer } from './layer.js';
export type {
  AnyTransaction,
  LayerStats,
  ObservedHop,
  TransactionLayerOptions,
  TransactionUser,
} from './layer.js';
export { ProxyContext } from './proxy.js';
export type { ClientTransaction, ForwardOptions, ServerTransaction } from './proxy.js';
export {
  INVITE_CLIENT_EDGES,
  InviteClientTransaction,
  InviteClientState,
} from './invite-client-transaction.js';
export {
  NON_INVITE_CLIENT_EDGES,
  NonInviteClientTransaction,
  NonInviteClientState,
} from './non-invite-client-transaction.js';
export {
  INVITE_SERVER_EDGES,
  InviteServerTransaction,
  InviteServerState,
} from './invite-server-transaction.js';
export {
  NON_INVITE_SERVER_EDGES,
  NonInviteServerTransaction,
  NonInviteServerState,
} from './non-invite-server-transaction.js';
export { Transaction } from './transaction.js';
export type { Outcome, TimerName, TransactionKind } from './transaction.js';
export { TransactionEvent, TransactionEventNames, isHoldDecision, isHoldable } from './events.js';
export type {
  Direction,
  HoldDecision,
  HoldableEventName,
  ListenerOptions,
  TransactionEventName,
  TransactionListener,
} from './events.js';
export {
  DEFAULT_TIMER_CONFIG,
  FakeClock,
  nextInterval,
  systemClock,
  timerConfig,
  timerValues,
} from './timers.js';
export type { Clock, TimerConfig, TimerHandle, TimerValues } from './timers.js';
export { defaultIsReliable, responseDestination } from './address.js';
export type { Address, Transport } from './address.js';
export { SerializedMessage } from './wire.js';
export type { OutgoingMessage } from './wire.js';
export {
  MAGIC_COOKIE,
  acceptedKey,
  cancelledClientKey,
  cancelledInviteKey,
  clientKey,
  serverKey,
} from './keys.js';
export { dialogId, dialogKey, dialogSides, dialogState } from './dialog.js';
export type { DialogId, DialogSides, DialogState } from './dialog.js';
export {
  buildAck,
  buildCancel,
  buildLocalResponse,
  newBranch,
  newTag,
  reasonPhrase,
  REASONS,
} from './messages.js';
export { selectBest } from './best-response.js';
export type { Candidate } from './best-response.js';
export { TransactionError, TransactionErrorCode } from './errors.js';

/**
 * The adapter from a SIP observation to the input of the transaction layer's observer mode
 * (`TransactionLayer.observe(message, hop)` of @pinhole/transaction, `mode: 'observer'`).
 * Directions are relative to the observed SIP server, as the layer expects.
 */
import type { ObservedHop } from '@pinhole/transaction';
import type { SipObservation } from './observation.js';

export function observedHop(o: SipObservation): ObservedHop {
  return {
    direction: o.kind === 'received-by-server' ? 'received' : 'sent',
    source: { transport: o.transport, host: o.src.address, port: o.src.port },
    destination: { transport: o.transport, host: o.dst.address, port: o.dst.port },
  };
}

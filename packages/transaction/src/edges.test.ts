import { describe, expect, it } from 'vitest';
import { INVITE_CLIENT_EDGES } from './invite-client-transaction.js';
import { INVITE_SERVER_EDGES, InviteServerTransaction } from './invite-server-transaction.js';
import {
  NON_INVITE_CLIENT_EDGES,
  NonInviteClientTransaction,
} from './non-invite-client-transaction.js';
import {
  NON_INVITE_SERVER_EDGES,
  NonInviteServerTransaction,
} from './non-invite-server-transaction.js';
import type { ServerTransaction } from './proxy.js';
import { UAC, UAS1, harness, request, response } from '../test/helpers.js';

/** The edges of RFC 3261 Figures 5-8 as amended by RFC 6026 Figures 5 and 7. */
describe('allowed-edge tables match the RFC figures', () => {
  it('INVITE client: Calling, Proceeding, Completed, Accepted, Terminated (RFC 6026 Figure 5)', () => {
    expect(INVITE_CLIENT_EDGES).toEqual({
      calling: ['proceeding', 'completed', 'accepted', 'terminated'],
      proceeding: ['completed', 'accepted', 'terminated'],
      completed: ['terminated'],
      accepted: ['terminated'],
      terminated: [],
    });
  });

  it('non-INVITE client: Trying, Proceeding, Completed, Terminated (RFC 3261 Figure 6)', () => {
    expect(NON_INVITE_CLIENT_EDGES).toEqual({
      trying: ['proceeding', 'completed', 'terminated'],
      proceeding: ['completed', 'terminated'],
      completed: ['terminated'],
      terminated: [],
    });
  });

  it('INVITE server: Proceeding, Completed, Confirmed, Accepted, Terminated (RFC 6026 Figure 7)', () => {
    expect(INVITE_SERVER_EDGES).toEqual({
      proceeding: ['completed', 'accepted', 'terminated'],
      completed: ['confirmed', 'terminated'],
      confirmed: ['terminated'],
      accepted: ['terminated'],
      terminated: [],
    });
  });

  it('non-INVITE server: Trying, Proceeding, Completed, Terminated (RFC 3261 Figure 8)', () => {
    expect(NON_INVITE_SERVER_EDGES).toEqual({
      trying: ['proceeding', 'completed', 'terminated'],
      proceeding: ['completed', 'terminated'],
      completed: ['terminated'],
      terminated: [],
    });
  });
});

describe('edges not covered elsewhere', () => {
  it('non-INVITE client: Proceeding -> Completed on a final response', () => {
    const h = harness();
    const req = request({ method: 'OPTIONS', branch: 'z9hG4bKe1' });
    const txn = h.layer.sendRequest(req, UAS1);
    if (!(txn instanceof NonInviteClientTransaction)) throw new Error('expected a NICT');
    h.layer.receive(response(req, 100), UAS1);
    expect(txn.state).toBe('proceeding');
    h.layer.receive(response(req, 200), UAS1);
    expect(txn.state).toBe('completed');
  });

  function server(method: string) {
    const h = harness({ trying: 'never' });
    let txn: ServerTransaction | undefined;
    h.layer.on('requestReceived', (e) => void (txn ??= e.transaction as ServerTransaction));
    h.layer.receive(request({ method, branch: 'z9hG4bKe2' }), UAC);
    if (txn === undefined) throw new Error('no server transaction');
    return { ...h, txn };
  }

  it('non-INVITE server: Proceeding -> Completed, and Proceeding -> Terminated on a transport error', () => {
    const a = server('OPTIONS');
    a.layer.reply(a.txn, 100);
    a.layer.reply(a.txn, 200);
    expect(a.txn).toBeInstanceOf(NonInviteServerTransaction);
    expect(a.txn.state).toBe('completed');
    const b = server('OPTIONS');
    b.layer.reply(b.txn, 100);
    b.transport.fail = () => 'throw';
    b.layer.reply(b.txn, 100);
    expect(b.txn.state).toBe('terminated');
  });

  it('INVITE server: Proceeding -> Terminated on a transport error while sending a provisional', () => {
    const h = server('INVITE');
    expect(h.txn).toBeInstanceOf(InviteServerTransaction);
    h.transport.fail = () => 'throw';
    h.layer.reply(h.txn, 180);
    expect(h.txn.state).toBe('terminated');
    expect(h.layer.size).toBe(0);
  });
});

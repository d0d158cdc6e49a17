import { describe, expect, it } from 'vitest';
import { acceptedKey, cancelledInviteKey, clientKey, flatKey, serverKey } from './keys.js';
import { dialogId, dialogKey, dialogSides, dialogState } from './dialog.js';
import { request, response } from '../test/helpers.js';

describe('server transaction matching (§17.2.3)', () => {
  it('matches on branch, sent-by and method', () => {
    const a = request({ branch: 'z9hG4bK1' });
    expect(serverKey(a)).toBe(serverKey(request({ branch: 'z9hG4bK1', callId: 'other' })));
    expect(serverKey(a)).not.toBe(serverKey(request({ branch: 'z9hG4bK2' })));
    expect(serverKey(a)).not.toBe(
      serverKey(request({ branch: 'z9hG4bK1', sentBy: '198.18.9.9:5060' })),
    );
    expect(serverKey(a)).not.toBe(serverKey(request({ branch: 'z9hG4bK1', method: 'OPTIONS' })));
  });

  it('matches an ACK to the INVITE that created the transaction', () => {
    expect(serverKey(request({ method: 'ACK', branch: 'z9hG4bK1' }))).toBe(
      serverKey(request({ branch: 'z9hG4bK1' })),
    );
  });

  it('keeps a CANCEL in a transaction of its own but finds the INVITE it cancels', () => {
    const cancel = request({ method: 'CANCEL', branch: 'z9hG4bK1' });
    const invite = request({ branch: 'z9hG4bK1' });
    expect(serverKey(cancel)).not.toBe(serverKey(invite));
    expect(cancelledInviteKey(cancel)).toBe(serverKey(invite));
  });

  it('matches a response sent on the transaction with the same key', () => {
    const invite = request({ branch: 'z9hG4bK1' });
    expect(serverKey(response(invite, 180))).toBe(serverKey(invite));
  });

  it('falls back to RFC 2543 matching without the magic cookie (From tag, Call-ID, CSeq, top Via)', () => {
    const old = request({ branch: '', fromTag: 'f1' });
    expect(serverKey(old)).toBe(serverKey(request({ branch: '', fromTag: 'f1' })));
    expect(serverKey(old)).not.toBe(serverKey(request({ branch: '', fromTag: 'f2' })));
    expect(serverKey(old)).not.toBe(serverKey(request({ branch: '', fromTag: 'f1', cseq: 2 })));
    expect(serverKey(request({ method: 'ACK', branch: '', fromTag: 'f1', toTag: 'x' }))).toBe(
      serverKey(old),
    );
  });

  it('returns undefined for a message without Via or CSeq', () => {
    const r = request();
    r.removeHeader('via');
    expect(serverKey(r)).toBeUndefined();
    expect(clientKey(r)).toBeUndefined();
  });
});

describe('client transaction matching (§17.1.3)', () => {
  it('matches a response by top Via branch and CSeq method', () => {
    const invite = request({ branch: 'z9hG4bKc1' });
    expect(clientKey(response(invite, 200))).toBe(clientKey(invite));
    const cancel = request({ method: 'CANCEL', branch: 'z9hG4bKc1' });
    expect(clientKey(response(cancel, 200))).not.toBe(clientKey(invite));
  });

  it('indexes an accepted INVITE by Call-ID, CSeq number and From tag for the ACK of its 2xx', () => {
    const invite = request({ branch: 'z9hG4bKc1' });
    const ack = request({ method: 'ACK', branch: 'z9hG4bKnew', toTag: 'b' });
    expect(acceptedKey(ack)).toBe(acceptedKey(invite));
  });
});

describe('dialog identity', () => {
  const invite = request();
  it('says none for a request outside a dialog, early for a 1xx with a To tag, confirmed for a 2xx', () => {
    expect(dialogState(invite)).toBe('none');
    expect(dialogState(response(invite, 100))).toBe('none');
    expect(dialogState(response(invite, 180))).toBe('early');
    expect(dialogState(response(invite, 200))).toBe('confirmed');
    expect(dialogState(response(invite, 486))).toBe('terminated');
    expect(dialogState(request({ method: 'BYE', toTag: 'b' }))).toBe('terminated');
    expect(dialogState(request({ method: 'INFO', toTag: 'b' }))).toBe('confirmed');
  });

  it('gives the same key to both directions of a dialog', () => {
    const fromCaller = request({ method: 'BYE', fromTag: 'a', toTag: 'b' });
    const fromCallee = request({ method: 'BYE', fromTag: 'b', toTag: 'a' });
    expect(dialogId(fromCaller)?.key).toBe(dialogId(fromCallee)?.key);
    expect(dialogKey('c', 'x', undefined)).toBe('c;x');
  });

  it('maps tags to local and remote for each side (§12.1.1, §12.1.2)', () => {
    const ok = response(invite, 200, 'b');
    expect(dialogSides(ok, 'uac')).toEqual({
      callId: 'call-1@198.18.0.1',
      localTag: 'atag',
      remoteTag: 'b',
    });
    expect(dialogSides(ok, 'uas')).toEqual({
      callId: 'call-1@198.18.0.1',
      localTag: 'b',
      remoteTag: 'atag',
    });
  });
});

describe('flatKey', () => {
  it('returns a string equal to the key (a flat copy the table keeps)', () => {
    const key = serverKey(request({ branch: 'z9hG4bKflat1' }));
    expect(key).toBeDefined();
    expect(flatKey(key as string)).toBe(key);
    expect(flatKey('')).toBe('');
  });
});

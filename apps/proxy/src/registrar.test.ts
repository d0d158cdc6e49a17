import { describe, expect, it } from 'vitest';
import { canonicalAor, Registrar, type RegisterRequest } from './registrar.js';

function setup() {
  let now = 1_000_000;
  const reg = new Registrar({
    minExpires: 60,
    maxExpires: 3600,
    defaultExpires: 600,
    maxContacts: 3,
    now: () => now,
  });
  return { reg, advance: (ms: number) => (now += ms) };
}

const source = { transport: 'udp', address: '198.18.0.5', port: 5060 };
const aor = 'sip:alice@example.com';

function req(over: Partial<RegisterRequest>): RegisterRequest {
  return {
    aor,
    contacts: [],
    star: false,
    expires: undefined,
    callId: 'c1',
    cseq: 1,
    source,
    ...over,
  };
}

describe('registrar (RFC 3261 §10.3)', () => {
  it('canonicalises AORs', () => {
    expect(canonicalAor('SIP', 'alice', 'Example.COM')).toBe('sip:alice@example.com');
    expect(canonicalAor('sip', undefined, '2001:db8::1')).toBe('sip:[2001:db8::1]');
  });

  it('MUST store several contacts and return them all in the 200', () => {
    const { reg } = setup();
    const r = reg.register(
      req({
        contacts: [
          { uri: 'sip:alice@198.18.0.5', expires: undefined, q: 0.5 },
          { uri: 'sip:alice@198.18.0.6', expires: 120, q: 1 },
        ],
      }),
    );
    expect(r.status).toBe(200);
    if (r.status !== 200) return;
    expect(r.bindings).toEqual([
      { uri: 'sip:alice@198.18.0.5', expires: 600 },
      { uri: 'sip:alice@198.18.0.6', expires: 120 },
    ]);
    expect(reg.lookup(aor).map((b) => b.uri)).toEqual([
      'sip:alice@198.18.0.6',
      'sip:alice@198.18.0.5',
    ]);
    expect(reg.size).toBe(2);
  });

  it('uses the Expires header when the contact has no expires, and caps at the maximum', () => {
    const { reg } = setup();
    const r = reg.register(
      req({ expires: 99999, contacts: [{ uri: 'sip:a@h', expires: undefined, q: undefined }] }),
    );
    expect(r.status === 200 && r.bindings[0]!.expires).toBe(3600);
  });

  it('answers 423 with Min-Expires for a too brief interval', () => {
    const { reg } = setup();
    const r = reg.register(req({ contacts: [{ uri: 'sip:a@h', expires: 10, q: undefined }] }));
    expect(r).toEqual({ status: 423, reason: 'Interval Too Brief', minExpires: 60 });
  });

  it('forgets a binding when it expires', () => {
    const { reg, advance } = setup();
    reg.register(req({ contacts: [{ uri: 'sip:a@h', expires: 60, q: undefined }] }));
    expect(reg.lookup(aor)).toHaveLength(1);
    advance(61_000);
    expect(reg.lookup(aor)).toHaveLength(0);
    expect(reg.known(aor)).toBe(true);
    expect(reg.known('sip:nobody@example.com')).toBe(false);
  });

  it('removes one binding with expires=0 and all with "*"', () => {
    const { reg } = setup();
    reg.register(
      req({
        contacts: [
          { uri: 'sip:a@h1', expires: undefined, q: undefined },
          { uri: 'sip:a@h2', expires: undefined, q: undefined },
        ],
      }),
    );
    reg.register(req({ cseq: 2, contacts: [{ uri: 'sip:a@h1', expires: 0, q: undefined }] }));
    expect(reg.fetch(aor).map((b) => b.uri)).toEqual(['sip:a@h2']);
    expect(reg.register(req({ cseq: 3, star: true, expires: 0 }))).toEqual({
      status: 200,
      bindings: [],
    });
    expect(reg.lookup(aor)).toHaveLength(0);
  });

  it('MUST reject "*" without Expires: 0 or with other contacts', () => {
    const { reg } = setup();
    expect(reg.register(req({ star: true, expires: 60 })).status).toBe(400);
    expect(
      reg.register(
        req({ star: true, expires: 0, contacts: [{ uri: 'sip:x@y', expires: 0, q: undefined }] }),
      ).status,
    ).toBe(400);
  });

  it('MUST NOT apply an update with the same Call-ID and a CSeq that is not higher', () => {
    const { reg } = setup();
    reg.register(req({ cseq: 5, contacts: [{ uri: 'sip:a@h', expires: 100, q: undefined }] }));
    const r = reg.register(
      req({ cseq: 5, contacts: [{ uri: 'sip:a@h', expires: 0, q: undefined }] }),
    );
    expect(r.status).toBe(500);
    expect(reg.lookup(aor)).toHaveLength(1);
    // A different Call-ID may update it.
    reg.register(
      req({ callId: 'c2', cseq: 1, contacts: [{ uri: 'sip:a@h', expires: 0, q: undefined }] }),
    );
    expect(reg.lookup(aor)).toHaveLength(0);
  });

  it('bounds the number of contacts per AOR', () => {
    const { reg } = setup();
    const contacts = [1, 2, 3, 4].map((i) => ({
      uri: `sip:a@h${i}`,
      expires: undefined,
      q: undefined,
    }));
    expect(reg.register(req({ contacts })).status).toBe(400);
  });

  it('returns the current bindings for a REGISTER without Contact (a query)', () => {
    const { reg } = setup();
    reg.register(req({ contacts: [{ uri: 'sip:a@h', expires: 100, q: undefined }] }));
    const r = reg.register(req({ cseq: 2 }));
    expect(r.status === 200 && r.bindings.map((b) => b.uri)).toEqual(['sip:a@h']);
  });
});

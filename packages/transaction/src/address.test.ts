import { describe, expect, it } from 'vitest';
import { defaultIsReliable, responseDestination } from './address.js';
import { request } from '../test/helpers.js';

const SRC = { transport: 'UDP', host: '198.18.7.7', port: 40000 };

describe('response destination (RFC 3261 §18.2.2, RFC 3581)', () => {
  it('MUST use the existing connection for a reliable transport', () => {
    const tcp = { transport: 'TCP', host: '198.18.7.7', port: 40001, connectionId: 3 };
    expect(responseDestination(request({ transport: 'TCP' }).topVia(), tcp, true)).toBe(tcp);
  });

  it('MUST send to maddr with the sent-by port, or 5060', () => {
    const via = request({ sentBy: '198.18.0.1:5070;maddr=198.18.9.9' }).topVia();
    expect(responseDestination(via, SRC, false)).toEqual({
      transport: 'UDP',
      host: '198.18.9.9',
      port: 5070,
    });
  });

  it('sends to the source address and the sent-by port (or 5060) over UDP', () => {
    expect(
      responseDestination(request({ sentBy: 'alice.example.com:5070' }).topVia(), SRC, false),
    ).toEqual({
      transport: 'UDP',
      host: '198.18.7.7',
      port: 5070,
    });
    expect(
      responseDestination(request({ sentBy: 'alice.example.com' }).topVia(), SRC, false).port,
    ).toBe(5060);
  });

  it('MUST send to the source port when rport is present (RFC 3581)', () => {
    const via = request({ sentBy: 'alice.example.com:5070;rport' }).topVia();
    expect(responseDestination(via, SRC, false).port).toBe(40000);
  });

  it('treats only UDP as unreliable', () => {
    expect(['UDP', 'udp', 'TCP', 'TLS', 'SCTP', 'WS'].map(defaultIsReliable)).toEqual([
      false,
      false,
      true,
      true,
      true,
      true,
    ]);
  });
});

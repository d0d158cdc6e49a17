/**
 * NetlinkChannel against scripted stand-ins for the pinhole-nfnl helper (no kernel, no root):
 * framing, per-message results, a helper that dies mid-batch, one that never starts.
 */
import { describe, expect, it } from 'vitest';
import { NetlinkChannel } from './nfnl-channel.js';
import { holeKeyBytes, type SetElemMessage } from './nfnl.js';

/**
 * A fake helper in Node: announces itself, then answers every batch frame. `mode`:
 * `ok` acks every message with 0, except that a message whose seq is odd-numbered within the
 * batch fails with ENOENT when `failOdd` is set; `die` exits on the first batch; `silent` never
 * announces itself; `short` leaves the last message without an answer.
 */
function fake(mode: 'ok' | 'die' | 'silent' | 'short', failOdd = false): string[] {
  const script = `
const mode = ${JSON.stringify(mode)}, failOdd = ${String(failOdd)};
if (mode !== 'silent') process.stdout.write(Buffer.alloc(8));
let buf = Buffer.alloc(0);
process.stdin.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 8 && buf.length >= 8 + buf.readUInt32LE(0)) {
    const len = buf.readUInt32LE(0), id = buf.readUInt32LE(4);
    const batch = buf.subarray(8, 8 + len);
    buf = buf.subarray(8 + len);
    if (mode === 'die') process.exit(7);
    const recs = [];
    let at = 0, first;
    while (at < batch.length) {
      const l = batch.readUInt32LE(at), type = batch.readUInt16LE(at + 4), seq = batch.readUInt32LE(at + 8);
      if (first === undefined) first = seq;
      else if (type !== 0x11) recs.push([seq, failOdd && (seq - first) % 2 === 0 ? -2 : 0]);
      at += (l + 3) & ~3;
    }
    if (mode === 'short') recs.pop();
    const out = Buffer.alloc(8 + 12 * recs.length);
    out.writeUInt32LE(recs.length, 0);
    out.writeUInt32LE(id, 4);
    recs.forEach(([s, e], i) => { out.writeUInt32LE(s, 8 + 12 * i); out.writeInt32LE(e, 12 + 12 * i); out.writeUInt32LE(0xffffffff, 16 + 12 * i); });
    process.stdout.write(out);
  }
});
process.stdin.on('end', () => process.exit(0));
`;
  return [process.execPath, '-e', script];
}

const key = holeKeyBytes(undefined, '198.19.0.1', 17, [40000, 40001]);
const msg = (kind: 'new' | 'del'): SetElemMessage => ({
  kind,
  set: 'h4d',
  keys: key.keys,
  keyLen: key.keyLen,
  timeoutMs: kind === 'new' ? 30_000 : 0,
  userdata: undefined,
});

describe('NetlinkChannel', () => {
  it('returns the answer to each message of a batch, in message order', async () => {
    const ch = new NetlinkChannel({ argv: fake('ok', true) });
    const res = await ch.run('pinhole', [msg('new'), msg('del'), msg('new')]);
    expect(res.map((r) => r.errno)).toEqual([0, 2, 0]);
    // Batches queue one after another on the same helper.
    const [a, b] = await Promise.all([
      ch.run('pinhole', [msg('new')]),
      ch.run('pinhole', [msg('del'), msg('del')]),
    ]);
    expect(a?.map((r) => r.errno)).toEqual([0]);
    expect(b?.map((r) => r.errno)).toEqual([0, 2]);
    expect(ch.starts).toBe(1);
    await ch.close();
  });

  it('fails the batch in flight when the helper dies, and starts a new helper for the next', async () => {
    const ch = new NetlinkChannel({ argv: fake('die') });
    await expect(ch.run('pinhole', [msg('new')])).rejects.toMatchObject({
      code: 'FCPD_ERR_NFT',
      message: expect.stringMatching(/netlink helper exited \(7\)/) as unknown,
    });
    await expect(ch.run('pinhole', [msg('new')])).rejects.toMatchObject({ code: 'FCPD_ERR_NFT' });
    expect(ch.starts).toBe(2);
    await ch.close();
  });

  it('treats a message left without an answer as a failed batch (outcome unknown)', async () => {
    const ch = new NetlinkChannel({ argv: fake('short') });
    await expect(ch.run('pinhole', [msg('new'), msg('del')])).rejects.toThrow(
      /answered 1 of 2 messages/,
    );
    await ch.close();
  });

  it('reports a helper that cannot be run or never announces itself', async () => {
    const missing = new NetlinkChannel({ argv: ['/nonexistent/pinhole-nfnl'] });
    await expect(missing.start()).rejects.toThrow(/netlink helper could not run/);
    await missing.close();
    const silent = new NetlinkChannel({ argv: fake('silent'), timeoutMs: 300 });
    await expect(silent.start()).rejects.toThrow(/did not start within 300 ms/);
    await silent.close();
  });

  it('refuses work after close', async () => {
    const ch = new NetlinkChannel({ argv: fake('ok') });
    await ch.start();
    await ch.close();
    await expect(ch.run('pinhole', [msg('new')])).rejects.toThrow(/closed/);
  });
});

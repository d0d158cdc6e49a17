import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NftChannel } from './nft-channel.js';

// A stand-in for `nft -i` that behaves like it on stdin/stderr: silent on success, an error with
// the offending line echoed on failure, and a syntax error for a bare word (the sentinel).
const FAKE = `
const rl = require('node:readline').createInterface({ input: process.stdin });
const fs = require('node:fs');
let hung = false;
rl.on('line', (line) => {
  if (hung) return;
  const inc = /^include "(.*)"$/.exec(line);
  if (inc && process.argv.includes('--no-files')) {
    process.stderr.write('Error: File not found: ' + inc[1] + '\\n' + line + '\\n^^^\\n');
    return;
  }
  const text = inc ? fs.readFileSync(inc[1], 'utf8') : line;
  if (/^\\w+$/.test(line)) process.stderr.write('Error: syntax error, unexpected newline, expecting string\\n' + line + '\\n' + ' '.repeat(line.length) + '^\\n');
  else if (text.includes('FAIL')) process.stderr.write('Error: Could not process rule: No such file or directory\\n' + text.split('\\n')[0] + '\\n^^^^\\n');
  else if (text.includes('DIE')) process.exit(3);
  else if (text.includes('WHO')) process.stderr.write('Error: pid=' + process.pid + ' home=' + process.env.HOME + (inc ? ' file=' + inc[1] + ' mode=' + (fs.statSync(inc[1]).mode & 0o777).toString(8) : ' inline') + '\\n');
  else if (text.includes('HANG')) hung = true;
  else if (inc) process.stdout.write('');
});
`;
const script = join(tmpdir(), `pinhole-fake-nft-${process.pid}.cjs`);
writeFileSync(script, FAKE);
afterAll(() => rmSync(script, { force: true }));

const channel = (timeoutMs?: number) =>
  new NftChannel({ argv: [process.execPath, script], inlineMax: 100, timeoutMs });

describe('NftChannel', () => {
  it('resolves with no error text for a transaction nft accepts', async () => {
    const c = channel();
    expect(await c.run('add element inet pinhole h4d { 1.2.3.4 . 17 . 5 }\n')).toBe('');
    await c.close();
  });

  it("attributes nft's error to its transaction, and the next one is clean", async () => {
    const c = channel();
    const [a, b, d] = await Promise.all([
      c.run('add element FAIL\n'),
      c.run('add element ok\n'),
      c.run('add element FAIL again\n'),
    ]);
    expect(a).toContain('No such file or directory');
    expect(b).toBe('');
    expect(d).toContain('FAIL again');
    await expect(c.exec('FAIL\n')).rejects.toMatchObject({ code: 'FCPD_ERR_NFT' });
    await c.close();
  });

  it('sends scripts through a fresh 0600 include file, removed once nft answered', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'pinhole-nft-test-'));
    try {
      const c = new NftChannel({
        argv: [process.execPath, script],
        inlineMax: 100,
        scratchParent: parent,
      });
      const long = Array.from({ length: 20 }, (_, i) => `add element x { ${i} }`).join('\n');
      expect(await c.run(long + '\n')).toBe('');
      expect(await c.run(long + '\nFAIL\n')).toContain('No such file');
      const who = await c.run(long + '\nWHO\n');
      expect(who).toMatch(
        new RegExp(`file=${parent}/pinhole-nft-${process.pid}-[0-9a-f]{12}-\\d+\\.nft mode=600`),
      );
      expect(readdirSync(parent)).toEqual([]);
      // Short scripts are typed inline (inlineMax 100 here; the default 0 includes everything).
      expect(await c.run('list WHO\n')).toContain(' inline');
      await c.close();
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('by default includes every script, even a one-liner', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'pinhole-nft-test-'));
    try {
      const c = new NftChannel({ argv: [process.execPath, script], scratchParent: parent });
      expect(await c.run('add element FAIL\n')).toContain('No such file');
      expect(await c.run('list WHO\n')).toContain(' file=');
      expect(readdirSync(parent)).toEqual([]);
      await c.close();
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('rejects the transaction in flight when nft dies, and respawns for the next', async () => {
    const c = channel();
    expect(await c.run('add element ok\n')).toBe('');
    await expect(c.run('add element DIE\n')).rejects.toMatchObject({ code: 'FCPD_ERR_NFT' });
    expect(await c.run('add element ok\n')).toBe('');
    await c.close();
  });

  it('gives up on a transaction nft never answers', async () => {
    const c = channel(2000);
    expect(await c.run('add element ok\n')).toBe('');
    await expect(c.run('add element HANG\n')).rejects.toThrow(/did not answer/);
    expect(await c.run('add element ok\n')).toBe('');
    await c.close();
  });

  it("keeps nft's line history out of the user's home: HOME is not a directory", async () => {
    const c = channel();
    expect(await c.run('list WHO\n')).toContain('home=/dev/null');
    await c.close();
  });

  it('replaces the nft process after recycleAfter transactions, between transactions', async () => {
    const c = new NftChannel({ argv: [process.execPath, script], recycleAfter: 3 });
    const pids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const who = await c.run('list WHO\n');
      pids.push(/pid=(\d+)/.exec(who)?.[1] ?? '?');
    }
    // Three transactions per process; the replacement was started before the 4th and 7th.
    expect(new Set(pids.slice(0, 3)).size).toBe(1);
    expect(new Set(pids.slice(3, 6)).size).toBe(1);
    expect(pids[3]).not.toBe(pids[0]);
    expect(pids[6]).not.toBe(pids[3]);
    // Errors stay attributed to the right transaction across a recycle.
    const results = await Promise.all([c.run('add FAIL\n'), c.run('add ok\n'), c.run('add ok\n')]);
    expect(results[0]).toContain('No such file');
    expect(results.slice(1)).toEqual(['', '']);
    await c.close();
  });

  it('types scripts inline when nft cannot see the include file (another mount namespace)', async () => {
    const c = new NftChannel({ argv: [process.execPath, script, '--no-files'] });
    expect(await c.run('add element ok\n')).toBe('');
    expect(await c.run('add element FAIL\n')).toContain('No such file');
    expect(await c.run('list WHO\n')).toContain(' inline');
    await c.close();
  });

  it('refuses work after close', async () => {
    const c = channel();
    await c.close();
    await expect(c.run('add element ok\n')).rejects.toThrow(/closed/);
  });
});

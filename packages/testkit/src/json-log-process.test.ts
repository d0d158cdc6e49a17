import { afterEach, describe, expect, it } from 'vitest';
import { JsonLogProcess } from './json-log-process.js';

/**
 * A small daemon in plain JavaScript: prints a start line, one line per stdin line (`say <msg>`),
 * some text on stdout and stderr, exits 0 on SIGTERM unless told to ignore it, and exits with
 * code 3 on `exit`.
 */
const DAEMON = `
const out = (o) => process.stdout.write(JSON.stringify({ time: Date.now(), ...o }) + '\\n');
const ignoreTerm = process.argv.includes('--ignore-term');
process.on('SIGTERM', () => { if (!ignoreTerm) { out({ msg: 'stopping' }); process.exit(0); } });
out({ level: 30, msg: 'started', port: 1234 });
process.stdout.write('not json\\n');
process.stdout.write('[1,2]\\n');
process.stderr.write('a warning on stderr\\n');
require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => {
  if (l === 'exit') process.exit(3);
  if (l.startsWith('say ')) out({ msg: l.slice(4) });
});
setInterval(() => {}, 1000);
`;

const started: JsonLogProcess[] = [];
function daemon(...args: string[]): JsonLogProcess {
  const p = JsonLogProcess.spawn(process.execPath, ['-e', DAEMON, '--', ...args], {
    spawn: { stdio: ['pipe', 'pipe', 'pipe'] },
  });
  started.push(p);
  return p;
}

afterEach(async () => {
  for (const p of started.splice(0)) await p.stop('SIGKILL', 1000);
});

describe('JsonLogProcess', () => {
  it('collects JSON log lines and keeps other output as text', async () => {
    const p = daemon();
    const up = await p.waitFor((l) => l.msg === 'started', 10_000);
    expect(up?.port).toBe(1234);
    expect(typeof up?.time).toBe('number');
    await p.waitFor(() => false, 300);
    expect(p.stderr).toContain('not json');
    // A JSON value that is not an object is not a log line either.
    expect(p.stderr).toContain('[1,2]');
    expect(p.stderr).toContain('a warning on stderr');
    expect(p.lines.map((l) => l.msg)).toEqual(['started']);
  });

  it('resolves waitFor as soon as the line arrives, and only with lines from the mark on', async () => {
    const p = daemon();
    await p.waitFor((l) => l.msg === 'started');
    p.child.stdin?.write('say hello\n');
    expect((await p.waitFor((l) => l.msg === 'hello'))?.msg).toBe('hello');
    const mark = p.lines.length;
    expect(await p.waitFor((l) => l.msg === 'hello', 200, mark)).toBeUndefined();
    p.child.stdin?.write('say hello\n');
    const again = await p.waitFor((l) => l.msg === 'hello', 10_000, mark);
    expect(again).toBeDefined();
    expect(p.find((l) => l.msg === 'hello')).toHaveLength(2);
    expect(p.find((l) => l.msg === 'hello', mark)).toHaveLength(1);
  });

  it('gives up on waitFor after its timeout', async () => {
    const p = daemon();
    expect(await p.waitFor((l) => l.msg === 'never', 150)).toBeUndefined();
    expect(p.done).toBe(false);
  });

  it('gives up on waitFor once the process has exited, and reports the exit code', async () => {
    const p = daemon();
    await p.waitFor((l) => l.msg === 'started');
    const waiting = p.waitFor((l) => l.msg === 'never', 60_000);
    p.child.stdin?.write('exit\n');
    expect(await waiting).toBeUndefined();
    expect(await p.exited).toBe(3);
    expect(await p.stop()).toBe(3);
  });

  it('stops with SIGTERM, and with SIGKILL when SIGTERM is ignored', async () => {
    const p = daemon();
    await p.waitFor((l) => l.msg === 'started');
    expect(await p.stop()).toBe(0);
    expect(p.find((l) => l.msg === 'stopping')).toHaveLength(1);

    const stubborn = daemon('--ignore-term');
    await stubborn.waitFor((l) => l.msg === 'started');
    expect(await stubborn.stop('SIGTERM', 200)).toBeNull();
    expect(stubborn.child.signalCode).toBe('SIGKILL');
  });

  it('keeps at most maxLines log lines, dropping the oldest', async () => {
    const p = JsonLogProcess.spawn(
      process.execPath,
      ['-e', 'for (let i = 0; i < 50; i++) console.log(JSON.stringify({ time: i, msg: "n" + i }))'],
      { maxLines: 10 },
    );
    started.push(p);
    await p.exited;
    await p.waitFor(() => false, 1000);
    expect(p.lines.map((l) => l.msg)).toEqual(Array.from({ length: 10 }, (_, i) => `n${40 + i}`));
    expect(p.dropped).toBe(40);
  });
});

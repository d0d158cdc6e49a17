/**
 * Reads the scenario fixtures (`test/fixtures/*.flow`) and renders policy results as the text
 * lines the fixtures expect. The format is described in `test/fixtures/README.md`.
 */
import { parse, type SipMessage } from '@pinhole/sip';
import type {
  PolicyEvent,
  PolicyResult,
  TransactionOutcome,
  TransportAddress,
} from '../src/index.js';

export interface FlowStep {
  readonly line: number;
  readonly header: string;
  readonly event: PolicyEvent | { readonly type: 'sweep'; readonly now: number };
  readonly expect: readonly string[];
}

export interface Flow {
  readonly title: string;
  readonly config: Record<string, unknown>;
  readonly steps: readonly FlowStep[];
}

function address(text: string): TransportAddress {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(text);
  if (!m) throw new Error(`bad address ${text}`);
  return { address: m[1] ?? '', port: Number(m[2]), transport: 'UDP' };
}

/** Normalises line ends to CRLF and sets Content-Length to the body's byte length. */
export function buildMessage(text: string): string {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  while (lines.length > 0 && lines[lines.length - 1]?.trim() === '') lines.pop();
  const blank = lines.findIndex((l) => l.trim() === '');
  const head = blank < 0 ? lines : lines.slice(0, blank);
  const bodyLines = blank < 0 ? [] : lines.slice(blank + 1);
  const body = bodyLines.length > 0 ? bodyLines.join('\r\n') + '\r\n' : '';
  const length = Buffer.byteLength(body);
  let sawLength = false;
  const headers = head.map((l) => {
    if (/^(content-length|l)\s*:/i.test(l)) {
      sawLength = true;
      return `Content-Length: ${length}`;
    }
    return l;
  });
  if (!sawLength) headers.push(`Content-Length: ${length}`);
  return headers.join('\r\n') + '\r\n\r\n' + body;
}

function parseMessage(text: string, where: string): SipMessage {
  const r = parse(buildMessage(text));
  if (!r.ok)
    throw new Error(`${where}: fixture message does not parse: ${r.error.code} ${r.error.reason}`);
  return r.message;
}

export function readFlow(source: string, name: string): Flow {
  const lines = source.replace(/\r\n/g, '\n').split('\n');
  let title = name;
  let config: Record<string, unknown> = {};
  const steps: FlowStep[] = [];
  let i = 0;
  // Preamble: comments, `title:` and `config:` lines.
  for (; i < lines.length && !(lines[i] ?? '').startsWith('==='); i++) {
    const l = lines[i] ?? '';
    if (l.startsWith('title:')) title = l.slice(6).trim();
    else if (l.startsWith('config:')) config = JSON.parse(l.slice(7)) as Record<string, unknown>;
  }
  while (i < lines.length) {
    const header = lines[i] ?? '';
    const lineNo = i + 1;
    i++;
    const msg: string[] = [];
    for (
      ;
      i < lines.length &&
      !(lines[i] ?? '').startsWith('--- expect') &&
      !(lines[i] ?? '').startsWith('===');
      i++
    ) {
      msg.push(lines[i] ?? '');
    }
    const expect: string[] = [];
    if ((lines[i] ?? '').startsWith('--- expect')) {
      for (i++; i < lines.length && !(lines[i] ?? '').startsWith('==='); i++) {
        const l = (lines[i] ?? '').trim();
        if (l !== '' && !l.startsWith('#')) expect.push(l);
      }
    }
    const words = header.slice(3).trim().split(/\s+/);
    const kind = words[0];
    const opts = new Map<string, string>();
    const flags = new Set<string>();
    for (const w of words.slice(1)) {
      const eq = w.indexOf('=');
      if (eq > 0) opts.set(w.slice(0, eq), w.slice(eq + 1));
      else flags.add(w);
    }
    const now = Number(opts.get('t') ?? '0');
    const where = `${name}:${lineNo}`;
    const text = msg.filter((l) => !l.startsWith('#')).join('\n');
    let event: FlowStep['event'];
    if (kind === 'sip') {
      const from = opts.get('from');
      const to = opts.get('to');
      const branch = opts.get('branch');
      event = {
        type: 'sip',
        message: parseMessage(text, where),
        now,
        ...(from ? { source: address(from) } : {}),
        ...(to ? { destination: address(to) } : {}),
        ...(flags.has('absorbed') ? { disposition: 'absorbed' as const } : {}),
        ...(branch ? { branch } : {}),
      };
    } else if (kind === 'ended') {
      const branch = opts.get('branch');
      event = {
        type: 'transaction-ended',
        request: parseMessage(text, where),
        outcome: (opts.get('outcome') ?? 'timeout') as TransactionOutcome,
        now,
        ...(branch ? { branch } : {}),
      };
    } else if (kind === 'sweep') {
      event = { type: 'sweep', now };
    } else {
      throw new Error(`${where}: unknown step "${kind}"`);
    }
    steps.push({ line: lineNo, header, event, expect });
  }
  return { title, config, steps };
}

/** One line per intent, refusal and action, in the order the policy returned them. */
export function render(r: PolicyResult): string[] {
  const out: string[] = [];
  for (const a of r.actions) {
    switch (a.kind) {
      case 'set-header':
      case 'add-header':
        out.push(`${a.kind} ${a.name}: ${a.value}`);
        break;
      case 'reject':
        out.push(
          `reject ${a.status} ${a.reason}${a.headers.map((h) => ` | ${h.name}: ${h.value}`).join('')}`,
        );
        break;
    }
  }
  for (const i of r.intents) {
    switch (i.kind) {
      case 'open':
      case 'refresh':
        out.push(`${i.kind} ${i.key} timer ${i.timerSec} ${i.reason}`);
        break;
      case 'close':
        out.push(`close ${i.key} ${i.reason}`);
        break;
    }
  }
  for (const f of r.refusals) {
    out.push(
      `refuse ${f.code}${f.pme ? ` ${f.pme.protocol} ${f.pme.destination.address}:${f.pme.destinationPort}` : ''}`,
    );
  }
  return out;
}

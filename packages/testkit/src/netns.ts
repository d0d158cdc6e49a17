/**
 * Network-namespace topologies for system tests: namespaces with random `ph…` names, veth pairs,
 * addresses from 198.18.0.0/15 (RFC 2544 benchmarking space), a forwarding router namespace, and
 * child processes run inside a namespace. Everything created here is registered for cleanup:
 * `cleanupNetns()` (call it in afterAll) and, as a last resort, a process `exit` hook delete the
 * namespaces and kill the processes started in them.
 */
import {
  execFile,
  execFileSync,
  spawn,
  type ChildProcess,
  type SpawnOptions,
} from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
}

export class NetnsError extends Error {
  readonly code = 'TESTKIT_ERR_NETNS' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NetnsError';
  }
}

/** Runs a command and resolves with its output; rejects with its stderr on failure. */
export function run(cmd: string, args: readonly string[], input?: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 1 << 28 }, (err, stdout, stderr) => {
      if (err) {
        reject(new NetnsError(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      } else resolve({ stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** A network namespace created by this process. */
export class Netns {
  readonly name: string;
  #deleted = false;
  readonly #children = new Set<ChildProcess>();

  constructor(name: string) {
    this.name = name;
  }

  /** `['ip', 'netns', 'exec', name, ...cmd]`: how to run something in this namespace. */
  argv(...cmd: string[]): string[] {
    return ['ip', 'netns', 'exec', this.name, ...cmd];
  }

  /** Runs a command inside the namespace and waits for it. */
  exec(cmd: string, args: readonly string[] = [], input?: string): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], input);
  }

  /** Shortcut for `ip <args>` inside the namespace. */
  ip(...args: string[]): Promise<ExecResult> {
    return run('ip', ['-n', this.name, ...args]);
  }

  /** Starts a long-running process inside the namespace; it is killed at cleanup. */
  spawn(cmd: string, args: readonly string[] = [], options: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      ...options,
    });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  get deleted(): boolean {
    return this.#deleted;
  }

  /** Kills every process in the namespace (ours: we created the namespace), then deletes it. */
  destroySync(): void {
    if (this.#deleted) return;
    this.#deleted = true;
    for (const c of this.#children) c.kill('SIGKILL');
    try {
      const pids = execFileSync('ip', ['netns', 'pids', this.name], { encoding: 'utf8' });
      for (const p of pids.split('\n').filter((x) => /^\d+$/.test(x))) {
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    } catch {
      // namespace already gone
    }
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
    live.delete(this);
  }

  /** Async variant of destroySync (waits a moment for killed processes to exit). */
  async destroy(): Promise<void> {
    const waits = [...this.#children].map(
      (c) =>
        new Promise<void>((r) => {
          if (c.exitCode !== null || c.signalCode !== null) return r();
          c.once('exit', () => r());
          setTimeout(r, 2000).unref();
        }),
    );
    for (const c of this.#children) c.kill('SIGKILL');
    await Promise.all(waits);
    this.destroySync();
  }
}

const live = new Set<Netns>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const ns of [...live]) ns.destroySync();
  });
  // A test run interrupted by a signal does not emit 'exit': clean up, then let the signal do
  // what it would have done (the handler is removed first, so re-raising it terminates).
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      for (const ns of [...live]) ns.destroySync();
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.once(sig, onSignal);
  }
}

/** A fresh random name `ph<prefix><hex>` (at most 15 characters). */
export function randomName(prefix = ''): string {
  return `ph${prefix}${randomBytes(4).toString('hex')}`.slice(0, 15);
}

/** Creates a namespace with loopback up. Registered for cleanup. */
export async function createNetns(prefix = ''): Promise<Netns> {
  hookExit();
  const ns = new Netns(randomName(prefix));
  await run('ip', ['netns', 'add', ns.name]);
  live.add(ns);
  await ns.ip('link', 'set', 'lo', 'up');
  return ns;
}

/** Deletes every namespace created by this process and still alive. Use in afterAll. */
export async function cleanupNetns(): Promise<void> {
  await Promise.all([...live].map((ns) => ns.destroy()));
}

/** Names of the namespaces this process has created and not yet deleted. */
export function liveNetns(): string[] {
  return [...live].map((n) => n.name);
}

export interface VethEnd {
  readonly ns: Netns;
  readonly ifname: string;
  /** `198.18.x.y/len` (or an IPv6 prefix) assigned to the interface, or undefined. */
  readonly cidr?: string | undefined;
}

/** Creates a veth pair between two namespaces, assigns the addresses and brings both ends up. */
export async function vethPair(a: VethEnd, b: VethEnd): Promise<void> {
  await a.ns.ip(
    'link',
    'add',
    a.ifname,
    'type',
    'veth',
    'peer',
    'name',
    b.ifname,
    'netns',
    b.ns.name,
  );
  for (const end of [a, b]) {
    if (end.cidr) await end.ns.ip('addr', 'add', end.cidr, 'dev', end.ifname);
    await end.ns.ip('link', 'set', end.ifname, 'up');
  }
}

/** Turns on IPv4 and IPv6 forwarding inside a namespace (its own sysctls, not the host's). */
export async function enableForwarding(ns: Netns): Promise<void> {
  await ns.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
}

/**
 * `outside ── router ── inside`, all in 198.18.0.0/15:
 * outside 198.18.1.2/24 (router 198.18.1.1), inside 198.19.1.2/24 (router 198.19.1.1); each end
 * routes through the router, which forwards.
 */
export interface RoutedTopology {
  readonly outside: Netns;
  readonly router: Netns;
  readonly inside: Netns;
  readonly outsideAddr: string;
  readonly insideAddr: string;
  readonly routerOutsideAddr: string;
  readonly routerInsideAddr: string;
  /** The inside network (`198.19.1.0/24`), i.e. what the router protects. */
  readonly insideNet: string;
  destroy(): Promise<void>;
}

export async function createRoutedTopology(): Promise<RoutedTopology> {
  const outside = await createNetns('o');
  const router = await createNetns('r');
  const inside = await createNetns('i');
  const t: RoutedTopology = {
    outside,
    router,
    inside,
    outsideAddr: '198.18.1.2',
    insideAddr: '198.19.1.2',
    routerOutsideAddr: '198.18.1.1',
    routerInsideAddr: '198.19.1.1',
    insideNet: '198.19.1.0/24',
    destroy: async () => {
      await Promise.all([outside.destroy(), router.destroy(), inside.destroy()]);
    },
  };
  try {
    await vethPair(
      { ns: outside, ifname: 'eth0', cidr: '198.18.1.2/24' },
      { ns: router, ifname: 'out0', cidr: '198.18.1.1/24' },
    );
    await vethPair(
      { ns: router, ifname: 'in0', cidr: '198.19.1.1/24' },
      { ns: inside, ifname: 'eth0', cidr: '198.19.1.2/24' },
    );
    await enableForwarding(router);
    await outside.ip('route', 'add', 'default', 'via', '198.18.1.1');
    await inside.ip('route', 'add', 'default', 'via', '198.19.1.1');
  } catch (e) {
    await t.destroy();
    throw e;
  }
  return t;
}

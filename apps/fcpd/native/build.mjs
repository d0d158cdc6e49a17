// Builds pinhole-fcpd's netlink channel with the system C compiler ($CC, default cc):
//  - native/pinhole-nfnl-addon.c into dist/pinhole-nfnl.node, the in-process channel (Node-API;
//    needs Node's headers, include/node beside the node binary or under $npm_config_nodedir);
//  - native/pinhole-nfnl.c into dist/pinhole-nfnl, the helper process used when the addon
//    cannot serve (libc and the kernel's UAPI headers only).
// Without a compiler the build goes on: pinhole-fcpd then uses the nft CLI channel and says so
// at start.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const native = (f) => fileURLToPath(new URL(`./${f}`, import.meta.url));
const outDir = fileURLToPath(new URL('../dist/', import.meta.url));
mkdirSync(outDir, { recursive: true });
const cc = process.env.CC ?? 'cc';

function build(what, out, args, fallback) {
  rmSync(out, { force: true });
  const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-o', out, ...args], { stdio: 'inherit' });
  if (r.error === undefined && r.status === 0) return;
  const why = r.error?.message ?? `exit status ${r.status}`;
  console.warn(`warning: could not build ${what} with ${cc} (${why}); ${fallback}`);
}

build(
  'the netlink helper',
  join(outDir, 'pinhole-nfnl'),
  [native('pinhole-nfnl.c')],
  'pinhole-fcpd will use the nft CLI channel',
);

const includes = [
  ...(process.env.npm_config_nodedir
    ? [join(process.env.npm_config_nodedir, 'include', 'node')]
    : []),
  join(dirname(process.execPath), '..', 'include', 'node'),
];
const include = includes.find((d) => existsSync(join(d, 'node_api.h')));
const addon = join(outDir, 'pinhole-nfnl.node');
if (include === undefined) {
  rmSync(addon, { force: true });
  console.warn(
    `warning: Node's headers (node_api.h) not found in ${includes.join(' or ')}; pinhole-fcpd will run the netlink helper as a separate process`,
  );
} else {
  build(
    'the netlink addon',
    addon,
    ['-shared', '-fPIC', '-I', include, native('pinhole-nfnl-addon.c')],
    'pinhole-fcpd will run the netlink helper as a separate process',
  );
}

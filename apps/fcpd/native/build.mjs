// Builds the netlink helper (native/pinhole-nfnl.c) into dist/pinhole-nfnl with the system C
// compiler ($CC, default cc). It needs only libc and the kernel's UAPI headers. Without a
// compiler the build goes on: pinhole-fcpd then uses the nft CLI channel and says so at start.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const src = fileURLToPath(new URL('./pinhole-nfnl.c', import.meta.url));
const outDir = fileURLToPath(new URL('../dist/', import.meta.url));
const out = `${outDir}pinhole-nfnl`;
mkdirSync(outDir, { recursive: true });
rmSync(out, { force: true });
const cc = process.env.CC ?? 'cc';
const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-o', out, src], { stdio: 'inherit' });
if (r.error !== undefined || r.status !== 0) {
  const why = r.error?.message ?? `exit status ${r.status}`;
  console.warn(
    `warning: could not build the netlink helper with ${cc} (${why}); pinhole-fcpd will use the nft CLI channel`,
  );
}

// `npm start`: runs the most complete Pinhole program that is built. The SIP proxy (with an
// embedded firewall-control daemon) when it exists, else the daemon alone with the memory
// backend, else a list of what is available.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);

function cli(app) {
  const path = `${root}apps/${app}/dist/cli.js`;
  return existsSync(path) ? path : undefined;
}

function run(path, argv) {
  const child = spawn(process.execPath, [path, ...argv], { stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

const proxy = cli('proxy');
const fcpd = cli('fcpd');
if (proxy) {
  run(proxy, args);
} else if (fcpd) {
  console.error(
    'pinhole: the SIP proxy (apps/proxy) is not assembled yet; starting the firewall-control ' +
      'daemon alone. Try `node apps/fcpd/dist/fcpctl.js --help` to talk to it.',
  );
  run(fcpd, args.length > 0 ? args : ['--listen', 'tcp:127.0.0.1:12345', '--backend', 'memory']);
} else {
  const pkgs = ['packages/sip', 'packages/transaction', 'packages/fcp', 'packages/policy'];
  console.log('pinhole: no runnable program is built yet. Libraries:');
  for (const p of pkgs) {
    const { name, description } = JSON.parse(readFileSync(`${root}${p}/package.json`, 'utf8'));
    console.log(`  ${name.padEnd(22)} ${description}`);
  }
}

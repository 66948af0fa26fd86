// Bundles the extension with esbuild into out/extension.js (vscode stays external), and the pure modules the
// unit tests import into out/lib/. Usage: node client/build.mjs [--watch]
import * as esbuild from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const common = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: true,
  logLevel: 'info',
};
const builds = [
  {
    ...common,
    entryPoints: ['client/src/extension.ts'],
    outfile: 'out/extension.js',
    external: ['vscode'],
    minify: true,
  },
  {
    ...common,
    entryPoints: ['client/src/interpreter.ts', 'client/src/settings.ts', 'client/src/restarts.ts'],
    outdir: 'out/lib',
    sourcemap: false,
  },
];

if (process.argv.includes('--watch')) {
  for (const options of builds) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}

// How the process tests and the benchmarks start this repository's processes: as `npm start`
// does, from the build in dist/ (test/global-setup.ts and the bench:* scripts build it first).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The arguments to `node` that run a file of this repository as its own process: a module under
 * src/ runs compiled (`src/server.ts` → `dist/server.js`); anything else (a benchmark's ceiling
 * server) runs from source through tsx.
 */
export function nodeArgsFor(script: string): string[] {
  const compiled = /^src\/(.+)\.ts$/.exec(script);
  return compiled ? [`dist/${compiled[1]}.js`] : ['--import', 'tsx', script];
}

/** `node scripts/build.mjs --if-stale`: a few ms when dist/ is current. */
export function buildIfStale(): void {
  const result = spawnSync(process.execPath, ['scripts/build.mjs', '--if-stale'], {
    cwd: repoRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (result.status !== 0) throw new Error(`the build failed (exit ${result.status})`);
}

// @ts-check
// The build: compiles what the processes run into dist/, so `node dist/server.js` starts without a
// TypeScript loader (which cost seconds and hundreds of MB at every start). Plain JavaScript,
// because it must run before anything is compiled.
//
//   node scripts/build.mjs              build every step
//   node scripts/build.mjs --if-stale   build only the steps whose inputs changed since their last
//                                       build (npm start runs this; it costs a few ms when nothing did)
//   node scripts/build.mjs web          build the steps named (server, pglite-template, web)
//
// Each step names its inputs and its output folder; a stamp in dist/ records the inputs' sizes and
// modification times, so an edit, an added or a deleted file makes the step stale. To add a step
// (another app to compile), append it to `steps` with an output folder of its own (e.g. dist/web):
// a step empties its output before it runs, except the folders of the other steps inside it.
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const thisScript = relative(root, fileURLToPath(import.meta.url));

/**
 * @typedef {object} Step
 * @property {string} name
 * @property {string[]} inputs files and folders (relative to the repository) the output depends on
 * @property {string} output the folder the step owns: emptied before it runs, holds its stamp
 * @property {() => Promise<boolean>} run answers false when it could not build (no stamp is written)
 */

/** @type {Step[]} */
const steps = [
  {
    name: 'server',
    inputs: ['src', 'package.json', 'tsconfig.json', thisScript],
    output: 'dist',
    run: buildServer,
  },
  {
    name: 'pglite-template',
    inputs: ['node_modules/@electric-sql/pglite/package.json', thisScript],
    output: 'dist/pglite-template',
    run: buildPgliteTemplate,
  },
  {
    name: 'web',
    inputs: ['web', 'src/api-client/schema.ts', 'package-lock.json'],
    output: 'dist/web',
    run: buildWebApps,
  },
];

/**
 * Transpiles every module under src/ to one JavaScript module under dist/ (src/server.ts →
 * dist/server.js), keeping the layout: code that finds files relative to itself (the locales
 * beside their loader, drizzle/ and package.json two levels up) finds them there too, because
 * dist/ sits as deep as src/.
 * Not a bundle: each module stays a module, and packages load from node_modules as before.
 * Type-checking is `npm run typecheck`'s job; the build only strips types.
 */
async function buildServer() {
  const { build } = await import('esbuild');
  const sources = listFiles('src');
  await build({
    entryPoints: sources.filter((file) => file.endsWith('.ts')).map((file) => join(root, file)),
    outbase: join(root, 'src'),
    outdir: join(root, 'dist'),
    // bundle + every import external = one output file per module, with the relative imports'
    // `.ts` rewritten to `.js` (esbuild rewrites nothing without bundling).
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    logLevel: 'warning',
    plugins: [
      {
        name: 'relative-imports-stay-modules',
        setup(builder) {
          builder.onResolve({ filter: /^\.\.?\// }, (args) =>
            args.kind === 'entry-point'
              ? undefined
              : { path: args.path.replace(/\.ts$/, '.js'), external: true },
          );
        },
      },
    ],
  });
  // Files the code reads at run time beside itself (the locales' .ftl).
  for (const file of sources.filter((name) => !name.endsWith('.ts'))) {
    cpSync(join(root, file), join(root, 'dist', relative('src', file)));
  }
  // dist/ sits under the package's "type": "module", so its .js files are ES modules.
  return true;
}

/**
 * The operator panel and the Mini App (web/build.ts, Vite). Vite and tsx are development
 * dependencies: an install without them goes on without the apps (the API answers 404 there).
 */
async function buildWebApps() {
  if (!['vite', 'tsx'].every((name) => existsSync(join(root, 'node_modules', name)))) {
    console.error('web: not built: Vite is not installed (an install without dev dependencies)');
    return false;
  }
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'web/build.ts', '--force'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (result.status !== 0) throw new Error(`web/build.ts failed (exit ${result.status})`);
  return true;
}

/**
 * An empty database cluster, as PGlite's initdb makes it, for src/db/pglite-options.ts: a new
 * embedded data folder starts as a copy of `pgdata/` (plain files, copied by the operating system)
 * and an in-memory database loads `pgdata.tar.gz`, instead of running initdb (seconds of CPU and
 * ~800 MB of memory at the first start; loading the tarball into a data folder peaked at ~400 MB,
 * the tar unpacked in memory). Rebuilt when PGlite's version changes.
 */
async function buildPgliteTemplate() {
  const { PGlite } = await import('@electric-sql/pglite');
  const pglite = new PGlite(join(root, 'dist/pglite-template/pgdata'));
  await pglite.waitReady;
  // On disk now: the folder is copied as it is, not through PGlite.
  await pglite.exec('CHECKPOINT');
  const tarball = await pglite.dumpDataDir('gzip');
  await pglite.close();
  writeFileSync(
    join(root, 'dist/pglite-template/pgdata.tar.gz'),
    Buffer.from(await tarball.arrayBuffer()),
  );
  return true;
}

/**
 * Every file under `path` (a file or a folder), relative to the repository, sorted.
 * @param {string} path
 * @returns {string[]}
 */
function listFiles(path) {
  const stat = statSync(join(root, path));
  if (!stat.isDirectory()) return [path];
  return readdirSync(join(root, path), { withFileTypes: true })
    .flatMap((entry) => listFiles(join(path, entry.name)))
    .sort();
}

/**
 * What the output was built from: each input file with its size and modification time.
 * @param {Step} step
 */
function fingerprint(step) {
  return step.inputs
    .flatMap(listFiles)
    .map((file) => {
      const stat = statSync(join(root, file));
      return `${file} ${stat.size} ${stat.mtimeMs}`;
    })
    .join('\n');
}

/** @param {Step} step */
function stampPath(step) {
  return join(root, 'dist', `.build-stamp-${step.name}`);
}

/**
 * Empties the step's output folder, keeping the other steps' outputs and every stamp.
 * @param {Step} step
 */
function clean(step) {
  const keep = steps
    .filter((other) => other !== step)
    .map((other) => relative(step.output, other.output))
    .filter((inside) => inside !== '' && !inside.startsWith('..'));
  const folder = join(root, step.output);
  mkdirSync(folder, { recursive: true });
  for (const entry of readdirSync(folder)) {
    if (entry.startsWith('.build-stamp-')) continue;
    const nested = keep.filter((path) => path === entry || path.startsWith(`${entry}/`));
    if (nested.length === 0) {
      rmSync(join(folder, entry), { recursive: true, force: true });
    } else if (!nested.includes(entry)) {
      throw new Error(
        `build step ${step.name}: ${entry} holds another step's output; give it its own folder`,
      );
    }
  }
}

/** @param {Step} step */
function isStale(step) {
  try {
    return readFileSync(stampPath(step), 'utf8') !== fingerprint(step);
  } catch {
    return true;
  }
}

const onlyStale = process.argv.includes('--if-stale');
const named = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
const unknown = named.filter((name) => !steps.some((step) => step.name === name));
if (unknown.length > 0) throw new Error(`no build step named ${unknown.join(', ')}`);
for (const step of steps) {
  if (named.length > 0 && !named.includes(step.name)) continue;
  if (onlyStale && !isStale(step)) continue;
  const started = performance.now();
  const before = fingerprint(step);
  rmSync(stampPath(step), { force: true });
  clean(step);
  if (!(await step.run())) continue;
  // The fingerprint taken before building: an edit made during the build makes the next start
  // build again instead of running output older than its source.
  writeFileSync(stampPath(step), before);
  console.error(
    `built ${step.name} into ${step.output}/ in ${Math.round(performance.now() - started)} ms`,
  );
}

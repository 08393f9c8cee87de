// `npm run build:web`: builds the operator panel and the Mini App into dist/web/{admin,app},
// which the API serves at /admin/ and /app/. Skipped when nothing they are built from changed
// since the last build (a hash of the inputs is kept beside the output); --force builds anyway.
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, gzipSync, constants as zlibConstants } from 'node:zlib';

const root = fileURLToPath(new URL('..', import.meta.url));
export const webDist = join(root, 'dist', 'web');
const stampFile = join(webDist, 'inputs.sha256');
export const webApps = ['admin', 'app'] as const;

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/**
 * A hash of everything the apps are built from: their sources, the API's types, the bot's texts
 * (the Mini App speaks them), the lockfile.
 */
function inputsHash(): string {
  const inputs = [
    ...filesUnder(join(root, 'web')),
    join(root, 'src', 'api-client', 'schema.ts'),
    ...filesUnder(join(root, 'src', 'locales')).filter((file) => file.endsWith('.ftl')),
    join(root, 'package-lock.json'),
  ].sort();
  const hash = createHash('sha256');
  for (const file of inputs)
    hash.update(relative(root, file)).update('\0').update(readFileSync(file));
  return hash.digest('hex');
}

/** Text assets compress well; images and fonts are compressed already. */
const COMPRESSIBLE = /\.(js|css|svg|json|txt)$/;

/**
 * Brotli and gzip copies beside each text asset, made once at build time at the highest levels,
 * which the API sends to browsers that accept them (@fastify/static's preCompressed).
 */
function compressAssets(dir: string): void {
  if (!existsSync(dir)) return;
  for (const file of filesUnder(dir)) {
    if (!COMPRESSIBLE.test(file)) continue;
    const content = readFileSync(file);
    writeFileSync(
      `${file}.br`,
      brotliCompressSync(content, {
        params: {
          [zlibConstants.BROTLI_PARAM_QUALITY]: zlibConstants.BROTLI_MAX_QUALITY,
          [zlibConstants.BROTLI_PARAM_SIZE_HINT]: content.length,
        },
      }),
    );
    writeFileSync(`${file}.gz`, gzipSync(content, { level: 9 }));
  }
}

/** Vite is a development dependency: an install without them cannot build the apps. */
export class BuildToolsMissing extends Error {}

async function importVite(): Promise<typeof import('vite')> {
  try {
    return await import('vite');
  } catch (error) {
    throw new BuildToolsMissing('Vite is not installed (an install without dev dependencies)', {
      cause: error,
    });
  }
}

/** Builds both apps unless the last build was made from the same inputs; answers whether it built. */
export async function buildWeb(options: { force?: boolean } = {}): Promise<boolean> {
  const hash = inputsHash();
  const built =
    existsSync(stampFile) &&
    readFileSync(stampFile, 'utf8') === hash &&
    webApps.every((app) => existsSync(join(webDist, app, 'index.html')));
  if (built && !options.force) return false;
  const { build } = await importVite();
  mkdirSync(webDist, { recursive: true });
  // Vite, its React plugin (which JSX runtime) and React itself (which build) go by NODE_ENV: a
  // build made inside the tests (NODE_ENV=test) must be the production one `npm start` serves.
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  try {
    await buildApps(build);
  } finally {
    if (nodeEnv === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = nodeEnv;
  }
  writeFileSync(stampFile, hash);
  return true;
}

async function buildApps(build: typeof import('vite').build): Promise<void> {
  for (const app of webApps) {
    // Built beside the served folder and swapped in whole: an API starting meanwhile (a test,
    // another process) finds the old build or none, never half of one.
    const fresh = join(webDist, `.${app}-${process.pid}`);
    await build({
      configFile: join(root, 'web', app, 'vite.config.ts'),
      logLevel: 'warn',
      mode: 'production',
      build: { outDir: fresh, emptyOutDir: true },
    });
    compressAssets(join(fresh, 'assets'));
    const served = join(webDist, app);
    const old = join(webDist, `.${app}-${process.pid}-old`);
    if (existsSync(served)) renameSync(served, old);
    renameSync(fresh, served);
    rmSync(old, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = Date.now();
  try {
    const built = await buildWeb({ force: process.argv.includes('--force') });
    process.stdout.write(
      built
        ? `web: built dist/web in ${((Date.now() - started) / 1000).toFixed(1)} s\n`
        : 'web: dist/web is up to date\n',
    );
  } catch (error) {
    // `npm start` goes on without the apps (the API serves what it finds, or answers 404).
    if (!(error instanceof BuildToolsMissing)) throw error;
    process.stdout.write(`web: not built: ${error.message}\n`);
  }
}

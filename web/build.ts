// `npm run build:web`: builds the operator panel and the Mini App into dist/web/{admin,app},
// which the API serves at /admin/ and /app/. Skipped when nothing they are built from changed
// since the last build (a hash of the inputs is kept beside the output); --force builds anyway.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

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

/** A hash of everything the apps are built from: their sources, the API's types, the lockfile. */
function inputsHash(): string {
  const inputs = [
    ...filesUnder(join(root, 'web')),
    join(root, 'src', 'api-client', 'schema.ts'),
    join(root, 'package-lock.json'),
  ].sort();
  const hash = createHash('sha256');
  for (const file of inputs)
    hash.update(relative(root, file)).update('\0').update(readFileSync(file));
  return hash.digest('hex');
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
  for (const app of webApps) {
    await build({
      configFile: join(root, 'web', app, 'vite.config.ts'),
      logLevel: 'warn',
    });
  }
  mkdirSync(webDist, { recursive: true });
  writeFileSync(stampFile, hash);
  return true;
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

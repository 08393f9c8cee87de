import {
  constants,
  cpSync,
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { PGlite, type PGliteOptions } from '@electric-sql/pglite';

/**
 * PostgreSQL's page cache inside PGlite. Its default, 128MB, is written in full when the database
 * starts, so every start held 128 MB more than the data needs; one process on a small machine
 * does well with a smaller cache (the operating system caches the files too). bench/start.ts
 * measures it: the warm start's peak RSS went from 406 to about 270 MB.
 */
const sharedBuffers = '16MB';

/**
 * An empty database cluster as initdb makes it, written by the build (scripts/build.mjs) for the
 * installed PGlite: as a folder, which a new data folder starts as a copy of, and as a tarball,
 * which an in-memory database loads. initdb took seconds and peaked at ~800 MB RSS at the first
 * start; loading the tarball into a new data folder peaked at ~400 MB (PGlite unpacks it in
 * memory), copying the folder costs what a warm start costs (bench/start.ts). The same paths from
 * src/db/ and from dist/db/, which sit at the same depth.
 */
const templateFolder = fileURLToPath(new URL('../../dist/pglite-template/pgdata', import.meta.url));
const templateTarball = fileURLToPath(
  new URL('../../dist/pglite-template/pgdata.tar.gz', import.meta.url),
);

/**
 * PGlite is PostgreSQL compiled to WebAssembly, compiled again by V8 when the process opens it:
 * each function first by Liftoff (V8's baseline compiler) and, once it has run a while, by
 * TurboFan. TurboFan's compilations of PostgreSQL's large functions ran on background threads
 * and left ~70 MB in their allocator at the start, more under load (bench/start.ts: the warm
 * start's peak 259 → 187 MB with Liftoff alone). Liftoff's code runs SQL ~15% slower in CPU
 * (a query-heavy loop straight on PGlite); through the API the difference is lost in the noise.
 * V8 reads the flag when it compiles a module, so it is set before the first PGlite opens.
 * Only where Liftoff compiles all of PGlite: with --liftoff-only a function Liftoff cannot compile
 * stops the process, and PGlite uses WebAssembly SIMD, which Liftoff compiles on x64 only with
 * SSE4.1 (older CPUs, and emulated ones such as QEMU's default model, lack it) and always on arm64.
 */
function compileWebAssemblyForMemory(): void {
  if (compiledForMemory) return;
  compiledForMemory = true;
  if (liftoffCompilesSimd()) v8.setFlagsFromString('--liftoff-only');
}
let compiledForMemory = false;

function liftoffCompilesSimd(): boolean {
  if (process.arch === 'arm64') return true;
  if (process.arch !== 'x64') return false;
  try {
    return /^flags\s*:.*\bsse4_1\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    // Not Linux: no way to ask here; TurboFan stays allowed.
    return false;
  }
}

/**
 * A new data folder: a copy of the template folder (copy-on-write where the file system can),
 * made beside it and renamed into place, so that a start interrupted while copying leaves no half
 * a cluster: the next start copies again.
 */
function copyTemplate(pgDataDir: string): void {
  const staging = `${pgDataDir}.new`;
  rmSync(staging, { recursive: true, force: true });
  cpSync(templateFolder, staging, { recursive: true, mode: constants.COPYFILE_FICLONE });
  renameSync(staging, pgDataDir);
}

/** Anything else (a folder some other tool wrote) is left to PGlite to judge, as before. */
function isEmptyOrMissing(folder: string): boolean {
  try {
    return readdirSync(folder).length === 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw error;
  }
}

/**
 * How the app opens PGlite on `pgDataDir` (undefined: in memory); bench/start-ceiling.ts opens it
 * the same way. Without the template (sources run through tsx before a build) initdb runs.
 */
export function pgliteOptions(pgDataDir: string | undefined): PGliteOptions {
  compileWebAssemblyForMemory();
  const options: PGliteOptions = {
    startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${sharedBuffers}`],
  };
  if (pgDataDir === undefined) {
    if (existsSync(templateTarball))
      options.loadDataDir = new Blob([readFileSync(templateTarball)]);
  } else if (isEmptyOrMissing(pgDataDir) && existsSync(templateFolder)) {
    copyTemplate(pgDataDir);
  }
  return options;
}

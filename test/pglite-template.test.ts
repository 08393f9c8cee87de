// A new embedded data folder starts as a copy of the build's empty cluster
// (src/db/pglite-options.ts, scripts/build.mjs): complete, or not at all.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/client.ts';
import { pgliteOptions } from '../src/db/pglite-options.ts';
import { selectRows } from '../src/db/rows.ts';
import { silentLogger } from './helpers/database.ts';

const templateFolder = fileURLToPath(new URL('../dist/pglite-template/pgdata', import.meta.url));
let scratch = '';
beforeEach(() => {
  scratch = mkdtempSync(join(tmpdir(), 'imagegen-template-'));
});
afterEach(() => {
  rmSync(scratch, { recursive: true, force: true });
});

describe('a new embedded data folder', () => {
  it('starts as a copy of the empty cluster the build made, complete, and opens', async () => {
    const handle = await openDatabase({ kind: 'embedded', dataDir: scratch }, silentLogger);
    try {
      const [row] = await selectRows<{ tables: number }>(
        handle.db,
        sql`SELECT count(*)::int AS tables FROM pg_tables WHERE schemaname = 'public'`,
      );
      expect(row?.tables).toBe(0);
    } finally {
      await handle.close();
    }
    const copied = readdirSync(join(scratch, 'pglite')).sort();
    expect(copied).toEqual(readdirSync(templateFolder).sort());
    expect(existsSync(join(scratch, 'pglite.new'))).toBe(false);
  });

  it('replaces what an interrupted copy left beside it, and an empty folder', () => {
    const pgDataDir = join(scratch, 'pglite');
    mkdirSync(pgDataDir);
    mkdirSync(join(scratch, 'pglite.new', 'base'), { recursive: true });
    writeFileSync(join(scratch, 'pglite.new', 'base', 'half-written'), 'x');
    pgliteOptions(pgDataDir);
    expect(existsSync(join(pgDataDir, 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(pgDataDir, 'base', 'half-written'))).toBe(false);
    expect(existsSync(join(scratch, 'pglite.new'))).toBe(false);
  });

  it('leaves a folder that holds something else to PGlite', () => {
    const pgDataDir = join(scratch, 'pglite');
    mkdirSync(pgDataDir);
    writeFileSync(join(pgDataDir, 'someone-elses-file'), 'x');
    pgliteOptions(pgDataDir);
    expect(existsSync(join(pgDataDir, 'PG_VERSION'))).toBe(false);
  });
});

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { errorCodes } from '../src/core/error-codes.ts';
import { AppError } from '../src/core/errors.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

function sourceFiles(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

describe('the table of error codes', () => {
  it("is the README's table of errors, row for row", () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const section = readme.split('\n## Errors\n')[1]?.split('\n## ')[0] ?? '';
    const rows = [...section.matchAll(/^\| `([a-z_]+)` +\| (\d+) +\| (.+?) +\|/gm)].map(
      ([, code, status, title]) => [code, Number(status), title],
    );
    expect(rows).toEqual(
      Object.entries(errorCodes).map(([code, { status, title }]) => [code, status, title]),
    );
  });

  it('holds only codes something answers', () => {
    const sources = sourceFiles(join(repoRoot, 'src'))
      .filter((file) => !file.endsWith(join('core', 'error-codes.ts')))
      .map((file) => readFileSync(file, 'utf8'))
      .join('\n');
    const unused = Object.keys(errorCodes).filter((code) => !sources.includes(`'${code}'`));
    expect(unused).toEqual([]);
  });

  it('gives an AppError its status and title', () => {
    const error = new AppError('insufficient_credits', 'This needs 5 credits; the balance is 2.');
    expect(error).toMatchObject({
      code: 'insufficient_credits',
      status: 402,
      title: 'Insufficient credits',
      message: 'This needs 5 credits; the balance is 2.',
    });
    expect(new AppError('user_not_found').message).toBe('User not found');
    // @ts-expect-error: a code the table does not hold is refused by the type-check (and at run time).
    expect(() => new AppError('no_such_code')).toThrow();
  });
});

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The shape of src/, checked from its import statements: folders import only downwards (type-only
// imports included), and no file loads itself through the files it loads.

/**
 * The layers of src/, top to bottom: its folders, and the files directly in it by name. Each may
 * import those of the layers below its own; never one of its own layer or above, so no cycle can
 * form between them. A new folder goes into this list, above what it stands on.
 */
const layers: readonly (readonly string[])[] = [
  // Process entries.
  ['server.ts', 'worker.ts', 'bot.ts'],
  // The Telegram bot: a client of the API.
  ['bot'],
  // The API's types for its clients, written from the app itself (generate.ts imports app.ts).
  ['api-client'],
  // The app factory: wires the routes, plugins, services and the in-process worker.
  ['app.ts'],
  // Transports: HTTP routes and the worker's job handlers.
  ['api', 'jobs'],
  // What routes stand on: Fastify plugins, then auth and the app context.
  ['middlewares'],
  ['deps'],
  // The domain: the verbs, which own their transactions.
  ['services'],
  // The outside world, and the shared response schemas.
  ['delivery', 'schemas'],
  ['providers', 'storage', 'locales'],
  // The database: schema, client, migrations, the job queue, transactions.
  ['db'],
  // Settings, logging, the error model.
  ['core'],
];

const srcRoot = fileURLToPath(new URL('../src', import.meta.url));

function sourceFiles(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** import … from, export … from, import '…' and import('…'): the relative specifiers. */
const importPattern =
  /^\s*(import|export)\b([^;]*?)\bfrom\s*['"](\.[^'"]*)['"]|^\s*import\s*['"](\.[^'"]*)['"]|\bimport\s*\(\s*['"](\.[^'"]*)['"]\s*\)/gm;

interface Import {
  target: string;
  /** `import type` / `export type`: erased when compiled (verbatimModuleSyntax), so never loaded. */
  typeOnly: boolean;
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(importPattern)].map((match) => ({
    target: resolve(dirname(file), match[3] ?? match[4] ?? match[5] ?? ''),
    typeOnly: /^\s*type\s/.test(match[2] ?? ''),
  }));
}

/** What a file is placed by: the folder of src/ it is in, or its own name when directly in src/. */
function folderOf(file: string): string | null {
  const path = relative(srcRoot, file);
  if (path.startsWith('..')) return null;
  return path.split(sep)[0] ?? null;
}

const files = sourceFiles(srcRoot);
const imports = new Map(files.map((file) => [file, importsOf(file)]));
const name = (file: string) => relative(srcRoot, file).split(sep).join('/');

function layerOf(folder: string): number {
  return layers.findIndex((layer) => layer.includes(folder));
}

describe('the layers of src/', () => {
  it('place every folder', () => {
    const folders = new Set(files.map((file) => folderOf(file) ?? ''));
    const unplaced = [...folders].filter((folder) => layerOf(folder) < 0);
    expect(unplaced, 'folders (or files) of src/ missing from the layers').toEqual([]);
  });

  it('are imported only downwards', () => {
    const upwards: string[] = [];
    for (const [file, targets] of imports) {
      const from = folderOf(file) ?? '';
      for (const { target } of targets) {
        const to = folderOf(target);
        if (to === null || to === from) continue;
        if (layerOf(to) <= layerOf(from)) upwards.push(`${name(file)} → ${name(target)}`);
      }
    }
    expect(upwards, 'imports of a folder of the same layer or above').toEqual([]);
  });

  it('hold no cycle of files that load each other', () => {
    // Tarjan's strongly connected components over the files' imports that are loaded (a cycle of
    // those runs a module before what it imports is initialised): any of two or more files.
    const index = new Map<string, number>();
    const lowLink = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const cycles: string[][] = [];
    const visit = (file: string) => {
      const order = index.size;
      index.set(file, order);
      lowLink.set(file, order);
      stack.push(file);
      onStack.add(file);
      for (const { target, typeOnly } of imports.get(file) ?? []) {
        if (typeOnly || !imports.has(target)) continue;
        if (!index.has(target)) {
          visit(target);
          lowLink.set(file, Math.min(lowLink.get(file) ?? 0, lowLink.get(target) ?? 0));
        } else if (onStack.has(target)) {
          lowLink.set(file, Math.min(lowLink.get(file) ?? 0, index.get(target) ?? 0));
        }
      }
      if (lowLink.get(file) !== index.get(file)) return;
      const component: string[] = [];
      let member: string | undefined;
      do {
        member = stack.pop();
        if (member === undefined) break;
        onStack.delete(member);
        component.push(name(member));
      } while (member !== file);
      if (component.length > 1) cycles.push(component.sort());
    };
    for (const file of files) if (!index.has(file)) visit(file);
    expect(cycles, 'files that import each other, directly or through others').toEqual([]);
  });

  it('are read from the imports (a check that finds nothing would pass anything)', () => {
    const edges = [...imports].flatMap(([file, targets]) =>
      targets.map(({ target }) => `${folderOf(file)} → ${folderOf(target)}`),
    );
    expect(edges).toContain('api → services');
    expect(edges).toContain('jobs → services');
    expect(edges).toContain('services → db');
    expect(edges).toContain('db → core');
  });
});

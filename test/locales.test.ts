import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LANGUAGES, loadTexts } from '../src/locales/index.ts';

/** Each message's key and the placeholders it uses, read from a Fluent file. */
function messages(language: string): Map<string, string[]> {
  const source = readFileSync(new URL(`../src/locales/${language}.ftl`, import.meta.url), 'utf8');
  const found = new Map<string, string[]>();
  let current: string | null = null;
  for (const line of source.split('\n')) {
    const start = /^([a-z][a-z0-9-]*)\s*=/.exec(line);
    if (start?.[1]) {
      current = start[1];
      expect(found.has(current), `${language}.ftl defines ${current} twice`).toBe(false);
      found.set(current, []);
    } else if (!/^\s/.test(line)) {
      current = null;
    }
    if (current === null) continue;
    for (const match of line.matchAll(/\{\s*\$([a-z_]+)/g)) {
      const names = found.get(current) ?? [];
      if (match[1] && !names.includes(match[1])) names.push(match[1]);
      found.set(current, names);
    }
  }
  return found;
}

describe('the texts', () => {
  const english = messages('en');

  it.each(LANGUAGES.filter((l) => l !== 'en'))(
    '%s has every key of en, no other, with the same placeholders',
    (language) => {
      const other = messages(language);
      expect([...other.keys()].sort()).toEqual([...english.keys()].sort());
      for (const [key, placeholders] of english) {
        expect(other.get(key)?.sort(), `${language}: ${key}`).toEqual([...placeholders].sort());
      }
    },
  );

  it('every message renders in every language without a Fluent error', () => {
    const texts = loadTexts('en');
    for (const language of LANGUAGES) {
      for (const [key, placeholders] of english) {
        const text = texts.t(
          language,
          key,
          Object.fromEntries(placeholders.map((name) => [name, 2])),
        );
        expect(text, `${language}: ${key}`).not.toMatch(/\{\s*\$|\{\?\}|^[a-z-]+$/);
      }
    }
  });
});

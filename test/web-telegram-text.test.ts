import type { JSONContent } from '@tiptap/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type EntityNode,
  entityTree,
  type FormattedText,
  type MessageEntity,
  messageOf,
  normalizeEntities,
} from '../web/admin/src/telegram-text.ts';

// The broadcast composer's editor document → Telegram text and entities (what the API is sent),
// and those → the preview's tree (what the operator sees). What users get is what the preview shows
// only if both agree character by character.

const text = (value: string, ...marks: JSONContent['marks'] & object): JSONContent => ({
  type: 'text',
  text: value,
  ...(marks.length > 0 ? { marks } : {}),
});
const paragraph = (...content: JSONContent[]): JSONContent => ({ type: 'paragraph', content });
const doc = (...content: JSONContent[]): JSONContent => ({ type: 'doc', content });
const bold = { type: 'bold' };
const italic = { type: 'italic' };
const link = (href: string) => ({ type: 'link', attrs: { href } });

describe('the editor document as Telegram text and entities', () => {
  it('writes marks as entities over UTF-16 offsets, blocks a newline apart, trimmed at both ends', () => {
    expect(
      messageOf(
        doc(
          paragraph(),
          paragraph(text('  Winter sale: '), text('−30 %', bold), text(' 🎄 on ')),
          paragraph(text('every model', italic, link('https://t.me/bot?start=sale')), text('!')),
          { type: 'paragraph', content: [text('a'), { type: 'hardBreak' }, text('b')] },
          paragraph(),
          { type: 'blockquote', content: [paragraph(text('Quoted'))] },
          { type: 'codeBlock', attrs: { language: 'js' }, content: [text('x < 1 && y')] },
          paragraph(text('   ')),
        ),
      ),
    ).toEqual({
      text: 'Winter sale: −30 % 🎄 on \nevery model!\na\nb\n\nQuoted\nx < 1 && y',
      entities: [
        { type: 'bold', offset: 13, length: 5 },
        // The emoji is two UTF-16 code units: Telegram's offsets count them so.
        { type: 'text_link', offset: 26, length: 11, url: 'https://t.me/bot?start=sale' },
        { type: 'italic', offset: 26, length: 11 },
        { type: 'blockquote', offset: 44, length: 6 },
        { type: 'pre', offset: 51, length: 10, language: 'js' },
      ],
    });
  });

  it('joins a mark split over several text nodes into one entity, and nests crossing ones', () => {
    // "ab" bold, "bc" italic: Telegram refuses crossing entities; italic is split at bold's end.
    expect(
      messageOf(doc(paragraph(text('a', bold), text('b', bold, italic), text('c', italic)))),
    ).toEqual({
      text: 'abc',
      entities: [
        { type: 'bold', offset: 0, length: 2 },
        { type: 'italic', offset: 1, length: 1 },
        { type: 'italic', offset: 2, length: 1 },
      ],
    });
    // Two links to different places side by side stay two.
    expect(
      messageOf(
        doc(
          paragraph(text('one', link('https://a.example')), text('two', link('https://b.example'))),
        ),
      ),
    ).toEqual({
      text: 'onetwo',
      entities: [
        { type: 'text_link', offset: 0, length: 3, url: 'https://a.example' },
        { type: 'text_link', offset: 3, length: 3, url: 'https://b.example' },
      ],
    });
  });

  it('has no quote in a quote (Telegram has none): the inner one is part of the outer', () => {
    expect(
      messageOf(
        doc({
          type: 'blockquote',
          content: [paragraph(text('a')), { type: 'blockquote', content: [paragraph(text('b'))] }],
        }),
      ),
    ).toEqual({ text: 'a\nb', entities: [{ type: 'blockquote', offset: 0, length: 3 }] });
  });

  it('renders the preview tree with the entities as elements around exactly their characters', () => {
    const message: FormattedText = {
      text: 'Hello bold world',
      entities: [
        { type: 'bold', offset: 6, length: 10 },
        { type: 'text_link', offset: 11, length: 5, url: 'https://example.com' },
      ],
    };
    expect(entityTree(message)).toEqual([
      'Hello ',
      {
        entity: { type: 'bold', offset: 6, length: 10 },
        children: [
          'bold ',
          {
            entity: { type: 'text_link', offset: 11, length: 5, url: 'https://example.com' },
            children: ['world'],
          },
        ],
      },
    ]);
  });
});

/** For each UTF-16 code unit, the entities covering it, as sorted `type url` keys. */
function coverage(length: number, entities: readonly MessageEntity[]): string[] {
  const keys: string[][] = Array.from({ length }, () => []);
  for (const entity of entities) {
    for (let at = entity.offset; at < entity.offset + entity.length; at++) {
      keys[at]?.push(`${entity.type} ${entity.url ?? ''}`);
    }
  }
  return keys.map((list) => [...new Set(list)].sort().join('|'));
}

/** The same from the preview's tree: each character with the entities it sits inside. */
function treeCoverage(nodes: readonly EntityNode[], around: string[] = []): string[] {
  return nodes.flatMap((node) => {
    if (typeof node === 'string') {
      return Array.from({ length: node.length }, () => [...new Set(around)].sort().join('|'));
    }
    return treeCoverage(node.children, [...around, `${node.entity.type} ${node.entity.url ?? ''}`]);
  });
}

const flatten = (nodes: readonly EntityNode[]): string =>
  nodes.map((node) => (typeof node === 'string' ? node : flatten(node.children))).join('');

/** Telegram's rule: entities sharing characters nest. */
function nests(entities: readonly MessageEntity[]): boolean {
  return entities.every((a) =>
    entities.every((b) => {
      const aEnd = a.offset + a.length;
      const bEnd = b.offset + b.length;
      const share = a.offset < bEnd && b.offset < aEnd;
      return (
        !share || (a.offset <= b.offset && bEnd <= aEnd) || (b.offset <= a.offset && aEnd <= bEnd)
      );
    }),
  );
}

const markArbitrary = fc.constantFrom(
  { type: 'bold' },
  { type: 'italic' },
  { type: 'underline' },
  { type: 'strike' },
  { type: 'spoiler' },
  { type: 'code' },
  link('https://a.example'),
  link('https://b.example'),
);
const textArbitrary = fc
  .record({
    value: fc.string({
      unit: fc.constantFrom('a', ' ', 'é', '🎄', '<', '\n'),
      minLength: 1,
      maxLength: 6,
    }),
    marks: fc.uniqueArray(markArbitrary, { maxLength: 3, selector: (mark) => mark.type }),
  })
  .map(({ value, marks }) => text(value, ...marks));
const inlineArbitrary = fc.oneof(
  { weight: 5, arbitrary: textArbitrary },
  { weight: 1, arbitrary: fc.constant<JSONContent>({ type: 'hardBreak' }) },
);
const paragraphArbitrary = fc
  .array(inlineArbitrary, { maxLength: 5 })
  .map((content) => paragraph(...content));
const blockArbitrary = fc.oneof(
  { weight: 4, arbitrary: paragraphArbitrary },
  {
    weight: 1,
    arbitrary: fc
      .array(paragraphArbitrary, { minLength: 1, maxLength: 3 })
      .map((content): JSONContent => ({ type: 'blockquote', content })),
  },
  {
    weight: 1,
    arbitrary: fc
      .string({ unit: fc.constantFrom('x', ' ', '\n', '{'), minLength: 1, maxLength: 8 })
      .map((code): JSONContent => ({ type: 'codeBlock', content: [text(code)] })),
  },
);
const docArbitrary = fc.array(blockArbitrary, { maxLength: 5 }).map((blocks) => doc(...blocks));

/** What the document shows per character, trimmed as Telegram trims: the reference. */
function documentCoverage(document: JSONContent): { text: string; keys: string[] } {
  const chars: { char: string; keys: string[] }[] = [];
  const names: Record<string, string> = {
    bold: 'bold',
    italic: 'italic',
    underline: 'underline',
    strike: 'strikethrough',
    spoiler: 'spoiler',
    code: 'code',
  };
  const blocks = (nodes: readonly JSONContent[], around: string[], quoted: boolean) => {
    nodes.forEach((node, index) => {
      if (index > 0) chars.push({ char: '\n', keys: around });
      if (node.type === 'blockquote') {
        blocks(node.content ?? [], quoted ? around : [...around, 'blockquote '], true);
      } else if (node.type === 'codeBlock') {
        for (const char of node.content?.[0]?.text ?? '')
          chars.push({ char, keys: [...around, 'pre '] });
      } else {
        for (const child of node.content ?? []) {
          if (child.type === 'hardBreak') chars.push({ char: '\n', keys: around });
          const keys = [
            ...around,
            ...(child.marks ?? []).map((mark) =>
              mark.type === 'link' ? `text_link ${mark.attrs?.href}` : `${names[mark.type]} `,
            ),
          ];
          // One UTF-16 code unit at a time, as Telegram counts.
          for (let i = 0; i < (child.text ?? '').length; i++) {
            chars.push({ char: (child.text ?? '')[i] ?? '', keys });
          }
        }
      }
    });
  };
  blocks(document.content ?? [], [], false);
  const full = chars.map((c) => c.char).join('');
  const start = full.length - full.trimStart().length;
  const kept = chars.slice(start, start + full.trim().length);
  return {
    text: full.trim(),
    keys: kept.map((c) => [...new Set(c.keys)].sort().join('|')),
  };
}

describe('property: what is sent is what the document and the preview show', () => {
  it('for any document: every character carries the same formatting in the document, the entities and the preview; entities are valid', () => {
    fc.assert(
      fc.property(docArbitrary, (document) => {
        const message = messageOf(document);
        const reference = documentCoverage(document);
        expect(message.text).toBe(reference.text);
        expect(coverage(message.text.length, message.entities)).toEqual(reference.keys);
        for (const entity of message.entities) {
          expect(entity.length).toBeGreaterThan(0);
          expect(entity.offset + entity.length).toBeLessThanOrEqual(message.text.length);
        }
        expect(nests(message.entities)).toBe(true);
        // Normalizing again changes nothing: the preview renders exactly the entities sent.
        expect(normalizeEntities(message.text, message.entities)).toEqual(message.entities);
        const tree = entityTree(message);
        expect(flatten(tree)).toBe(message.text);
        expect(treeCoverage(tree)).toEqual(reference.keys);
      }),
      { numRuns: 500 },
    );
  });

  it('for any entities (a broadcast made through the API): the preview covers the characters each entity does', () => {
    const entity = fc.record({
      type: fc.constantFrom('bold', 'italic', 'code', 'text_link'),
      offset: fc.nat(12),
      length: fc.integer({ min: 1, max: 12 }),
    });
    fc.assert(
      fc.property(
        fc.string({ maxLength: 12 }),
        fc.array(entity, { maxLength: 6 }),
        (value, entities) => {
          const tree = entityTree({ text: value, entities });
          expect(flatten(tree)).toBe(value);
          expect(treeCoverage(tree)).toEqual(
            coverage(
              value.length,
              entities.filter((e) => e.offset < value.length),
            ),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});
